//! The `suda` binary in non-interactive mode, against a scripted fake server.
//!
//! Each test starts a listener on `127.0.0.1:0`, runs the real binary with piped stdin, plays
//! the server's part packet by packet, then checks the exit status and output. The TLS tests do
//! the same behind rustls, with certificates made by `rcgen` for the test.

mod support;

use std::process::Stdio;
use std::sync::Arc;

use bytes::BytesMut;
use suda_protocol::{ErrorCode, MAX_PACKET_LIMIT, Packet, ResultCode, decode, encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::support::spawn_suda_with_input;

/// Plain TCP or TLS: the server's part is played the same way over either.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

struct Peer {
    stream: Box<dyn Stream>,
    buf: BytesMut,
}

impl Peer {
    fn new(stream: impl Stream + 'static) -> Self {
        Self {
            stream: Box::new(stream),
            buf: BytesMut::new(),
        }
    }

    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = decode(&mut self.buf, MAX_PACKET_LIMIT).expect("valid packet") {
                return Some(packet);
            }
            self.buf.reserve(4096);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn expect(&mut self) -> Packet {
        self.recv().await.expect("a packet from suda")
    }

    async fn send(&mut self, packets: &[Packet]) {
        let mut out = BytesMut::new();
        for packet in packets {
            encode(packet, &mut out).expect("encodable");
        }
        self.stream.write_all(&out).await.expect("write");
        // TLS keeps written bytes in its session until flushed.
        self.stream.flush().await.expect("flush");
    }

    /// Accepts the login that every run starts with, the 1.3 opt-in after it, and the
    /// session-token request that follows when reconnecting is on (the default), handing out
    /// the token `t1`.
    async fn accept_login(&mut self, user: &str) {
        self.accept_login_only(user).await;
        assert_eq!(self.expect().await, Packet::SessionTokenReq);
        self.send(&[Packet::SessionTokenRes {
            result: ResultCode::OK,
            token: "t1".into(),
            grace_ms: 60_000,
        }])
        .await;
    }

    /// Accepts the login and the opt-in to protocol 1.3 notifications that follows it, without
    /// a token request after them (`--no-reconnect`).
    async fn accept_login_only(&mut self, user: &str) {
        match self.expect().await {
            Packet::LoginReq { username, .. } => assert_eq!(username, user),
            other => panic!("expected LOGIN_REQ, got {other:?}"),
        }
        self.send(&[Packet::LoginRes {
            result: ResultCode::OK,
            session_id: 1,
        }])
        .await;
        assert_eq!(
            self.expect().await,
            Packet::SetStatusReq {
                status: 0,
                text: "".into()
            },
            "suda opts in to rooms, presence and notices"
        );
        self.send(&[Packet::SetStatusRes {
            result: ResultCode::OK,
        }])
        .await;
    }

    /// Accepts the logout every run ends with, and sees suda hang up.
    async fn accept_logout(&mut self) {
        assert_eq!(self.expect().await, Packet::LogoutReq, "suda logs out");
        self.send(&[Packet::LogoutRes {
            result: ResultCode::OK,
        }])
        .await;
        assert!(
            self.recv().await.is_none(),
            "suda hangs up after logging out"
        );
    }
}

/// Starts `suda` against a fresh listener with `stdin` piped in, and accepts its connection.
async fn start(stdin: &str, extra: &[&str]) -> (Child, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let child = spawn(&addr, stdin, extra).await;
    let (stream, _) = listener.accept().await.expect("accept");
    (child, Peer::new(stream))
}

/// Runs `suda --server addr --user alice extra...` with `stdin` written to it and closed.
async fn spawn(addr: &str, stdin: &str, extra: &[&str]) -> Child {
    spawn_suda_with_input(addr, "alice", extra, stdin).await
}

fn broadcast_notify(from: &str, text: &str) -> Packet {
    Packet::BroadcastNotify {
        message_id: 9,
        sent_at_ms: 1_700_000_000_000,
        from: from.into(),
        text: text.into(),
    }
}

#[tokio::test]
async fn sends_every_line_prints_incoming_messages_and_exits_zero() {
    let (child, mut server) = start("hello all\n/w bob hi bob\n", &[]).await;
    server.accept_login("alice").await;

    match server.expect().await {
        Packet::BroadcastReq { text } => assert_eq!(text, "hello all"),
        other => panic!("{other:?}"),
    }
    server
        .send(&[
            broadcast_notify("bob", "hi alice"),
            Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: 10,
            },
        ])
        .await;
    match server.expect().await {
        Packet::WhisperReq { to, text } => {
            assert_eq!(to, "bob");
            assert_eq!(text, "hi bob");
        }
        other => panic!("{other:?}"),
    }
    server
        .send(&[Packet::WhisperRes {
            result: ResultCode::OK,
            message_id: 11,
        }])
        .await;
    server.accept_logout().await;

    let output = child.wait_with_output().await.expect("suda exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().next().expect("one incoming message");
    assert!(
        line.starts_with('[') && line.ends_with("] <bob> hi alice"),
        "{stdout}"
    );
}

#[tokio::test]
async fn room_presence_and_operator_commands_reach_the_server_and_their_traffic_is_printed() {
    let stdin = "/join #lobby pw\n/r lobby hi room\n/rooms\n/members lobby\n/watch bob\n\
                 /mute lobby bob 10m calm down\n/ipban 192.0.2.1 1h flood\n/notice restart\n";
    let (child, mut server) = start(stdin, &[]).await;
    server.accept_login("alice").await;

    assert_eq!(
        server.expect().await,
        Packet::JoinRoomReq {
            room: "lobby".into(),
            password: "pw".into()
        }
    );
    server
        .send(&[Packet::JoinRoomRes {
            result: ResultCode::OK,
            room: "Lobby".into(),
            flags: 0,
            members: 2,
            topic: "".into(),
        }])
        .await;
    assert_eq!(
        server.expect().await,
        Packet::RoomChatReq {
            room: "lobby".into(),
            text: "hi room".into()
        }
    );
    server
        .send(&[
            Packet::RoomEventNotify {
                event_id: 20,
                sent_at_ms: 1_700_000_000_000,
                room: "Lobby".into(),
                kind: 4,
                user: "bob".into(),
                actor: "".into(),
                text: "rust talk".into(),
            },
            Packet::RoomChatNotify {
                message_id: 21,
                sent_at_ms: 1_700_000_000_000,
                room: "Lobby".into(),
                from: "bob".into(),
                text: "hi alice".into(),
            },
            Packet::RoomChatRes {
                result: ResultCode::OK,
                message_id: 22,
            },
        ])
        .await;
    assert_eq!(
        server.expect().await,
        Packet::ListRoomsReq {
            after: "".into(),
            limit: 100
        }
    );
    server
        .send(&[
            Packet::ListRoomsRes {
                result: ResultCode::OK,
                count: 1,
            },
            Packet::RoomItem {
                room: "Lobby".into(),
                flags: 0b101,
                members: 2,
                topic: "rust talk".into(),
            },
        ])
        .await;
    assert!(matches!(
        server.expect().await,
        Packet::RoomMembersReq { .. }
    ));
    server
        .send(&[
            Packet::RoomMembersRes {
                result: ResultCode::OK,
                count: 2,
            },
            Packet::UserItem {
                user: "alice".into(),
                status: 0,
                role: 0,
                text: "".into(),
            },
            Packet::UserItem {
                user: "bob".into(),
                status: 1,
                role: 2,
                text: "lunch".into(),
            },
        ])
        .await;
    assert_eq!(
        server.expect().await,
        Packet::WatchReq {
            watch: 1,
            user: "bob".into()
        }
    );
    server
        .send(&[Packet::WatchRes {
            result: ResultCode::OK,
            user: "bob".into(),
            status: 1,
            text: "lunch".into(),
        }])
        .await;
    assert_eq!(
        server.expect().await,
        Packet::RoomModerateReq {
            room: "lobby".into(),
            action: 3,
            user: "bob".into(),
            duration_s: 600,
            text: "calm down".into()
        }
    );
    server
        .send(&[Packet::RoomModerateRes {
            result: ResultCode::NOT_PERMITTED,
        }])
        .await;
    assert_eq!(
        server.expect().await,
        Packet::ModerateReq {
            action: 3,
            target: "192.0.2.1".into(),
            duration_s: 3600,
            reason: "flood".into()
        }
    );
    server
        .send(&[Packet::ModerateRes {
            result: ResultCode::OK,
        }])
        .await;
    assert_eq!(
        server.expect().await,
        Packet::SystemNoticeReq {
            text: "restart".into()
        }
    );
    server
        .send(&[
            Packet::SystemNoticeNotify {
                message_id: 30,
                sent_at_ms: 1_700_000_000_000,
                from: "alice".into(),
                text: "restart".into(),
            },
            Packet::PresenceNotify {
                user: "bob".into(),
                status: 2,
                text: "".into(),
            },
            Packet::ModerationNotify {
                action: 6,
                actor: "root".into(),
                expires_at_ms: 0,
                reason: "too loud".into(),
            },
            Packet::SystemNoticeRes {
                result: ResultCode::OK,
                message_id: 30,
            },
        ])
        .await;
    server.accept_logout().await;

    let output = child.wait_with_output().await.expect("suda exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The refused mute fails the run, and says why.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not done in #lobby: not permitted (NOT_PERMITTED)"),
        "{stderr}"
    );
    for expected in [
        "#Lobby * bob set the topic: rust talk",
        "#Lobby <bob> hi alice",
        "1 room:",
        "  #Lobby (2 members) [persistent] [password] - rust talk",
        "2 members in #lobby:",
        "  alice",
        "  ~bob (away: lunch)",
        "bob is away: lunch",
        "!! notice from alice: restart",
        "* bob is offline",
        "!! root muted you: too loud",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }
}

