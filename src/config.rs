//! Settings: `config/default.toml` (compiled in) < `--config FILE` < `LEASEQ__*` env.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use jsonwebtoken::Algorithm;

use crate::auth::{Jwks, TokenKeys, TokenPolicy};
use crate::broker::Limits;
use crate::broker::rate_limit::RateLimitSettings;
use crate::forwarded::TrustedProxies;
use crate::reaper::RetentionSettings;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Shortest `auth.jwt_secret` and `auth.lease_secret` accepted, in bytes: an HMAC-SHA256
/// key shorter than the hash gives away strength (RFC 2104 §3).
pub const MIN_SECRET_BYTES: usize = 32;

/// Settings whose `LEASEQ__*` values are taken exactly as written. figment reads other
/// values as TOML-like scalars, so `LEASEQ__AUTH__JWT_SECRET=12345…` would become a
/// number (changing it: leading zeros, exponents) and its type error would quote it.
const RAW_ENV_KEYS: [&str; 4] = [
    "auth.jwt_secret",
    "auth.lease_secret",
    "auth.lease_secret_previous",
    "metrics.token",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub limits: Limits,
    pub rate_limits: RateLimitSettings,
    pub retention: RetentionSettings,
    pub metrics: MetricsSettings,
    pub log: LogSettings,
    pub listeners: ListenerSettings,
    pub durability: DurabilitySettings,
}

/// `[durability]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurabilitySettings {
    /// Replicas a write must reach before it is answered (`WAIT`); 0: none.
    pub wait_replicas: u32,
}

/// `[listeners]`: push delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSettings {
    /// Whether this process delivers.
    pub deliver: bool,
    /// Most lanes this process delivers to at once.
    pub lanes_in_flight: usize,
    /// Whether destinations may be private, loopback or link-local addresses.
    pub allow_private_destinations: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    pub data_dir: PathBuf,
    pub shutdown_timeout_secs: u64,
    pub client_timeout_secs: u64,
    /// Addresses or CIDR blocks of proxies whose `X-Forwarded-For` / `Forwarded` is
    /// believed for the client address in logs; empty: nobody's.
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain (leaf first): with `tls_key_file`, the API is served over
    /// TLS on `bind`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl ServerSettings {
    /// The certificate and key files, when TLS is on.
    pub fn tls_files(&self) -> Option<(&Path, &Path)> {
        configured_path(&self.tls_cert_file).zip(configured_path(&self.tls_key_file))
    }
}

/// A path setting, unless unset or empty (an empty env value unsets it).
fn configured_path(path: &Option<PathBuf>) -> Option<&Path> {
    path.as_deref().filter(|p| !p.as_os_str().is_empty())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: RedisUrl,
    /// Seed nodes of a Redis Cluster; when set, leaseq talks to the Cluster, not `url`.
    pub cluster_nodes: Vec<RedisUrl>,
    pub key_prefix: String,
    pub timeout_ms: u64,
    pub reveal_batch: u32,
}

