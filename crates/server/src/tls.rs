//! TLS for the encrypted listener, with certificates that can be reloaded while serving.
//!
//! rustls is driven sans-I/O inside [`Connection`](crate::connection::Connection): raw bytes are
//! read and written with the same non-blocking socket calls as plaintext connections, so a TLS
//! session waits on the same three things as any other and needs no extra task or buffer copy
//! beyond the encryption itself.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// The ALPN protocol name suda offers; clients that send none are served too.
pub const ALPN_SUDA: &[u8] = b"suda/1";

/// Why certificates could not be loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The certificate chain file could not be read or holds no certificate.
    #[error("cannot load TLS certificate chain {path}: {reason}")]
    Certificates {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The private key file could not be read or holds no key.
    #[error("cannot load TLS private key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refused the pair.
    #[error("unusable TLS certificate and key: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS settings in force, replaced as a whole on reload: connections keep the settings they
/// started with, new ones get the new ones, nobody is dropped.
#[derive(Debug)]
pub struct TlsSetup {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsSetup {
    /// Loads the PEM certificate chain and private key.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let config = build_config(cert_path, key_path)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(config),
        })
    }

    /// Reads the files again; on failure the settings in force stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build_config(&self.cert_path, &self.key_path)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        Ok(())
    }

    /// A server-side TLS state machine for one new connection.
    pub(crate) fn accept(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        let config = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        rustls::ServerConnection::new(config)
    }
}

fn build_config(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| TlsError::Certificates {
            path: cert_path.display().to_string(),
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificates {
            path: cert_path.display().to_string(),
            reason: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|err| TlsError::Key {
        path: key_path.display().to_string(),
        reason: err.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![ALPN_SUDA.to_vec()];
    Ok(Arc::new(config))
}
