//! The `suda-server` binary as outside tooling starts it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::*;

/// A `suda-server` process on an ephemeral port, with its log drained.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    log: tokio::sync::watch::Receiver<String>,
}

impl ServerProcess {
    /// Starts the binary with `args`, first lowering its descriptor limit to `nofile` if given.
    async fn start(args: &[&str], nofile: Option<u32>) -> Self {
        let binary = env!("CARGO_BIN_EXE_suda-server");
        let mut command = match nofile {
            Some(limit) => {
                let mut c = Command::new("sh");
                c.args([
                    "-c",
                    &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
                    binary,
                ]);
                c
            }
            None => Command::new(binary),
        };
        // Nothing on disk unless a test asks for a data directory.
        let store = if args.contains(&"--data-dir") {
            &[][..]
        } else {
            &["--store", "none"][..]
        };
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .args(store)
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start suda-server");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let addr = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                if let Some(rest) = line.split("addr=").nth(1) {
                    if line.contains("listening") {
                        // "listening" (plaintext) or "listening for TLS" with --tls-only.
                        let addr = rest.split_whitespace().next().expect("address");
                        return addr.parse::<SocketAddr>().expect("socket address");
                    }
                }
            }
            panic!("server exited without listening");
        })
        .await
        .expect("server starts in time");
        // Keep draining the log so the server never blocks on a full pipe, and keep it for
        // assertions.
        let (tx, log) = tokio::sync::watch::channel(String::new());
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tx.send_modify(|log| {
                    log.push_str(&line);
                    log.push('\n');
                });
            }
        });
        Self { child, addr, log }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("pid")
    }

    /// Resident memory of the server process, in bytes.
    fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    /// Sends SIGTERM and expects a zero exit.
    async fn terminate(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait");
        assert!(exit.success(), "exit status {exit}");
    }
}

#[tokio::test]
async fn the_binary_serves_and_exits_zero_on_sigterm() {
    let server = ServerProcess::start(&["--workers", "2"], None).await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    alice.broadcast("over the real binary").await;
    assert_eq!(chat(&bob.recv().await).1, "over the real binary");

    let terminated = tokio::spawn(server.terminate());
    alice.expect_closed_with(ErrorCode::SERVER_SHUTDOWN).await;
    bob.expect_closed_with(ErrorCode::SERVER_SHUTDOWN).await;
    terminated.await.expect("terminated cleanly");
}

#[tokio::test]
async fn unfinished_maximum_size_packets_cost_only_their_bytes_and_time_out() {
    const CONNECTIONS: usize = 1000;
    let server = ServerProcess::start(
        &[
            "--workers",
            "2",
            "--max-connections",
            "2000",
            "--packet-timeout",
            "4s",
        ],
        None,
    )
    .await;
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        let mut raw = Raw::connect(server.addr).await;
        raw.ping(i as u64).await;
        clients.push(raw);
    }
    let before = server.rss();
    // Every client sends all but the last byte of a maximum-size (8192-byte) packet.
    let mut packet = vec![0u8; 8192];
    packet[..4].copy_from_slice(&[0x00, 0x20, 0x03, 0x00]);
    packet[4..6].copy_from_slice(&8186u16.to_le_bytes());
    for raw in &mut clients {
        raw.send_bytes(&packet[..8191]).await;
    }
    // Pacing, not synchronisation: give the server a moment to read everything before measuring.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let grown = server.rss().saturating_sub(before);
    let sent = (CONNECTIONS * 8191) as u64;
    assert!(
        grown <= sent + sent / 4 + 4 * 1024 * 1024,
        "server grew by {grown} bytes holding {sent} bytes of partial packets"
    );
    for raw in &mut clients {
        raw.expect_closed_with(ErrorCode::PACKET_TIMEOUT).await;
    }
    server.terminate().await;
}

#[tokio::test]
async fn running_out_of_descriptors_backs_off_and_recovers() {
    let server = ServerProcess::start(&["--workers", "1"], Some(48)).await;
    // Connect until a client is not served: the server has run out of descriptors.
    let mut served = Vec::new();
    let mut waiting = loop {
        let mut raw = Raw::connect(server.addr).await;
        raw.send(&Packet::LoginReq {
            username: format!("user{}", served.len()).as_str().into(),
            password: "".into(),
        })
        .await;
        match tokio::time::timeout(Duration::from_secs(3), raw.recv()).await {
            Ok(Packet::LoginRes { result, .. }) => {
                assert_eq!(result, ResultCode::OK);
                served.push(raw);
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break raw,
        }
        assert!(served.len() < 100, "the descriptor limit never bit");
    };
    assert!(served.len() > 10, "only {} served", served.len());
    // Existing clients are still served while the accept loop backs off.
    let (result, _) = served[0].broadcast("still here").await;
    assert_eq!(result, ResultCode::OK);
    for other in &mut served[1..] {
        assert_eq!(chat(&other.recv().await).1, "still here");
    }
    assert!(server.log.borrow().contains("backing off"));
    // Free some descriptors: the waiting client is accepted and its login answered.
    served.truncate(served.len() - 5);
    match waiting.recv().await {
        Packet::LoginRes { result, .. } => assert_eq!(result, ResultCode::OK),
        other => panic!("unexpected {other:?}"),
    }
    drop(served);
    server.terminate().await;
}

#[tokio::test]
async fn bad_configuration_is_a_clear_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_suda-server"))
        .args(["--listen", "127.0.0.1:0", "--max-packet", "70000"])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_packet"), "{stderr}");
}