/// A Redis URL. It may carry a password (`redis://user:password@host:port/`), so it is
/// never printed whole: `Debug` and [`RedisUrl::endpoint`] show the host and port only,
/// and [`RedisUrl::expose`] is for handing it to the Redis client.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The whole URL, credentials included: for the Redis client only, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `host:port` (or a Unix socket's path), without credentials or query: for logs.
    pub fn endpoint(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(url) => match url.host_str() {
                Some(host) => format!("{host}:{}", url.port().unwrap_or(6379)),
                None => url.path().to_owned(),
            },
            Err(_) => "(a redis url that does not parse)".to_owned(),
        }
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.endpoint()).finish()
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret; or, instead, `jwt_public_key_file` with `jwt_algorithm`.
    #[serde(default, deserialize_with = "scalar_secret")]
    pub jwt_secret: Option<SecretString>,
    /// A file holding the HS256 secret (its trailing newline trimmed), instead of
    /// `jwt_secret`.
    pub jwt_secret_file: Option<PathBuf>,
    /// PEM public key verifying RS256, ES256 or EdDSA tokens.
    pub jwt_public_key_file: Option<PathBuf>,
    /// `RS256`, `ES256` or `EdDSA`: required with `jwt_public_key_file`.
    pub jwt_algorithm: Option<String>,
    /// A JSON Web Key Set (an identity provider's) verifying tokens by `kid`, instead of
    /// `jwt_secret` or `jwt_public_key_file`.
    pub jwks_url: Option<String>,
    /// Seconds between fetches of `jwks_url`.
    pub jwks_refresh_secs: u64,
    /// Required `iss` claim, when set.
    pub issuer: Option<String>,
    /// Required `aud` claim, when set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
    pub leeway_secs: u64,
    /// Longest token lifetime (`exp - iat`) accepted, and minted by `leaseq token`,
    /// seconds; 0: no cap. With a cap, tokens without `iat` are refused.
    pub max_token_ttl_secs: u64,
    /// Signs lease ids and peek refs.
    #[serde(default, deserialize_with = "scalar_secret")]
    pub lease_secret: Option<SecretString>,
    /// A file holding `lease_secret` (its trailing newline trimmed), instead of it.
    pub lease_secret_file: Option<PathBuf>,
    /// The lease secret before a rotation: lease ids and refs it signed still verify.
    #[serde(default, deserialize_with = "scalar_secret")]
    pub lease_secret_previous: Option<SecretString>,
    /// A file holding `lease_secret_previous`, instead of it.
    pub lease_secret_previous_file: Option<PathBuf>,
}

/// A secret written as any scalar (`jwt_secret = 1234…` in TOML) is taken as its text;
/// anything else is refused with an error that does not quote the value.
fn scalar_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<SecretString>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a secret, as a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(SecretString::from(v.to_owned())))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<Self::Value, E> {
            self.visit_str(&v.to_string())
        }
        // The default errors of these quote the value.
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(E::custom("a secret must be a string: quote it"))
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(E::custom("a secret must be a string: quote it"))
        }
        fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
            Err(E::custom("a secret must be a string"))
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    d.deserialize_option(Text)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// How long per-queue figures read from Redis are reused between scrapes, ms.
    pub cache_ms: u64,
    /// Queues with series of their own, those with the largest backlogs; the rest are
    /// summed into one `account="",queue="_other"` series. 0: every queue.
    pub max_queue_series: usize,
    /// An address of its own for `/metrics` (and the probes); empty: the API's.
    pub bind: String,
    /// A bearer token `/metrics` asks for; unset: none.
    #[serde(default, deserialize_with = "scalar_secret")]
    pub token: Option<SecretString>,
}

impl MetricsSettings {
    /// `metrics.token`, when set to something.
    pub fn token(&self) -> Option<&SecretString> {
        self.token
            .as_ref()
            .filter(|token| !token.expose_secret().is_empty())
    }
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

/// The key API tokens are verified with.
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 shared secret (verifies and mints).
    Secret(SecretString),
    /// RS256, ES256 or EdDSA public key (verifies only).
    PublicKey { algorithm: Algorithm, pem: Vec<u8> },
    /// The keys of a JWK set at this URL (verifies only).
    Jwks { url: String },
}

/// The keys the server needs, resolved.
#[derive(Clone)]
pub struct Secrets {
    pub jwt: JwtKey,
    pub lease: SecretString,
    /// `auth.lease_secret_previous`: verifies leases and refs, never signs.
    pub lease_previous: Option<SecretString>,
}

