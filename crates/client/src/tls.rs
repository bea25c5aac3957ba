//! TLS: the options a caller sets, the errors TLS adds, and the rustls configuration they become.
//!
//! Only rustls with the *ring* provider is used, and the provider is passed to every builder
//! explicitly, so nothing depends on a process-wide default that another crate might install.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ClientError;
use crate::transport::{Connector, Target};

/// The ALPN protocol id offered. Servers that do not use ALPN ignore it; it lets a TLS front end
/// that routes by ALPN recognise suda.
const ALPN_SUDA: &[u8] = b"suda/1";

/// How a connection uses TLS, set with [`ClientConfig::with_tls`](crate::ClientConfig::with_tls).
///
/// By default the server's certificate must chain to a root the platform trusts (loaded with
/// `rustls-native-certs`, so `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured) and be valid for
/// the host given to [`Client::connect`](crate::Client::connect). Add a private CA with
/// [`with_ca_file`](Self::with_ca_file) or [`with_ca_pem`](Self::with_ca_pem), trust only those
/// with [`with_native_roots(false)`](Self::with_native_roots), verify another name with
/// [`with_server_name`](Self::with_server_name).
///
/// The trust store is built, and CA files read, at the first connect made with these options or
/// a clone of them, then reused, so that many connections do not each reload the system's roots.
/// Changing an option starts over.
#[derive(Clone)]
pub struct TlsOptions {
    server_name: Option<String>,
    extra_roots: Vec<CaSource>,
    native_roots: bool,
    insecure: bool,
    /// The rustls configuration, once built; shared by clones, replaced when an option changes.
    prepared: Arc<Mutex<Option<Arc<rustls::ClientConfig>>>>,
}

#[derive(Clone)]
enum CaSource {
    File(PathBuf),
    Pem(Arc<[u8]>),
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            server_name: None,
            extra_roots: Vec::new(),
            native_roots: true,
            insecure: false,
            prepared: Arc::default(),
        }
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra_roots: Vec<String> = self
            .extra_roots
            .iter()
            .map(|source| match source {
                CaSource::File(path) => path.display().to_string(),
                CaSource::Pem(pem) => format!("<{} bytes of PEM>", pem.len()),
            })
            .collect();
        f.debug_struct("TlsOptions")
            .field("server_name", &self.server_name)
            .field("extra_roots", &extra_roots)
            .field("native_roots", &self.native_roots)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl TlsOptions {
    /// The defaults: verify against the platform's roots, for the host given to `connect`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies the certificate for `name` (a DNS name or an IP address) instead of the host
    /// given to `connect`; also the name sent in SNI. Useful when connecting by IP address to a
    /// server whose certificate names its DNS name.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self.changed()
    }

    /// Also trusts the CA certificates in the PEM file at `path`. The file is read at the first
    /// connect; a missing file, or one without a certificate, fails it with
    /// [`TlsErrorKind::Config`].
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_roots.push(CaSource::File(path.into()));
        self.changed()
    }

    /// Also trusts the CA certificates in `pem` (one or more `BEGIN CERTIFICATE` blocks; other
    /// blocks are ignored).
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.extra_roots
            .push(CaSource::Pem(Arc::from(pem.into().into_boxed_slice())));
        self.changed()
    }

    /// Whether the platform's trusted roots are trusted too (the default). Turn it off to trust
    /// only the CAs added with [`with_ca_file`](Self::with_ca_file) and
    /// [`with_ca_pem`](Self::with_ca_pem), as for a private deployment.
    pub fn with_native_roots(mut self, enabled: bool) -> Self {
        self.native_roots = enabled;
        self.changed()
    }

    /// **For development only.** Accepts any certificate from any server: expired, self-signed,
    /// issued for another name, or forged. The connection is still encrypted, but anyone who can
    /// intercept it can read and change it, passwords included. Trusted roots and CAs are then
    /// ignored.
    pub fn insecure_skip_verify(mut self) -> Self {
        self.insecure = true;
        self.changed()
    }

    /// The name set with [`with_server_name`](Self::with_server_name), if any.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Whether certificates go unverified ([`insecure_skip_verify`](Self::insecure_skip_verify)).
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    fn changed(mut self) -> Self {
        self.prepared = Arc::default();
        self
    }

    /// The name to verify: the one set, else the host `connect` was given.
    fn name_for(&self, host: Option<String>) -> Result<ServerName<'static>, TlsError> {
        let Some(name) = self.server_name.clone().or(host) else {
            return Err(TlsError::config(
                "no server name to verify: the address names no host; set one with \
                 TlsOptions::with_server_name"
                    .to_owned(),
                None,
            ));
        };
        ServerName::try_from(name.clone()).map_err(|e| {
            TlsError::config(
                format!("{name:?} is neither a DNS name nor an IP address"),
                Some(Arc::new(e)),
            )
        })
    }

    /// The rustls configuration, built on first use and shared by clones afterwards.
    async fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        if let Some(ready) = self.lock_prepared().clone() {
            return Ok(ready);
        }
        // Reading CA files and the system's roots is blocking file I/O, which must not stall the
        // runtime's worker. Two racing first connects both build; the second result wins, harmlessly.
        let options = self.clone();
        let built = tokio::task::spawn_blocking(move || options.build())
            .await
            .map_err(|e| {
                TlsError::config(
                    "building the TLS configuration failed".to_owned(),
                    Some(Arc::new(e)),
                )
            })??;
        *self.lock_prepared() = Some(built.clone());
        Ok(built)
    }

    /// Whether the rustls configuration has been built, for tests of its reuse.
    #[cfg(test)]
    pub(crate) fn is_prepared(&self) -> bool {
        self.lock_prepared().is_some()
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, Option<Arc<rustls::ClientConfig>>> {
        // The guarded value is only ever replaced whole, so a panic elsewhere cannot leave it
        // half-written.
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn build(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| {
                TlsError::config(
                    "the TLS provider supports no safe protocol version".to_owned(),
                    Some(Arc::new(e)),
                )
            })?;
        let mut config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(algorithms)))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(self.roots()?)
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![ALPN_SUDA.to_vec()];
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        for source in &self.extra_roots {
            let (pem, what) = match source {
                CaSource::File(path) => {
                    let what = format!("CA file {}", path.display());
                    let pem = std::fs::read(path).map_err(|e| {
                        TlsError::config(format!("cannot read {what}"), Some(Arc::new(e)))
                    })?;
                    (Arc::from(pem.into_boxed_slice()), what)
                }
                CaSource::Pem(pem) => (pem.clone(), "CA PEM".to_owned()),
            };
            let mut found = 0_usize;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    TlsError::config(format!("{what} is not valid PEM"), Some(Arc::new(e)))
                })?;
                roots.add(cert).map_err(|e| {
                    TlsError::config(
                        format!("{what} holds a certificate that cannot be a trust anchor"),
                        Some(Arc::new(e)),
                    )
                })?;
                found += 1;
            }
            if found == 0 {
                return Err(TlsError::config(
                    format!("{what} holds no certificate"),
                    None,
                ));
            }
        }
        if self.native_roots {
            let native = rustls_native_certs::load_native_certs();
            // Unreadable or unusable system roots are skipped, as other TLS clients do: one stray
            // file in the system store must not break every connection.
            for error in &native.errors {
                tracing::debug!(%error, "skipping part of the system's trusted roots");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "loaded the system's trusted roots");
        }
        if roots.is_empty() {
            let why = if self.native_roots {
                "no trusted root certificate: none found on this system (see SSL_CERT_FILE and \
                 SSL_CERT_DIR) and no CA was given"
            } else {
                "no trusted root certificate: the system's roots are off and no CA was given"
            };
            return Err(TlsError::config(why.to_owned(), None));
        }
        Ok(roots)
    }
}

