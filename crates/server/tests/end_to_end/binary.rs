//! The `suda-server` binary as outside tooling starts it.

use std::process::Stdio;

use suda_protocol::ErrorCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::support::*;

#[tokio::test]
async fn the_binary_serves_and_exits_zero_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_suda-server"))
        .args(["--listen", "127.0.0.1:0", "--workers", "2"])
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
                    let addr = rest.split_whitespace().next().expect("address");
                    return addr
                        .parse::<std::net::SocketAddr>()
                        .expect("socket address");
                }
            }
        }
        panic!("server exited without listening");
    })
    .await
    .expect("server starts in time");
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let mut alice = Raw::login(addr, "alice").await;
    let mut bob = Raw::login(addr, "bob").await;
    alice.broadcast("over the real binary").await;
    assert_eq!(chat(&bob.recv().await).1, "over the real binary");

    let pid = child.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    alice.expect_closed_with(ErrorCode::SERVER_SHUTDOWN).await;
    bob.expect_closed_with(ErrorCode::SERVER_SHUTDOWN).await;
    let exit = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("exits in time")
        .expect("wait");
    assert!(exit.success(), "exit status {exit}");
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
