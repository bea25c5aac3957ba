//! The `suda` binary in non-interactive mode, against a scripted fake server.
//!
//! Each test starts a listener on `127.0.0.1:0`, runs the real binary with piped stdin, plays
//! the server's part packet by packet, then checks the exit status and output.

use std::process::Stdio;

use bytes::BytesMut;
use suda_protocol::{ErrorCode, MAX_PACKET_LIMIT, Packet, ResultCode, decode, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

struct Peer {
    stream: TcpStream,
    buf: BytesMut,
}

impl Peer {
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
    }

    /// Accepts the login that every run starts with.
    async fn accept_login(&mut self, user: &str) {
        match self.expect().await {
            Packet::LoginReq { username, .. } => assert_eq!(username, user),
            other => panic!("expected LOGIN_REQ, got {other:?}"),
        }
        self.send(&[Packet::LoginRes {
            result: ResultCode::OK,
            session_id: 1,
        }])
        .await;
    }
}

/// Starts `suda` against a fresh listener with `stdin` piped in, and accepts its connection.
async fn start(stdin: &str, extra: &[&str]) -> (Child, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_suda"))
        .args(["--server", &addr, "--user", "alice"])
        .args(extra)
        .env_remove("SUDA_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run suda");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let (stream, _) = listener.accept().await.expect("accept");
    (
        child,
        Peer {
            stream,
            buf: BytesMut::new(),
        },
    )
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
    assert!(
        server.recv().await.is_none(),
        "suda hangs up after stdin ends"
    );

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
    let (child, mut server) = start("", &["--wait-secs", "600"]).await;
    server.accept_login("alice").await;
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
