//! The TLS listener: the same chat, encrypted; clean failures; certificates reloaded live.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use suda_client::{Client, ClientConfig, ClientError, Event, TlsErrorKind, TlsOptions};
use suda_protocol::ResultCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A certificate authority and a `localhost` server certificate it signed, as PEM.
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl Pki {
    pub(crate) fn generate(ca_name: &str) -> Self {
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name);
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("server params");
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes the server's certificate and key into `dir`, returning their paths.
    pub(crate) fn install(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }

    pub(crate) fn trusting_client(&self) -> ClientConfig {
        ClientConfig::default().with_tls(
            TlsOptions::new()
                .with_ca_pem(self.ca_pem.as_bytes().to_vec())
                .with_native_roots(false)
                .with_server_name("localhost"),
        )
    }
}

struct TlsServer {
    server: TestServer,
    tls_addr: std::net::SocketAddr,
    tls: std::sync::Arc<suda_server::tls::TlsSetup>,
    dir: tempfile::TempDir,
}

async fn start_tls(pki: &Pki) -> TlsServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = pki.install(dir.path());
    let mut config = test_config();
    config.tls_listen = Some("127.0.0.1:0".parse().expect("addr"));
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    let server = suda_server::Server::bind(config).expect("bind");
    let tls_addr = server.tls_local_addr().expect("tls listener");
    let tls = server.tls().expect("tls setup");
    TlsServer {
        server: TestServer::start_server(server),
        tls_addr,
        tls,
        dir,
    }
}

async fn tls_login(
    addr: std::net::SocketAddr,
    config: ClientConfig,
    name: &str,
) -> (Client, suda_client::Events) {
    let (client, events) = Client::connect(addr, config).await.expect("TLS connect");
    client.login(name, "").await.expect("login");
    (client, events)
}

#[tokio::test]
async fn tls_and_plaintext_clients_chat_with_each_other() {
    let pki = Pki::generate("suda test CA");
    let tls = start_tls(&pki).await;
    let (alice, mut alice_events) = tls_login(tls.tls_addr, pki.trusting_client(), "alice").await;
    let mut bob = Raw::login(tls.server.addr, "bob").await;

    let id = alice.broadcast("encrypted hello").await.expect("broadcast");
    let (from, text, got) = chat(&bob.recv().await);
    assert_eq!(
        (from.as_str(), text.as_str(), got),
        ("alice", "encrypted hello", id)
    );

    let (result, id) = bob.whisper("alice", "plain reply").await;
    assert_eq!(result, ResultCode::OK);
    match alice_events.next().await {
        Some(Event::Whisper(m)) => assert_eq!((m.text.as_str(), m.message_id), ("plain reply", id)),
        other => panic!("unexpected {other:?}"),
    }
    // A large message crosses several TLS records intact.
    let big = "é".repeat(2000);
    alice.broadcast(&big).await.expect("broadcast");
    assert_eq!(chat(&bob.recv().await).1, big);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_handshake_cleanly() {
    let pki = Pki::generate("suda test CA");
    let stranger = Pki::generate("some other CA");
    let tls = start_tls(&pki).await;
    match Client::connect(tls.tls_addr, stranger.trusting_client()).await {
        Err(ClientError::Tls(err)) => assert_eq!(err.kind(), TlsErrorKind::UntrustedCertificate),
        other => panic!(
            "expected an untrusted-certificate error, got {:?}",
            other.map(|_| ())
        ),
    }
    // The server is unharmed.
    tls_login(tls.tls_addr, pki.trusting_client(), "after").await;
}

#[tokio::test]
async fn plaintext_sent_to_the_tls_port_is_closed_cleanly() {
    let pki = Pki::generate("suda test CA");
    let tls = start_tls(&pki).await;
    let mut raw = tokio::net::TcpStream::connect(tls.tls_addr)
        .await
        .expect("connect");
    raw.write_all(&encode(&suda_protocol::Packet::LoginReq {
        username: "confused".into(),
        password: "".into(),
    }))
    .await
    .expect("write");
    // The server answers with at most a TLS alert, then closes: never a hang, never chat.
    let mut reply = Vec::new();
    let read = tokio::time::timeout(PATIENCE, raw.read_to_end(&mut reply)).await;
    match read.expect("closed in time") {
        Ok(_) => assert!(
            reply.is_empty() || reply[0] == 0x15,
            "an alert at most: {reply:?}"
        ),
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset),
    }
    tls_login(tls.tls_addr, pki.trusting_client(), "after").await;
}

#[tokio::test]
async fn a_reloaded_certificate_serves_new_connections_without_dropping_old_ones() {
    let old = Pki::generate("old CA");
    let new = Pki::generate("new CA");
    let tls = start_tls(&old).await;
    let (early, _early_events) = tls_login(tls.tls_addr, old.trusting_client(), "early").await;

    new.install(tls.dir.path());
    tls.tls.reload().expect("reload");

    // The connection made before the reload keeps working.
    early.ping().await.expect("old connection alive");
    early.broadcast("still here").await.expect("broadcast");
    // New connections get the new certificate.
    tls_login(tls.tls_addr, new.trusting_client(), "late").await;
    assert!(matches!(
        Client::connect(tls.tls_addr, old.trusting_client()).await,
        Err(ClientError::Tls(_))
    ));
    // A broken file is refused and the working certificate stays.
    std::fs::write(tls.dir.path().join("key.pem"), "not a key").expect("write");
    assert!(tls.tls.reload().is_err());
    tls_login(tls.tls_addr, new.trusting_client(), "later").await;
}