impl Settings {
    /// Defaults, then `file`, then `LEASEQ__*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let env = Env::prefixed("LEASEQ__").split("__");
        figment = figment.merge(env.clone().ignore(&RAW_ENV_KEYS));
        for (key, value) in env.only(&RAW_ENV_KEYS).iter() {
            figment = figment.merge(Serialized::default(key.as_str(), value));
        }
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
        if configured_path(&self.server.tls_cert_file).is_some()
            != configured_path(&self.server.tls_key_file).is_some()
        {
            return invalid("server.tls_cert_file and server.tls_key_file go together: set both");
        }
        if !self.metrics.bind.is_empty() && self.metrics.bind.parse::<SocketAddr>().is_err() {
            return invalid("metrics.bind must be empty or an address like 127.0.0.1:9464");
        }
        let prefix = &self.redis.key_prefix;
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.contains(char::is_whitespace)
        {
            return invalid("redis.key_prefix must be non-empty, without braces or spaces");
        }
        if let Err(e) = TrustedProxies::parse(&self.server.trusted_proxies) {
            return Err(ConfigError::Invalid(format!("server.trusted_proxies: {e}")));
        }
        if self.server.client_timeout_secs == 0 {
            return invalid("server.client_timeout_secs must be at least 1");
        }
        let r = &self.rate_limits;
        if [
            r.account_per_sec,
            r.account_burst,
            r.queue_per_sec,
            r.queue_burst,
        ]
        .iter()
        .any(|v| !v.is_finite() || *v < 0.0)
        {
            return invalid("rate_limits rates and bursts must be 0 (off) or positive");
        }
        if let Some(url) = self.auth.jwks_url.as_deref().filter(|u| !u.is_empty())
            && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return invalid("auth.jwks_url must be an http:// or https:// URL");
        }
        if self.auth.jwks_refresh_secs == 0 {
            return invalid("auth.jwks_refresh_secs must be at least 1");
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
        if l.reply_bytes < l.message_bytes {
            return invalid("limits.reply_bytes must be at least limits.message_bytes");
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

    /// The configured keys; with `dev`, missing secrets are generated once and kept in
    /// `server.data_dir` (mode 0600). Without `dev`, a missing key is an error.
    ///
    /// Secrets must be at least [`MIN_SECRET_BYTES`] long, and the two must differ; the
    /// errors never print a secret.
    pub fn secrets(&self, dev: bool) -> Result<Secrets, ConfigError> {
        if dev {
            self.check_dev_bind()?;
        }
        let auth = &self.auth;
        let configured_jwt =
            configured_secret(&auth.jwt_secret, &auth.jwt_secret_file, "jwt_secret")?;
        let configured_lease =
            configured_secret(&auth.lease_secret, &auth.lease_secret_file, "lease_secret")?;
        let generate = |name: &str, env: &str| {
            if dev {
                dev_secret(&self.server.data_dir, &format!("dev-{name}"))
            } else {
                Err(ConfigError::Invalid(format!(
                    "auth.{name} is not set: set {env}, or run `leaseq serve --dev` for a local setup"
                )))
            }
        };
        let jwks_url = auth.jwks_url.as_deref().filter(|url| !url.is_empty());
        if jwks_url.is_some() && (configured_jwt.is_some() || auth.jwt_public_key_file.is_some()) {
            return Err(ConfigError::Invalid(
                "set one of auth.jwt_secret (or auth.jwt_secret_file), auth.jwt_public_key_file and auth.jwks_url".into(),
            ));
        }
        let jwt = match (configured_jwt, &auth.jwt_public_key_file) {
            _ if let Some(url) = jwks_url => JwtKey::Jwks {
                url: url.to_owned(),
            },
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid(
                    "set auth.jwt_secret (or auth.jwt_secret_file) or auth.jwt_public_key_file, not both".into(),
                ));
            }
            (Some(secret), None) => JwtKey::Secret(secret),
            (None, Some(path)) => {
                let algorithm = match auth.jwt_algorithm.as_deref() {
                    Some("RS256") => Algorithm::RS256,
                    Some("ES256") => Algorithm::ES256,
                    Some("EdDSA") => Algorithm::EdDSA,
                    _ => {
                        return Err(ConfigError::Invalid(
                            "auth.jwt_algorithm must be RS256, ES256 or EdDSA with auth.jwt_public_key_file".into(),
                        ));
                    }
                };
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "auth.jwt_public_key_file {}: {e}",
                        path.display()
                    ))
                })?;
                JwtKey::PublicKey { algorithm, pem }
            }
            (None, None) => JwtKey::Secret(generate("jwt_secret", "LEASEQ__AUTH__JWT_SECRET")?),
        };
        let lease = match configured_lease {
            Some(secret) => secret,
            None => generate("lease_secret", "LEASEQ__AUTH__LEASE_SECRET")?,
        };
        check_strength(&lease, "lease_secret")?;
        let lease_previous = configured_secret(
            &auth.lease_secret_previous,
            &auth.lease_secret_previous_file,
            "lease_secret_previous",
        )?;
        if let Some(previous) = &lease_previous {
            check_strength(previous, "lease_secret_previous")?;
        }
        if let JwtKey::Secret(jwt) = &jwt {
            check_strength(jwt, "jwt_secret")?;
            let same_as_jwt = |secret: &SecretString| jwt.expose_secret() == secret.expose_secret();
            if same_as_jwt(&lease) || lease_previous.as_ref().is_some_and(same_as_jwt) {
                return Err(ConfigError::Invalid(
                    "auth.jwt_secret and auth.lease_secret (and lease_secret_previous) must be different secrets".into(),
                ));
            }
        }
        Ok(Secrets {
            jwt,
            lease,
            lease_previous,
        })
    }

    /// What is allowed but probably a mistake, for `serve` to log at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let audience = self.auth.audience.as_deref().unwrap_or_default();
        let identity_provider = if self.auth.jwt_public_key_file.is_some() {
            Some("auth.jwt_public_key_file")
        } else if self.auth.jwks_url.as_ref().is_some_and(|u| !u.is_empty()) {
            Some("auth.jwks_url")
        } else {
            None
        };
        if let Some(setting) = identity_provider
            && audience.is_empty()
        {
            warnings.push(format!(
                "{setting} is set without auth.audience: any token your identity provider \
                 signs for another service is accepted here too; set auth.audience (and \
                 auth.issuer)"
            ));
        }
        if self.auth.max_token_ttl_secs == 0 {
            warnings.push(
                "auth.max_token_ttl_secs is 0: tokens of any lifetime are accepted".to_owned(),
            );
        }
        warnings
    }

    /// `--dev` prints a token with every scope and trusts secrets from a local file:
    /// only for a broker that listens on a loopback address.
    fn check_dev_bind(&self) -> Result<(), ConfigError> {
        let bind = &self.server.bind;
        let loopback = bind
            .parse::<SocketAddr>()
            .is_ok_and(|addr| addr.ip().to_canonical().is_loopback());
        if loopback {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "--dev only listens on a loopback address (127.0.0.1 or [::1]), and server.bind is \
             {bind}: bind to 127.0.0.1, or drop --dev and set auth.jwt_secret and auth.lease_secret"
        )))
    }

    /// The token verifier for `secrets`, with the configured issuer, audience and leeway.
    pub fn token_keys(&self, secrets: &Secrets) -> Result<TokenKeys, ConfigError> {
        let policy = TokenPolicy {
            issuer: self.auth.issuer.clone().filter(|s| !s.is_empty()),
            audience: self.auth.audience.clone().filter(|s| !s.is_empty()),
            leeway_secs: self.auth.leeway_secs,
            max_ttl_secs: (self.auth.max_token_ttl_secs > 0)
                .then_some(self.auth.max_token_ttl_secs),
        };
        match &secrets.jwt {
            JwtKey::Secret(secret) => {
                Ok(TokenKeys::hs256(secret.expose_secret().as_bytes(), policy))
            }
            JwtKey::PublicKey { algorithm, pem } => TokenKeys::public_key(*algorithm, pem, policy)
                .map_err(|e| ConfigError::Invalid(format!("auth.jwt_public_key_file: {e}"))),
            JwtKey::Jwks { url } => {
                let refresh = Duration::from_secs(self.auth.jwks_refresh_secs);
                let jwks = Jwks::new(url, refresh)
                    .map_err(|e| ConfigError::Invalid(format!("auth.jwks_url: {e}")))?;
                Ok(TokenKeys::jwks(Arc::new(jwks), policy))
            }
        }
    }
}

