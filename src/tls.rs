//! HTTPS for the server: `[tls] cert` and `key` (PEM) become a rustls server configuration,
//! held in an `ArcSwap` so SIGHUP can swap in renewed files without dropping connections (each
//! new connection takes the configuration in force when it arrives). Upstream `wss://` goes
//! through tokio-tungstenite's rustls with the system's roots (`SSL_CERT_FILE` honoured).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, PEM (leaf first).
    pub cert: PathBuf,
    /// The private key, PEM.
    pub key: PathBuf,
}

/// Why the certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no certificate.
    #[error("tls cert {path}: {message}")]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The key file is unreadable or holds no key.
    #[error("tls key {path}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the pair (a key that does not match the certificate, say).
    #[error("tls: {0}")]
    Rustls(#[from] rustls::Error),
}

fn cert_error(path: &Path, message: &dyn std::fmt::Display) -> TlsError {
    TlsError::Cert {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads and checks the pair (blocking: files).
pub fn load(cfg: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cfg.cert)
        .map_err(|e| cert_error(&cfg.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_error(&cfg.cert, &e))?;
    if certs.is_empty() {
        return Err(cert_error(&cfg.cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| TlsError::Key {
        path: cfg.key.clone(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The configuration in force; [`store`](Self::store) swaps in a reloaded one.
#[derive(Debug)]
pub struct Reloadable {
    current: ArcSwap<rustls::ServerConfig>,
}

impl Reloadable {
    /// Starts with `config`.
    pub fn new(config: Arc<rustls::ServerConfig>) -> Self {
        Self {
            current: ArcSwap::new(config),
        }
    }

    /// An acceptor for one new connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Swaps in a new configuration.
    pub fn store(&self, config: Arc<rustls::ServerConfig>) {
        self.current.store(config);
    }
}