#[tokio::test]
async fn sighup_reloads_the_tls_certificate_without_dropping_anyone() {
    use crate::tls::Pki;
    let old = Pki::generate("old CA");
    let new = Pki::generate("new CA");
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = old.install(dir.path());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let server = ServerProcess::start(
        &[
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-only",
        ],
        None,
    )
    .await;
    let (early, _events) = suda_client::Client::connect(server.addr, old.trusting_client())
        .await
        .expect("TLS connect");
    early.login("early", "").await.expect("login");

    new.install(dir.path());
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut log = server.log.clone();
    tokio::time::timeout(
        PATIENCE,
        log.wait_for(|l| l.contains("TLS certificate reloaded")),
    )
    .await
    .expect("reloaded in time")
    .expect("log");
    early.ping().await.expect("old connection alive");
    let (late, _events) = suda_client::Client::connect(server.addr, new.trusting_client())
        .await
        .expect("new certificate served");
    late.login("late", "").await.expect("login");
    server.terminate().await;
}

impl ServerProcess {
    /// SIGKILL: no shutdown, no flush.
    async fn kill_hard(mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }
}

/// Every message id in the server's broadcast history, read page by page.
async fn all_history_ids(addr: SocketAddr) -> std::collections::HashSet<u64> {
    let mut reader = Raw::login(addr, "auditor").await;
    let mut ids = std::collections::HashSet::new();
    let mut before = 0;
    loop {
        reader
            .send(&Packet::HistoryReq {
                channel: 0,
                peer: "".into(),
                before_id: before,
                limit: 100,
            })
            .await;
        let count = match reader.recv().await {
            Packet::HistoryRes { result, count } => {
                assert_eq!(result, ResultCode::OK);
                count
            }
            other => panic!("expected HISTORY_RES, got {other:?}"),
        };
        if count == 0 {
            return ids;
        }
        for i in 0..count {
            match reader.recv().await {
                Packet::HistoryItem { message_id, .. } => {
                    ids.insert(message_id);
                    if i == 0 {
                        before = message_id;
                    }
                }
                other => panic!("expected HISTORY_ITEM, got {other:?}"),
            }
        }
    }
}

/// Streams broadcasts, kills the server with SIGKILL mid-stream, and returns the acknowledged
/// ids with how long before the kill each was acknowledged, and the ids found after a restart.
async fn acknowledged_then_killed(
    durability: &str,
) -> (Vec<(u64, Duration)>, std::collections::HashSet<u64>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().display().to_string();
    let args = [
        "--workers",
        "2",
        "--data-dir",
        &data,
        "--durability",
        durability,
        "--message-rate",
        "0",
        "--byte-rate",
        "0",
    ];
    let server = ServerProcess::start(&args, None).await;
    let sender = Raw::login(server.addr, "sender").await;
    let wire: Vec<u8> = (0..20_000)
        .flat_map(|i| {
            encode(&Packet::BroadcastReq {
                text: format!("m{i}").into(),
            })
        })
        .collect();
    let (mut read, mut write) = sender.stream.into_split();
    // Written in the background: the server reads as fast as it commits.
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = write.write_all(&wire).await;
    });
    let mut acked = Vec::new();
    let mut buf = bytes::BytesMut::new();
    use tokio::io::AsyncReadExt;
    while acked.len() < 3000 {
        match suda_protocol::decode(&mut buf, 65535).expect("valid") {
            Some(Packet::BroadcastRes { result, message_id }) => {
                assert_eq!(result, ResultCode::OK);
                acked.push((message_id, std::time::Instant::now()));
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => {
                let n = read.read_buf(&mut buf).await.expect("read");
                assert!(n > 0, "server closed early");
            }
        }
    }
    server.kill_hard().await;
    let killed_at = std::time::Instant::now();
    let restarted = ServerProcess::start(&args, None).await;
    let stored = all_history_ids(restarted.addr).await;
    restarted.terminate().await;
    let acked = acked
        .into_iter()
        .map(|(id, at)| (id, killed_at.duration_since(at)))
        .collect();
    (acked, stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_durability_keeps_every_acknowledged_message_through_kill_9() {
    let (acked, stored) = acknowledged_then_killed("strict").await;
    let lost: Vec<_> = acked
        .iter()
        .filter(|(id, _)| !stored.contains(id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged messages lost: {lost:?}",
        lost.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_durability_loses_at_most_its_window_through_kill_9() {
    // The documented bound: a message is written within 100 ms of being queued; allow the
    // commit itself and scheduling on a loaded machine on top.
    let window = Duration::from_millis(100) + Duration::from_millis(900);
    let (acked, stored) = acknowledged_then_killed("batched").await;
    let lost_outside: Vec<_> = acked
        .iter()
        .filter(|(id, before_kill)| !stored.contains(id) && *before_kill > window)
        .collect();
    assert!(
        lost_outside.is_empty(),
        "{} messages acknowledged more than {window:?} before the kill were lost",
        lost_outside.len()
    );
}