#[tokio::test]
async fn a_refused_whisper_is_reported_and_the_exit_status_says_so() {
    let (child, mut server) = start("/w nobody psst\nstill here\n", &[]).await;
    server.accept_login("alice").await;
    assert!(matches!(server.expect().await, Packet::WhisperReq { .. }));
    server
        .send(&[Packet::WhisperRes {
            result: ResultCode::USER_NOT_FOUND,
            message_id: 0,
        }])
        .await;
    // The next line is still sent after the refusal.
    assert!(matches!(server.expect().await, Packet::BroadcastReq { .. }));
    server
        .send(&[Packet::BroadcastRes {
            result: ResultCode::OK,
            message_id: 1,
        }])
        .await;
    server.accept_logout().await;

    let output = child.wait_with_output().await.expect("suda exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("whisper to nobody not sent: no such user online (USER_NOT_FOUND)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_refused_login_fails_with_a_clear_message() {
    let (child, mut server) = start("never sent\n", &[]).await;
    assert!(matches!(server.expect().await, Packet::LoginReq { .. }));
    server
        .send(&[Packet::LoginRes {
            result: ResultCode::NAME_IN_USE,
            session_id: 0,
        }])
        .await;
    let output = child.wait_with_output().await.expect("suda exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("cannot log in as alice: that name is already online (NAME_IN_USE)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn wait_secs_keeps_printing_until_the_server_closes() {
    // Stdin ends at once; the lingering client still prints what arrives, and a server that
    // closes with ERROR_NOTIFY ends it with a non-zero status and the reason.
    let (child, mut server) = start("", &["--wait-secs", "600", "--no-reconnect"]).await;
    server.accept_login_only("alice").await;
    server
        .send(&[
            broadcast_notify("carol", "late news"),
            Packet::ErrorNotify {
                code: ErrorCode::SERVER_SHUTDOWN,
                reason: "maintenance".into(),
            },
        ])
        .await;
    let output = child.wait_with_output().await.expect("suda exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("<carol> late news"), "{stdout}");
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "connection lost: the server closed the connection: maintenance (SERVER_SHUTDOWN)"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_lost_connection_is_resumed_and_the_missed_messages_are_printed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let child = spawn(&addr, "first\nsecond\n", &[]).await;
    let mut server = Peer::new(listener.accept().await.expect("accept").0);
    server.accept_login("alice").await;
    assert!(matches!(server.expect().await, Packet::BroadcastReq { text } if text == "first"));
    // The connection drops before the answer: "first" may or may not have gone out.
    drop(server);

    let mut server = Peer::new(listener.accept().await.expect("accept again").0);
    assert_eq!(
        server.expect().await,
        Packet::ResumeReq {
            username: "alice".into(),
            token: "t1".into(),
            last_message_id: 0,
        }
    );
    server
        .send(&[
            Packet::ResumeRes {
                result: ResultCode::OK,
                session_id: 1,
                token: "t2".into(),
                replayed: 1,
            },
            broadcast_notify("bob", "sent while you were away"),
        ])
        .await;
    assert!(matches!(server.expect().await, Packet::BroadcastReq { text } if text == "second"));
    server
        .send(&[Packet::BroadcastRes {
            result: ResultCode::OK,
            message_id: 12,
        }])
        .await;
    server.accept_logout().await;

    let output = child.wait_with_output().await.expect("suda exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("<bob> sent while you were away"),
        "{stdout}"
    );
    for line in [
        "suda: connection lost: the server closed the connection",
        "suda: reconnecting (attempt 1)…",
        "suda: resumed, 1 missed message replayed",
        "suda: message may not have been sent",
        "suda: 1 line(s) were not sent",
    ] {
        assert!(stderr.contains(line), "{line:?} in {stderr}");
    }
    // The lost line makes the run fail, as any line that did not get through.
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}

#[tokio::test]
async fn no_reconnect_asks_for_no_token_and_exits_when_the_connection_drops() {
    let (child, mut server) = start("", &["--wait-secs", "600", "--no-reconnect"]).await;
    server.accept_login_only("alice").await;
    // The next packet would be a token request if reconnecting were on; there is none, and the
    // hang-up ends the run.
    drop(server);
    let output = child.wait_with_output().await.expect("suda exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("connection lost: the server closed the connection"),
        "{stderr}"
    );
    assert!(!stderr.contains("reconnecting"), "{stderr}");
}

#[tokio::test]
async fn connecting_to_nothing_fails_with_a_clear_message() {
    // Bind then drop, so the port is known to be closed.
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr").to_string()
    };
    let output = Command::new(env!("CARGO_BIN_EXE_suda"))
        .args(["--server", &addr, "--user", "alice"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run suda");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("cannot connect to {addr}")),
        "{stderr}"
    );
}

/// A CA and a server certificate it issued for `localhost` and `127.0.0.1`, made for one test.
struct Pki {
    ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Pki {
    fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca =
            CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("signed");
        Self {
            ca_pem: ca.pem(),
            server_chain: vec![cert.der().clone()],
            server_key: rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// Writes the CA certificate to a file of its own and returns its path.
    fn write_ca(&self, test: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("suda-{test}-{}-ca.pem", std::process::id()));
        std::fs::write(&path, &self.ca_pem).expect("write the CA file");
        path
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
            .expect("server certificate");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

#[tokio::test]
async fn script_mode_works_over_tls_with_a_ca_file() {
    let pki = Pki::generate();
    let ca = pki.write_ca("script-tls");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    // By name, so the certificate is checked for `localhost`.
    let addr = format!("localhost:{}", listener.local_addr().expect("addr").port());
    let ca_arg = ca.to_str().expect("UTF-8 path");
    let child = spawn(&addr, "hello over tls\n", &["--tls", "--tls-ca", ca_arg]).await;
    let (stream, _) = listener.accept().await.expect("accept");
    let stream = pki.acceptor().accept(stream).await.expect("TLS handshake");
    let mut server = Peer::new(stream);

    server.accept_login("alice").await;
    match server.expect().await {
        Packet::BroadcastReq { text } => assert_eq!(text, "hello over tls"),
        other => panic!("{other:?}"),
    }
    server
        .send(&[
            broadcast_notify("bob", "encrypted hi"),
            Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: 10,
            },
        ])
        .await;
    server.accept_logout().await;

    let output = child.wait_with_output().await.expect("suda exits");
    let _ = std::fs::remove_file(&ca);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stdout.contains("<bob> encrypted hi"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[tokio::test]
async fn an_untrusted_server_is_refused_and_insecure_warns_but_connects() {
    let pki = Pki::generate();
    // A CA that did not issue the server's certificate.
    let other_ca = Pki::generate().write_ca("untrusted");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let ca_arg = other_ca.to_str().expect("UTF-8 path");

    // SUDA_TLS_CA alone turns TLS on.
    let child = Command::new(env!("CARGO_BIN_EXE_suda"))
        .args(["--server", &addr, "--user", "alice"])
        .env("SUDA_TLS_CA", ca_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run suda");
    let (stream, _) = listener.accept().await.expect("accept");
    assert!(pki.acceptor().accept(stream).await.is_err(), "suda aborts");
    let output = child.wait_with_output().await.expect("suda exits");
    let _ = std::fs::remove_file(&other_ca);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!(
            "cannot connect to {addr}: TLS handshake failed: the server's certificate is not trusted"
        )),
        "{stderr}"
    );

    let child = spawn(&addr, "/quit\n", &["--insecure"]).await;
    let (stream, _) = listener.accept().await.expect("accept");
    let stream = pki.acceptor().accept(stream).await.expect("TLS handshake");
    let mut server = Peer::new(stream);
    server.accept_login("alice").await;
    server.accept_logout().await;
    let output = child.wait_with_output().await.expect("suda exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: --insecure: the server's certificate is not verified"),
        "{stderr}"
    );
}
