//! TLS for the API port (`server.tls_cert_file`, `server.tls_key_file`): rustls, with a
//! certificate that can be replaced while serving. [`TlsCertificate::reload`] reads the
//! files again (main calls it on SIGHUP): connections made afterwards get the new
//! certificate, those already open keep theirs, and nothing is dropped. When the new
//! files do not load, the old certificate stays and the error is logged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls_cert_file {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    #[error("server.tls_key_file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key does not match the certificate: {0}")]
    Mismatch(String),
    #[error("{0}")]
    Provider(String),
}

/// The served certificate chain and key, replaceable while serving.
#[derive(Clone)]
pub struct TlsCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<RwLock<Arc<CertifiedKey>>>,
}

impl fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl TlsCertificate {
    /// Loads the PEM files: a certificate chain (leaf first) and its private key.
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = certified_key(cert_file, key_file, &provider)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current: Arc::new(RwLock::new(Arc::new(key))),
        })
    }

    /// Reads the files again and serves what they hold from the next handshake on; on
    /// failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = certified_key(&self.cert_file, &self.key_file, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    /// A rustls server configuration serving this certificate, TLS 1.2 and 1.3 (actix
    /// adds the ALPN protocols, HTTP/2 and HTTP/1.1).
    pub fn server_config(&self) -> Result<ServerConfig, TlsError> {
        let config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Provider(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.current.clone())));
        Ok(config)
    }
}

#[derive(Debug)]
struct Resolver(Arc<RwLock<Arc<CertifiedKey>>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_error = |reason: String| TlsError::Certificate {
        path: cert_file.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error("no certificate in it".into()));
    }
    // The key's error names the file, never its contents.
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.to_owned(),
        reason: e.to_string(),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: key_file.to_owned(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(certified)
}

/// Reloads `tls` on every SIGHUP, for the life of the process. Without TLS a SIGHUP
/// (`systemctl reload`) is logged and changes nothing, rather than ending the process
/// as it would by default.
#[cfg(unix)]
pub async fn reload_on_sighup(tls: Option<TlsCertificate>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP: the TLS certificate will not reload");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let Some(tls) = &tls else {
            tracing::info!("SIGHUP: nothing to reload (no TLS configured)");
            continue;
        };
        match tls.reload() {
            Ok(()) => {
                tracing::info!(cert_file = %tls.cert_file.display(), "TLS certificate reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; the previous one is still served")
            }
        }
    }
}

/// No SIGHUP here: the certificate loads at start-up only.
#[cfg(not(unix))]
pub async fn reload_on_sighup(_: Option<TlsCertificate>) {}
