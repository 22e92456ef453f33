//! Settings: `config/default.toml` (compiled in) < `--config FILE` < `LEASEQ__*` env.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::broker::Limits;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub limits: Limits,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    pub data_dir: PathBuf,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: String,
    pub key_prefix: String,
    pub timeout_ms: u64,
    pub reveal_batch: u32,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: Option<SecretString>,
    pub lease_secret: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("could not prepare dev secrets in {path}: {source}")]
    DevSecrets {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The two secrets the server needs, resolved.
#[derive(Clone)]
pub struct Secrets {
    pub jwt: SecretString,
    pub lease: SecretString,
}

impl Settings {
    /// Defaults, then `file`, then `LEASEQ__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("LEASEQ__").split("__"));
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The compiled-in defaults only (tests start here and adjust).
    pub fn defaults() -> Result<Self, ConfigError> {
        let settings: Settings = Figment::from(Toml::string(DEFAULTS))
            .extract()
            .map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks that span fields, run at start-up.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.server.bind.parse::<SocketAddr>().is_err() {
            return invalid("server.bind must be an address like 127.0.0.1:8080");
        }
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.contains(char::is_whitespace)
        {
            return invalid("redis.key_prefix must be non-empty, without braces or spaces");
        }
        if self.redis.timeout_ms == 0 {
            return invalid("redis.timeout_ms must be at least 1");
        }
        if self.redis.reveal_batch == 0 || self.redis.reveal_batch > 5000 {
            return invalid("redis.reveal_batch must be from 1 to 5000");
        }
        let l = &self.limits;
        if l.message_bytes == 0
            || l.batch_bytes < l.message_bytes
            || l.request_bytes < l.batch_bytes
        {
            return invalid(
                "limits must satisfy 0 < message_bytes <= batch_bytes <= request_bytes",
            );
        }
        if l.batch_messages == 0 || l.queues_per_account == 0 || l.ack_entries == 0 {
            return invalid(
                "limits.batch_messages, queues_per_account and ack_entries must be at least 1",
            );
        }
        Ok(())
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis.timeout_ms)
    }

    /// The configured secrets; with `dev`, missing ones are generated once and kept in
    /// `server.data_dir` (mode 0600). Without `dev`, a missing secret is an error.
    pub fn secrets(&self, dev: bool) -> Result<Secrets, ConfigError> {
        let configured =
            |s: &Option<SecretString>| s.clone().filter(|s| !s.expose_secret().is_empty());
        let resolve = |value: Option<SecretString>, name: &str, env: &str| match value {
            Some(secret) => Ok(secret),
            None if dev => dev_secret(&self.server.data_dir, &format!("dev-{name}")),
            None => Err(ConfigError::Invalid(format!(
                "auth.{name} is not set: set {env}, or run `leaseq serve --dev` for a local setup"
            ))),
        };
        Ok(Secrets {
            jwt: resolve(
                configured(&self.auth.jwt_secret),
                "jwt_secret",
                "LEASEQ__AUTH__JWT_SECRET",
            )?,
            lease: resolve(
                configured(&self.auth.lease_secret),
                "lease_secret",
                "LEASEQ__AUTH__LEASE_SECRET",
            )?,
        })
    }
}

/// A random secret kept in `dir/name`, created on first use.
fn dev_secret(dir: &Path, name: &str) -> Result<SecretString, ConfigError> {
    let path = dir.join(name);
    let wrap = |source| ConfigError::DevSecrets {
        path: path.clone(),
        source,
    };
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if !existing.is_empty() {
            return Ok(SecretString::from(existing.to_owned()));
        }
    }
    std::fs::create_dir_all(dir).map_err(wrap)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| wrap(std::io::Error::other(e.to_string())))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &secret).map_err(wrap)?;
    Ok(SecretString::from(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_load_and_validate() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert_eq!(settings.server.bind, "127.0.0.1:8080");
        assert_eq!(settings.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(settings.redis.key_prefix, "lq");
        assert_eq!(settings.limits.message_bytes, 128_000);
    }

    #[test]
    fn a_prefix_with_braces_is_refused() {
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.redis.key_prefix = "lq{x}".into();
        assert!(settings.validate().is_err());
    }

    #[test]
    fn production_refuses_to_start_without_secrets() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert!(settings.secrets(false).is_err());
    }

    #[test]
    fn dev_secrets_are_generated_once_and_private() {
        let dir =
            std::env::temp_dir().join(format!("leaseq-test-{}", uuid::Uuid::now_v7().simple()));
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.server.data_dir = dir.clone();
        let first = settings.secrets(true).expect("generated");
        let second = settings.secrets(true).expect("reused");
        assert_eq!(first.jwt.expose_secret(), second.jwt.expose_secret());
        assert_ne!(first.jwt.expose_secret(), first.lease.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("dev-jwt_secret"))
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
