//! The client over TLS, against the fake server behind rustls, with certificates made per test.

use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::config;
use super::fake_server::{Pki, TlsListener};
use crate::{Client, ClientConfig, ClientError, Event, Events, TlsErrorKind, TlsOptions};

/// Trusts only `pki`'s CA, so that no test depends on the machine's trust store.
fn trusting(pki: &Pki) -> TlsOptions {
    TlsOptions::new()
        .with_native_roots(false)
        .with_ca_pem(pki.ca_pem.clone())
}

/// Connects `config` to `server` and returns the client's outcome and, if the handshake
/// succeeded on the server's side too, the server's end.
async fn connect_to(
    server: &TlsListener,
    addr: &str,
    config: ClientConfig,
) -> (
    Result<(Client, Events), ClientError>,
    Option<super::fake_server::Peer>,
) {
    let (connected, accepted) = tokio::join!(Client::connect(addr, config), server.accept());
    (connected, accepted.ok())
}

fn tls_kind(outcome: Result<(Client, Events), ClientError>) -> TlsErrorKind {
    match outcome {
        Err(ClientError::Tls(error)) => error.kind(),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
        Ok(_) => panic!("expected a TLS error, got a connection"),
    }
}

#[tokio::test]
async fn login_and_chat_over_tls_with_the_ca_trusted() {
    let pki = Pki::generate();
    let server = TlsListener::bind(&pki.trusted, Some(b"suda/1")).await;
    // By DNS name, with the system's roots on as well: the default way to add a private CA.
    let addr = format!("localhost:{}", server.addr().port());
    let tls = TlsOptions::new().with_ca_pem(pki.ca_pem.clone());
    let (connected, peer) = connect_to(&server, &addr, config().with_tls(tls)).await;
    let (client, mut events) = connected.expect("connects over TLS");
    let mut server = peer.expect("handshake done");
    assert_eq!(server.alpn(), Some(&b"suda/1"[..]));

    let (session, ()) = tokio::join!(client.login("alice", "pw"), async {
        assert!(matches!(server.expect().await, Packet::LoginReq { .. }));
        server
            .send(&[Packet::LoginRes {
                result: ResultCode::OK,
                session_id: 7,
            }])
            .await;
    });
    assert_eq!(session.expect("logged in"), 7);

    // Larger than one TLS record (16 KiB), so the packet arrives in pieces.
    let long = "z".repeat(20_000);
    let (sent, ()) = tokio::join!(client.broadcast("hi over TLS"), async {
        match server.expect().await {
            Packet::BroadcastReq { text } => assert_eq!(text, "hi over TLS"),
            other => panic!("{other:?}"),
        }
        server
            .send(&[
                Packet::BroadcastNotify {
                    message_id: 1,
                    sent_at_ms: 0,
                    from: "bob".into(),
                    text: long.as_str().into(),
                },
                Packet::BroadcastRes {
                    result: ResultCode::OK,
                    message_id: 2,
                },
            ])
            .await;
    });
    assert_eq!(sent.expect("broadcast"), 2);
    match events.next().await {
        Some(Event::Broadcast(msg)) => {
            assert_eq!((msg.from.as_str(), msg.text.len()), ("bob", 20_000))
        }
        other => panic!("{other:?}"),
    }

    client.close().await;
    // `close_notify` makes this a clean end of stream on the server's side.
    assert!(server.recv().await.is_none());
}