/// The secret `auth.{name}` configured by value or by `auth.{name}_file`, if either.
fn configured_secret(
    value: &Option<SecretString>,
    file: &Option<PathBuf>,
    name: &str,
) -> Result<Option<SecretString>, ConfigError> {
    let value = value.clone().filter(|s| !s.expose_secret().is_empty());
    match (value, file) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid(format!(
            "set auth.{name} or auth.{name}_file, not both"
        ))),
        (Some(value), None) => Ok(Some(value)),
        (None, Some(path)) => {
            // The error of a read names the file, never its contents.
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::Invalid(format!("auth.{name}_file {}: {e}", path.display()))
            })?;
            let secret = text.trim_end_matches(['\n', '\r']);
            if secret.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "auth.{name}_file {} is empty",
                    path.display()
                )));
            }
            Ok(Some(SecretString::from(secret.to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// Refuses a secret shorter than [`MIN_SECRET_BYTES`], without saying what it is.
fn check_strength(secret: &SecretString, name: &str) -> Result<(), ConfigError> {
    if secret.expose_secret().len() < MIN_SECRET_BYTES {
        return Err(ConfigError::Invalid(format!(
            "auth.{name} must be at least {MIN_SECRET_BYTES} bytes long; generate one with \
             `openssl rand -hex 32`"
        )));
    }
    Ok(())
}

/// A random secret kept in `dir/name`, created on first use (the directory 0700, the
/// file 0600). An existing file is used only when it is a regular file of this user's,
/// readable by nobody else, holding at least [`MIN_SECRET_BYTES`]; anything else is an
/// error saying to delete it.
fn dev_secret(dir: &Path, name: &str) -> Result<SecretString, ConfigError> {
    let path = dir.join(name);
    let wrap = |source| ConfigError::DevSecrets {
        path: path.clone(),
        source,
    };
    if let Some(existing) = existing_dev_secret(&path)? {
        return Ok(existing);
    }
    create_private_dir(dir).map_err(wrap)?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| wrap(std::io::Error::other(e.to_string())))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // Written whole under another name, then linked into place: a reader never sees a
    // half-written file, and when two processes race, both end up with the first one's.
    let staged = dir.join(format!(".{name}.{}", uuid::Uuid::now_v7().simple()));
    write_private(&staged, &secret).map_err(wrap)?;
    let linked = std::fs::hard_link(&staged, &path);
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(SecretString::from(secret)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => existing_dev_secret(&path)?
            .ok_or_else(|| wrap(std::io::Error::other("it vanished while being created"))),
        Err(e) => Err(wrap(e)),
    }
}

/// The dev secret at `path`, if there is one, and if it can be trusted.
fn existing_dev_secret(path: &Path) -> Result<Option<SecretString>, ConfigError> {
    let wrap = |source| ConfigError::DevSecrets {
        path: path.to_owned(),
        source,
    };
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(wrap(e)),
    };
    let refuse = |why: &str| {
        Err(ConfigError::Invalid(format!(
            "the dev secret {} {why}; delete it (rm {}) and `--dev` generates a new one",
            path.display(),
            path.display()
        )))
    };
    if !metadata.file_type().is_file() {
        return refuse("is not a regular file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if let Some(why) = dev_secret_file_problem(metadata.mode(), metadata.uid(), me) {
            return refuse(why);
        }
    }
    let text = std::fs::read_to_string(path).map_err(wrap)?;
    let secret = text.trim();
    if secret.len() < MIN_SECRET_BYTES {
        return refuse(&format!("is shorter than {MIN_SECRET_BYTES} bytes"));
    }
    Ok(Some(SecretString::from(secret.to_owned())))
}

/// Why a dev secret file of this `mode` and `owner` may not be trusted by user `me`.
#[cfg(unix)]
fn dev_secret_file_problem(mode: u32, owner: u32, me: u32) -> Option<&'static str> {
    if owner != me {
        Some("belongs to another user")
    } else if mode & 0o077 != 0 {
        Some("can be read or written by group or others (it must be mode 0600)")
    } else {
        None
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates `path` (it must not exist) readable by its owner only, holding `contents`.
#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_load_and_validate() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert_eq!(settings.server.bind, "127.0.0.1:8080");
        assert_eq!(settings.redis.url.expose(), "redis://127.0.0.1:6379");
        assert_eq!(settings.redis.key_prefix, "lq");
        assert_eq!(settings.limits.message_bytes, 128_000);
    }

    #[test]
    fn the_redis_password_never_shows_in_the_settings_debug_output() {
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.redis.url =
            "rediss://default:s3cretpw@redis.example:6380/0?password=alsosecret".into();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("s3cretpw"), "{printed}");
        assert!(!printed.contains("alsosecret"), "{printed}");
        assert!(printed.contains("redis.example:6380"), "{printed}");
        assert_eq!(settings.redis.url.endpoint(), "redis.example:6380");
        let unparseable: RedisUrl = "redis://:pa/ss@host".into();
        assert!(!format!("{unparseable:?}").contains("pa/ss"));
    }

    #[test]
    fn a_prefix_with_braces_is_refused() {
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.redis.key_prefix = "lq{x}".into();
        assert!(settings.validate().is_err());
    }

    #[test]
    fn trusted_proxies_are_addresses_or_cidr_blocks() {
        let mut settings = Settings::defaults().expect("defaults are valid");
        assert!(
            settings.server.trusted_proxies.is_empty(),
            "nobody by default"
        );
        settings.server.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        assert!(settings.validate().is_ok());
        settings.server.trusted_proxies = vec!["proxy.internal".into()];
        let message = settings.validate().expect_err("refused").to_string();
        assert!(message.contains("server.trusted_proxies"), "{message}");
    }

    #[test]
    fn production_refuses_to_start_without_secrets() {
        let settings = Settings::defaults().expect("defaults are valid");
        assert!(settings.secrets(false).is_err());
    }

    /// Defaults with both secrets set.
    fn with_secrets(jwt: &str, lease: &str) -> Settings {
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.auth.jwt_secret = Some(jwt.to_owned().into());
        settings.auth.lease_secret = Some(lease.to_owned().into());
        settings
    }

    const STRONG_JWT: &str = "a-jwt-secret-of-more-than-32-bytes-0123456789";
    const STRONG_LEASE: &str = "a-lease-secret-of-more-than-32-bytes-0123456789";

    fn a_temp_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("leaseq-test-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn secrets_shorter_than_32_bytes_are_refused_without_being_printed() {
        let short = "short-secret-31-bytes-012345678";
        assert_eq!(short.len(), 31);
        for settings in [
            with_secrets(short, STRONG_LEASE),
            with_secrets(STRONG_JWT, short),
        ] {
            let message = settings.secrets(false).err().expect("refused").to_string();
            assert!(message.contains("at least 32 bytes"), "{message}");
            assert!(!message.contains(short), "{message}");
        }
        let one_byte = with_secrets("x", STRONG_LEASE);
        assert!(one_byte.secrets(false).is_err());
        assert!(
            with_secrets(STRONG_JWT, STRONG_LEASE)
                .secrets(false)
                .is_ok()
        );
    }

    #[test]
    fn a_secret_written_as_a_toml_number_is_its_text_and_other_types_are_not_quoted() {
        let load = |auth: &str| {
            Figment::from(Toml::string(DEFAULTS))
                .merge(Toml::string(&format!("[auth]\n{auth}")))
                .extract::<Settings>()
                .map_err(|e| e.to_string())
        };
        let settings = load("jwt_secret = 1234567890123456789").expect("loads");
        let secret = settings.auth.jwt_secret.expect("set");
        assert_eq!(secret.expose_secret(), "1234567890123456789");
        for (auth, value) in [
            ("jwt_secret = 98765.4321", "98765"),
            ("lease_secret = true", "true"),
            ("lease_secret = [\"abcdef\"]", "abcdef"),
        ] {
            let message = load(auth).expect_err("refused");
            assert!(!message.contains(value), "{message}");
        }
    }

    #[test]
    fn the_same_secret_for_tokens_and_leases_is_refused() {
        let settings = with_secrets(STRONG_JWT, STRONG_JWT);
        let message = settings.secrets(false).err().expect("refused").to_string();
        assert!(message.contains("must be different"), "{message}");
        assert!(!message.contains(STRONG_JWT), "{message}");
    }

    #[test]
    fn a_jwks_url_replaces_the_other_token_keys_and_must_be_http() {
        let mut settings = with_secrets(STRONG_JWT, STRONG_LEASE);
        settings.auth.jwks_url = Some("https://idp.example/.well-known/jwks.json".into());
        let message = settings.secrets(false).err().expect("both").to_string();
        assert!(message.contains("auth.jwks_url"), "{message}");
        settings.auth.jwt_secret = None;
        let secrets = settings.secrets(false).expect("the key set alone");
        assert!(matches!(&secrets.jwt, JwtKey::Jwks { url } if url.starts_with("https://idp")));
        let keys = settings.token_keys(&secrets).expect("keys");
        assert!(keys.key_set().is_some());
        let refused = keys
            .mint(&crate::auth::TokenRequest {
                subject: "t".into(),
                accounts: vec!["a".into()],
                scope: String::new(),
                queues: None,
                ttl: Duration::from_secs(60),
            })
            .expect_err("the identity provider mints");
        assert!(refused.to_string().contains("auth.jwks_url"), "{refused}");
        assert!(
            settings
                .warnings()
                .iter()
                .any(|w| w.contains("auth.jwks_url") && w.contains("audience"))
        );
        settings.auth.jwks_url = Some("file:///etc/passwd".into());
        assert!(settings.validate().is_err());
    }

    #[test]
    fn metrics_bind_is_empty_or_an_address() {
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.metrics.bind = "127.0.0.1:9464".into();
        assert!(settings.validate().is_ok());
        settings.metrics.bind = "localhost".into();
        let message = settings.validate().expect_err("refused").to_string();
        assert!(message.contains("metrics.bind"), "{message}");
    }

    #[test]
    fn the_previous_lease_secret_is_held_to_the_same_rules() {
        let with_previous = |previous: &str| {
            let mut settings = with_secrets(STRONG_JWT, STRONG_LEASE);
            settings.auth.lease_secret_previous = Some(previous.to_owned().into());
            settings.secrets(false)
        };
        let short = "short-secret-31-bytes-012345678";
        let message = with_previous(short).err().expect("short").to_string();
        assert!(message.contains("lease_secret_previous"), "{message}");
        assert!(!message.contains(short), "{message}");
        let message = with_previous(STRONG_JWT).err().expect("same").to_string();
        assert!(message.contains("must be different"), "{message}");
        let previous = "an-older-lease-secret-of-32-bytes-or-more";
        let secrets = with_previous(previous).expect("accepted");
        assert_eq!(
            secrets.lease_previous.as_ref().map(|s| s.expose_secret()),
            Some(previous)
        );
    }

    #[test]
    fn a_secret_file_is_read_with_its_trailing_newline_trimmed() {
        let dir = a_temp_dir();
        let (jwt_file, lease_file) = (dir.join("jwt"), dir.join("lease"));
        std::fs::write(&jwt_file, format!("{STRONG_JWT}\n")).expect("write");
        std::fs::write(&lease_file, format!("{STRONG_LEASE}\r\n")).expect("write");
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.auth.jwt_secret_file = Some(jwt_file);
        settings.auth.lease_secret_file = Some(lease_file.clone());
        let secrets = settings.secrets(false).expect("read from the files");
        assert!(matches!(&secrets.jwt, JwtKey::Secret(s) if s.expose_secret() == STRONG_JWT));
        assert_eq!(secrets.lease.expose_secret(), STRONG_LEASE);
        std::fs::write(&lease_file, "\n").expect("write");
        let message = settings.secrets(false).err().expect("empty").to_string();
        assert!(message.contains("is empty"), "{message}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_secret_and_its_file_together_are_refused() {
        let dir = a_temp_dir();
        let file = dir.join("lease");
        std::fs::write(&file, STRONG_LEASE).expect("write");
        let mut settings = with_secrets(STRONG_JWT, STRONG_LEASE);
        settings.auth.lease_secret_file = Some(file);
        let message = settings.secrets(false).err().expect("refused").to_string();
        assert!(message.contains("not both"), "{message}");
        let mut settings = with_secrets(STRONG_JWT, STRONG_LEASE);
        settings.auth.jwt_secret_file = Some(dir.join("missing"));
        let message = settings.secrets(false).err().expect("refused").to_string();
        assert!(message.contains("not both"), "{message}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn dev_secrets_are_generated_once_and_private() {
        let dir =
            std::env::temp_dir().join(format!("leaseq-test-{}", uuid::Uuid::now_v7().simple()));
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.server.data_dir = dir.clone();
        let first = settings.secrets(true).expect("generated");
        let second = settings.secrets(true).expect("reused");
        let secret = |s: &Secrets| match &s.jwt {
            JwtKey::Secret(secret) => secret.expose_secret().to_owned(),
            JwtKey::PublicKey { .. } | JwtKey::Jwks { .. } => panic!("dev mode generates a secret"),
        };
        assert_eq!(secret(&first), secret(&second));
        assert_ne!(secret(&first), first.lease.expose_secret());
        assert!(secret(&first).len() >= MIN_SECRET_BYTES);
        assert!(first.lease.expose_secret().len() >= MIN_SECRET_BYTES);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode();
            assert_eq!(mode(&dir.join("dev-jwt_secret")) & 0o777, 0o600);
            assert_eq!(mode(&dir) & 0o777, 0o700, "the data directory is private");
            let left: Vec<_> = std::fs::read_dir(&dir).expect("dir").collect();
            assert_eq!(left.len(), 2, "only the two secrets, no staged copies");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_public_key_without_an_audience_is_warned_about() {
        let mut settings = Settings::defaults().expect("defaults are valid");
        assert!(settings.warnings().is_empty(), "{:?}", settings.warnings());
        settings.auth.jwt_public_key_file = Some("/etc/leaseq/jwt.pub.pem".into());
        let warnings = settings.warnings();
        assert!(
            warnings.iter().any(|w| w.contains("auth.audience")),
            "{warnings:?}"
        );
        settings.auth.audience = Some("leaseq".into());
        assert!(settings.warnings().is_empty());
    }

    #[test]
    fn tokens_are_capped_at_a_year_by_default() {
        let settings = with_secrets(STRONG_JWT, STRONG_LEASE);
        assert_eq!(settings.auth.max_token_ttl_secs, 365 * 24 * 3600);
        let keys = settings
            .token_keys(&settings.secrets(false).expect("secrets"))
            .expect("keys");
        let request = |days: u64| crate::auth::TokenRequest {
            subject: "t".into(),
            accounts: vec!["a".into()],
            scope: String::new(),
            queues: None,
            ttl: Duration::from_secs(days * 24 * 3600),
        };
        assert!(keys.mint(&request(365)).is_ok());
        assert!(keys.mint(&request(366)).is_err());
    }

    #[test]
    fn dev_mode_refuses_a_bind_address_that_is_not_loopback() {
        let dir = a_temp_dir();
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.server.data_dir = dir.clone();
        for bind in [
            "0.0.0.0:8080",
            "[::]:8080",
            "10.1.2.3:80",
            "[::ffff:10.1.2.3]:80",
        ] {
            settings.server.bind = bind.into();
            let message = settings.secrets(true).err().expect("refused").to_string();
            assert!(message.contains("loopback"), "{bind}: {message}");
        }
        assert!(
            std::fs::read_dir(&dir).expect("dir").next().is_none(),
            "no secret generated"
        );
        for bind in [
            "127.0.0.1:0",
            "[::1]:8080",
            "127.0.0.2:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            settings.server.bind = bind.into();
            assert!(settings.secrets(true).is_ok(), "{bind}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_dev_secret_file_readable_by_others_or_too_short_is_refused_with_how_to_fix_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = a_temp_dir();
        let mut settings = Settings::defaults().expect("defaults are valid");
        settings.server.data_dir = dir.clone();
        let file = dir.join("dev-jwt_secret");
        let long = "0123456789abcdef".repeat(4);
        for (contents, mode, why) in [
            (long.as_str(), 0o644, "group or others"),
            (long.as_str(), 0o660, "group or others"),
            ("0123456789abcdef", 0o600, "shorter than 32 bytes"),
            ("", 0o600, "shorter than 32 bytes"),
        ] {
            let _ = std::fs::remove_file(&file);
            std::fs::write(&file, contents).expect("write");
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let message = settings.secrets(true).err().expect("refused").to_string();
            assert!(message.contains(why), "{mode:o}: {message}");
            assert!(message.contains("delete it"), "{message}");
            if !contents.is_empty() {
                assert!(!message.contains(contents), "{message}");
            }
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::write(&file, &long).expect("write");
        let secrets = settings
            .secrets(true)
            .expect("a private, long secret is used");
        assert!(matches!(&secrets.jwt, JwtKey::Secret(s) if s.expose_secret() == long));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[cfg(unix)]
    #[test]
    fn a_dev_secret_file_of_another_user_is_not_trusted() {
        assert_eq!(dev_secret_file_problem(0o100600, 1000, 1000), None);
        assert_eq!(
            dev_secret_file_problem(0o100600, 0, 1000),
            Some("belongs to another user")
        );
        assert!(dev_secret_file_problem(0o100604, 1000, 1000).is_some());
    }
}
