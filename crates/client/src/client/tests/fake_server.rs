//! A scripted stand-in for the server: a real socket on `127.0.0.1:0`, driven by the test body,
//! over plain TCP or, with [`TlsListener`], over TLS with certificates made by [`Pki`].
//!
//! The tests interleave client calls and server steps with `tokio::join!`, so every step waits
//! for the bytes it needs; nothing relies on sleeping.

use std::net::SocketAddr;

use bytes::BytesMut;
use suda_protocol::{MAX_PACKET_LIMIT, Packet, decode, encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{Client, ClientConfig, Events};

/// The byte stream of a [`Peer`]: plain TCP or TLS, the tests do not care which.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The server's end of one connection.
pub(super) struct Peer {
    stream: Box<dyn Stream>,
    buf: BytesMut,
    /// The ALPN protocol agreed in the TLS handshake.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    alpn: Option<Vec<u8>>,
}

/// Connects a client with `config` to a fresh listener and returns both ends.
pub(super) async fn connect(config: ClientConfig) -> (Client, Events, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (connected, accepted) = tokio::join!(Client::connect(addr, config), listener.accept());
    let (client, events) = connected.expect("client connects");
    let (stream, _) = accepted.expect("accept");
    (client, events, Peer::new(Box::new(stream), None))
}

/// A listener that can accept again, for a client that reconnects.
pub(super) struct FakeServer {
    listener: TcpListener,
}

impl FakeServer {
    pub(super) async fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("local addr")
    }

    /// The next connection; panics if none comes within 10 s.
    pub(super) async fn accept(&self) -> Peer {
        let accepted =
            tokio::time::timeout(std::time::Duration::from_secs(10), self.listener.accept())
                .await
                .expect("the client connects")
                .expect("accept");
        Peer::new(Box::new(accepted.0), None)
    }

    /// Connects a client with `config` to this server and returns both ends.
    pub(super) async fn connect(&self, config: ClientConfig) -> (Client, Events, Peer) {
        let (connected, peer) = tokio::join!(Client::connect(self.addr(), config), self.accept());
        let (client, events) = connected.expect("client connects");
        (client, events, peer)
    }
}

impl Peer {
    fn new(stream: Box<dyn Stream>, alpn: Option<Vec<u8>>) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            alpn,
        }
    }

    /// The next packet from the client, `None` once the client has closed the connection.
    pub(super) async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = decode(&mut self.buf, MAX_PACKET_LIMIT).expect("valid packet") {
                return Some(packet);
            }
            self.buf.reserve(4096);
            // A reset counts as closed: the client may close with unread data in flight.
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next packet from the client, which must come.
    pub(super) async fn expect(&mut self) -> Packet {
        self.recv().await.expect("the client sent a packet")
    }

    /// Sends `packets` in one write.
    pub(super) async fn send(&mut self, packets: &[Packet]) {
        let mut out = BytesMut::new();
        for packet in packets {
            encode(packet, &mut out).expect("encodable");
        }
        self.send_raw(&out).await;
    }

    /// Sends bytes that need not be a valid packet.
    pub(super) async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        // A TLS stream holds written bytes in its session until flushed.
        self.stream.flush().await.expect("flush");
    }

    /// Closes the connection in order: over TLS, with `close_notify`.
    #[cfg(feature = "tls")]
    pub(super) async fn shut_down(&mut self) {
        self.stream.shutdown().await.expect("shutdown");
    }

    /// The ALPN protocol agreed in the TLS handshake, if any.
    #[cfg(feature = "tls")]
    pub(super) fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
}

#[cfg(feature = "tls")]
pub(super) use self::tls::{Pki, TlsListener};

#[cfg(feature = "tls")]
mod tls {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::Peer;

    /// Certificates made for one test: a CA, a server certificate it issued for `localhost` and
    /// `127.0.0.1`, and a self-signed one for the same names that nothing trusts.
    pub(in crate::client::tests) struct Pki {
        /// The CA's certificate, to trust.
        pub(in crate::client::tests) ca_pem: String,
        /// Issued by the CA.
        pub(in crate::client::tests) trusted: Identity,
        /// Self-signed.
        pub(in crate::client::tests) untrusted: Identity,
    }

    /// A server's certificate chain and private key.
    pub(in crate::client::tests) struct Identity {
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    }

    const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

    impl Pki {
        pub(in crate::client::tests) fn generate() -> Self {
            let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
            ca_params
                .distinguished_name
                .push(DnType::CommonName, "suda test CA");
            ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key"))
                .expect("CA");

            let server_key = KeyPair::generate().expect("key");
            let server_cert = CertificateParams::new(NAMES.map(String::from))
                .expect("params")
                .signed_by(&server_key, &ca)
                .expect("signed");

            let untrusted_key = KeyPair::generate().expect("key");
            let untrusted_cert = CertificateParams::new(NAMES.map(String::from))
                .expect("params")
                .self_signed(&untrusted_key)
                .expect("self-signed");

            Self {
                ca_pem: ca.pem(),
                trusted: Identity::new(server_cert.der().clone(), &server_key),
                untrusted: Identity::new(untrusted_cert.der().clone(), &untrusted_key),
            }
        }
    }

    impl Identity {
        fn new(cert: CertificateDer<'static>, key: &KeyPair) -> Self {
            Self {
                chain: vec![cert],
                key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            }
        }
    }

    /// A listener on `127.0.0.1:0` that speaks TLS with one identity.
    pub(in crate::client::tests) struct TlsListener {
        listener: TcpListener,
        acceptor: TlsAcceptor,
    }

    impl TlsListener {
        /// Listens with `identity`, offering `alpn` if given (a server without ALPN otherwise).
        pub(in crate::client::tests) async fn bind(
            identity: &Identity,
            alpn: Option<&[u8]>,
        ) -> Self {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(identity.chain.clone(), identity.key.clone_key())
                .expect("server certificate");
            config.alpn_protocols = alpn.into_iter().map(<[u8]>::to_vec).collect();
            Self {
                listener: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
                acceptor: TlsAcceptor::from(Arc::new(config)),
            }
        }

        pub(in crate::client::tests) fn addr(&self) -> SocketAddr {
            self.listener.local_addr().expect("local addr")
        }

        /// Accepts one connection and completes the handshake; fails when the client rejects it.
        pub(in crate::client::tests) async fn accept(&self) -> io::Result<Peer> {
            let (stream, _) = self.listener.accept().await?;
            let stream = self.acceptor.accept(stream).await?;
            let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
            Ok(Peer::new(Box::new(stream), alpn))
        }
    }
}