#[tokio::test]
async fn the_ip_address_connected_to_is_verified_by_default() {
    let pki = Pki::generate();
    let server = TlsListener::bind(&pki.trusted, None).await;
    let addr = server.addr().to_string();
    let (connected, peer) = connect_to(&server, &addr, config().with_tls(trusting(&pki))).await;
    let (client, _events) = connected.expect("the certificate names 127.0.0.1");
    let mut server = peer.expect("handshake done");
    // No ALPN on the server: the protocol is the same without it.
    assert_eq!(server.alpn(), None);
    let (pong, ()) = tokio::join!(client.ping(), async {
        let Packet::Ping { nonce } = server.expect().await else {
            panic!("expected PING");
        };
        server.send(&[Packet::Pong { nonce }]).await;
    });
    pong.expect("ping over TLS");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_handshake() {
    let pki = Pki::generate();
    let server = TlsListener::bind(&pki.untrusted, None).await;
    let addr = server.addr().to_string();
    let (connected, peer) = connect_to(&server, &addr, config().with_tls(trusting(&pki))).await;
    assert!(peer.is_none(), "the client aborts the handshake");
    let Err(ClientError::Tls(error)) = connected else {
        panic!("expected a TLS error");
    };
    assert_eq!(error.kind(), TlsErrorKind::UntrustedCertificate, "{error}");
    assert_eq!(
        error.to_string(),
        "TLS handshake failed: the server's certificate is not trusted"
    );
    // The details are in the source, for people.
    let source = std::error::Error::source(&error).expect("a source");
    assert!(source.to_string().contains("UnknownIssuer"), "{source}");
}

#[tokio::test]
async fn a_certificate_for_another_name_fails_the_handshake() {
    let pki = Pki::generate();
    let server = TlsListener::bind(&pki.trusted, None).await;
    let addr = server.addr().to_string();
    let tls = trusting(&pki).with_server_name("chat.example.com");
    let (connected, _) = connect_to(&server, &addr, config().with_tls(tls)).await;
    let Err(ClientError::Tls(error)) = connected else {
        panic!("expected a TLS error");
    };
    assert_eq!(error.kind(), TlsErrorKind::WrongServerName, "{error}");
    assert!(error.to_string().contains("chat.example.com"), "{error}");
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_untrusted_certificate() {
    let pki = Pki::generate();
    let server = TlsListener::bind(&pki.untrusted, None).await;
    let addr = server.addr().to_string();
    let tls = TlsOptions::new()
        .with_native_roots(false)
        .with_server_name("anything.example")
        .insecure_skip_verify();
    let (connected, peer) = connect_to(&server, &addr, config().with_tls(tls)).await;
    let (client, _events) = connected.expect("anything goes");
    let mut server = peer.expect("handshake done");
    let (session, ()) = tokio::join!(client.login("alice", ""), async {
        server.expect().await;
        server
            .send(&[Packet::LoginRes {
                result: ResultCode::OK,
                session_id: 1,
            }])
            .await;
    });
    assert_eq!(session.expect("logged in"), 1);
}

#[tokio::test]
async fn a_silent_plaintext_server_is_a_tls_timeout_not_a_hang() {
    // A plain suda server reads the ClientHello as the start of a packet and waits for the rest.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let pki = Pki::generate();
    let timeout = Duration::from_millis(300);
    let config = config()
        .with_connect_timeout(timeout)
        .with_tls(trusting(&pki));
    let (connected, accepted) = tokio::join!(
        tokio::time::timeout(
            Duration::from_secs(30),
            Client::connect(addr.as_str(), config)
        ),
        listener.accept()
    );
    let (mut socket, _) = accepted.expect("accept");
    let connected = connected.expect("connect returns within its timeout");
    assert_eq!(tls_kind(connected), TlsErrorKind::Timeout);
    // What the client sent was a TLS record (handshake type 22), not a suda packet.
    let mut first = [0_u8; 1];
    socket.read_exact(&mut first).await.expect("ClientHello");
    assert_eq!(first[0], 22);
}

#[tokio::test]
async fn a_plaintext_server_that_answers_is_a_not_tls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let pki = Pki::generate();
    let plain_server = async {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut hello = [0_u8; 64];
        let _ = socket.read(&mut hello).await.expect("read");
        // A plain suda server takes the ClientHello for the start of a long packet, and gives up
        // on it after its packet deadline with this.
        let mut out = bytes::BytesMut::new();
        suda_protocol::encode(
            &Packet::ErrorNotify {
                code: ErrorCode::PACKET_TIMEOUT,
                reason: "packet incomplete".into(),
            },
            &mut out,
        )
        .expect("encodable");
        socket.write_all(&out).await.expect("write");
        socket
    };
    let (connected, _socket) = tokio::join!(
        Client::connect(addr.as_str(), config().with_tls(trusting(&pki))),
        plain_server
    );
    assert_eq!(tls_kind(connected), TlsErrorKind::NotTls);
}

#[tokio::test]
async fn a_server_that_closes_mid_handshake_is_a_handshake_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let pki = Pki::generate();
    let (connected, ()) = tokio::join!(
        Client::connect(addr.as_str(), config().with_tls(trusting(&pki))),
        async {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut hello = [0_u8; 1];
            socket.read_exact(&mut hello).await.expect("read");
        }
    );
    assert_eq!(tls_kind(connected), TlsErrorKind::Handshake);
}

#[tokio::test]
async fn unusable_tls_options_fail_connect_before_anything_is_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let tls = TlsOptions::new()
        .with_native_roots(false)
        .with_ca_file("/nonexistent/suda-ca.pem");
    let outcome = Client::connect(addr.as_str(), config().with_tls(tls)).await;
    let Err(ClientError::Tls(error)) = outcome else {
        panic!("expected a TLS error");
    };
    assert_eq!(error.kind(), TlsErrorKind::Config);
    assert!(
        error
            .to_string()
            .starts_with("cannot set up TLS: cannot read CA file /nonexistent/suda-ca.pem"),
        "{error}"
    );
}

#[tokio::test]
async fn a_server_hanging_up_over_tls_is_an_eof_with_or_without_close_notify() {
    let pki = Pki::generate();
    for orderly in [true, false] {
        let server = TlsListener::bind(&pki.trusted, None).await;
        let addr = server.addr().to_string();
        let (connected, peer) = connect_to(&server, &addr, config().with_tls(trusting(&pki))).await;
        let (client, mut events) = connected.expect("connects");
        let mut server = peer.expect("handshake done");
        let (outcome, ()) = tokio::join!(client.ping(), async move {
            server.expect().await;
            if orderly {
                server.shut_down().await;
            }
            drop(server);
        });
        assert!(
            matches!(outcome, Err(ClientError::Eof)),
            "{orderly}: {outcome:?}"
        );
        assert!(matches!(
            events.next().await,
            Some(Event::Disconnected(ClientError::Eof))
        ));
    }
}

#[tokio::test]
async fn options_are_prepared_once_and_reused_by_later_connections() {
    let pki = Pki::generate();
    let server = TlsListener::bind(&pki.trusted, None).await;
    let addr = server.addr().to_string();
    let config = config().with_tls(trusting(&pki));
    let options = config.tls.clone().expect("TLS set");
    assert!(!options.is_prepared());
    for _ in 0..2 {
        let (connected, peer) = connect_to(&server, &addr, config.clone()).await;
        connected.expect("connects");
        peer.expect("handshake done");
        // Clones share what the first connection built.
        assert!(options.is_prepared());
    }
}