/// A connector for TLS over TCP to `target`, with `options`.
pub(crate) fn connector(
    target: Target,
    options: TlsOptions,
    within: Duration,
) -> Connector<TlsStream<TcpStream>> {
    Box::new(move || {
        let target = target.clone();
        let options = options.clone();
        Box::pin(async move { connect(&target, &options, within).await })
    })
}

/// Connects over TCP to `target`, then makes the TLS handshake, all within `within`.
async fn connect(
    target: &Target,
    options: &TlsOptions,
    within: Duration,
) -> Result<TlsStream<TcpStream>, ClientError> {
    let name = options.name_for(target.host())?;
    // Set-up reads only local files, so it is not counted against the network's timeout.
    let connector = TlsConnector::from(options.client_config().await?);
    let started = Instant::now();
    let stream = target.tcp(within).await?;
    let left = within.saturating_sub(started.elapsed());
    match tokio::time::timeout(left, connector.connect(name.clone(), stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(TlsError::handshake(error, &name).into()),
        Err(_elapsed) => Err(TlsError {
            kind: TlsErrorKind::Timeout,
            detail: format!(
                "no answer within {within:?} (does the server speak TLS on that port?)"
            ),
            source: None,
        }
        .into()),
    }
}

/// Why TLS could not be set up, or why the handshake failed.
///
/// Match on [`kind`](Self::kind); the [`source`](StdError::source), when there is one, carries
/// the underlying error's details, for people rather than programs.
#[derive(Debug, Clone)]
pub struct TlsError {
    kind: TlsErrorKind,
    detail: String,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// What went wrong with TLS; see [`TlsError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The options cannot be used, before anything was sent: a CA file cannot be read or holds
    /// no certificate, no trusted root was found, or the server name is not a valid name.
    Config,
    /// The server's certificate does not chain to a trusted root, or is expired, not yet valid,
    /// revoked, malformed, or not meant for a server.
    UntrustedCertificate,
    /// The server's certificate is trusted but issued for another name than the one verified.
    WrongServerName,
    /// The server answered with something that is not TLS: it probably speaks plain suda (or
    /// something else) on that port.
    NotTls,
    /// The server did not complete the handshake within
    /// [`ClientConfig::connect_timeout`](crate::ClientConfig::connect_timeout), as happens when
    /// it does not speak TLS and waits for more input.
    Timeout,
    /// Any other handshake failure: the server refused it with an alert, closed the connection
    /// during it, or shares no protocol version or cipher suite with this client.
    Handshake,
}

impl TlsError {
    /// What went wrong.
    pub fn kind(&self) -> TlsErrorKind {
        self.kind
    }

    fn config(detail: String, source: Option<Arc<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: TlsErrorKind::Config,
            detail,
            source,
        }
    }

    /// Classifies what the handshake failed with. tokio-rustls wraps rustls' errors in
    /// `io::Error`s; anything else is the socket failing mid-handshake.
    fn handshake(error: io::Error, name: &ServerName<'_>) -> Self {
        let rustls_error = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let (kind, detail) = match rustls_error {
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => (
                TlsErrorKind::WrongServerName,
                format!(
                    "the server's certificate is not valid for {}",
                    name.to_str()
                ),
            ),
            Some(rustls::Error::InvalidCertificate(_)) => (
                TlsErrorKind::UntrustedCertificate,
                "the server's certificate is not trusted".to_owned(),
            ),
            Some(rustls::Error::InvalidMessage(_)) => (
                TlsErrorKind::NotTls,
                "the server did not answer in TLS (does it speak TLS on that port?)".to_owned(),
            ),
            Some(_) => (TlsErrorKind::Handshake, "the handshake failed".to_owned()),
            None if error.kind() == io::ErrorKind::UnexpectedEof => (
                TlsErrorKind::Handshake,
                "the server closed the connection during the handshake (does it speak TLS on \
                 that port?)"
                    .to_owned(),
            ),
            None => (
                TlsErrorKind::Handshake,
                "the connection failed during the handshake".to_owned(),
            ),
        };
        Self {
            kind,
            detail,
            source: Some(Arc::new(error)),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The source's text is left to whoever walks the chain (`{:#}` with anyhow), so that it
        // is not printed twice.
        match self.kind {
            TlsErrorKind::Config => write!(f, "cannot set up TLS: {}", self.detail),
            _ => write!(f, "TLS handshake failed: {}", self.detail),
        }
    }
}

impl StdError for TlsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

/// The verifier behind [`TlsOptions::insecure_skip_verify`]: any certificate is accepted, but
/// the handshake signatures are still checked, so the peer must at least hold the key of the
/// certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_verified_is_the_one_set_else_the_host() {
        let options = TlsOptions::new();
        assert_eq!(
            options.name_for(Some("localhost".into())).expect("valid"),
            ServerName::try_from("localhost").expect("valid")
        );
        let ip = options.name_for(Some("127.0.0.1".into())).expect("valid");
        assert!(matches!(ip, ServerName::IpAddress(_)), "{ip:?}");
        let set = options.with_server_name("chat.example.com");
        assert_eq!(
            set.name_for(Some("127.0.0.1".into()))
                .expect("valid")
                .to_str(),
            "chat.example.com"
        );
        let bad = TlsOptions::new().name_for(Some("not a name".into()));
        assert_eq!(bad.expect_err("invalid").kind(), TlsErrorKind::Config);
        let none = TlsOptions::new().name_for(None);
        assert_eq!(none.expect_err("no name").kind(), TlsErrorKind::Config);
    }

    #[test]
    fn unusable_trust_settings_are_config_errors() {
        let cases = [
            TlsOptions::new().with_native_roots(false),
            TlsOptions::new().with_ca_pem("no certificate here"),
            TlsOptions::new().with_ca_pem(
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            ),
            TlsOptions::new().with_ca_file("/nonexistent/suda-test-ca.pem"),
        ];
        for options in cases {
            let error = options.build().expect_err("unusable");
            assert_eq!(error.kind(), TlsErrorKind::Config, "{error}");
            assert!(
                error.to_string().starts_with("cannot set up TLS: "),
                "{error}"
            );
        }
        // Insecure mode needs no roots at all.
        TlsOptions::new()
            .with_native_roots(false)
            .insecure_skip_verify()
            .build()
            .expect("insecure needs no roots");
    }

    #[test]
    fn changing_an_option_drops_the_prepared_configuration() {
        let options = TlsOptions::new().insecure_skip_verify();
        *options.lock_prepared() = Some(options.build().expect("builds"));
        let clone = options.clone();
        assert!(clone.lock_prepared().is_some(), "clones share it");
        let changed = clone.with_server_name("other.example");
        assert!(changed.lock_prepared().is_none());
        assert!(options.lock_prepared().is_some());
    }

    #[test]
    fn debug_output_summarises_pem_instead_of_dumping_it() {
        let options = TlsOptions::new()
            .with_ca_file("ca.pem")
            .with_ca_pem(vec![b'x'; 10]);
        let shown = format!("{options:?}");
        assert!(shown.contains("ca.pem"), "{shown}");
        assert!(shown.contains("<10 bytes of PEM>"), "{shown}");
    }
}
