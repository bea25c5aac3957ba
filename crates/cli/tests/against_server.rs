//! The `suda` binary in script mode against the real server, on an ephemeral loopback port.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use suda_client::{Client, ClientConfig, Event};

use crate::support::{spawn_suda_with_input, start_server};

async fn run_suda(addr: SocketAddr, user: &str, stdin: &str) -> std::process::Output {
    let child = spawn_suda_with_input(&addr.to_string(), user, &[], stdin).await;
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("suda finishes")
        .expect("output")
}

#[tokio::test]
async fn piped_lines_are_broadcast_and_whispered_through_the_real_server() {
    let (addr, shutdown) = start_server().await;
    let (bob, mut events) = Client::connect(addr, ClientConfig::default())
        .await
        .expect("connect");
    bob.login("bob", "").await.expect("login");

    let output = run_suda(addr, "alice", "hello everyone\n/w BOB just for you\n").await;
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let Some(Event::Broadcast(first)) = events.next().await else {
        panic!("expected a broadcast");
    };
    assert_eq!(
        (first.from.as_str(), first.text.as_str()),
        ("alice", "hello everyone")
    );
    let Some(Event::Whisper(second)) = events.next().await else {
        panic!("expected a whisper");
    };
    assert_eq!(
        (second.from.as_str(), second.text.as_str()),
        ("alice", "just for you")
    );
    assert!(second.message_id > first.message_id);
    shutdown.cancel();
}

#[tokio::test]
async fn a_refused_whisper_is_reported_and_fails_the_run() {
    let (addr, shutdown) = start_server().await;
    let output = run_suda(addr, "alice", "/w nobody are you there\n").await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("USER_NOT_FOUND"), "{stderr}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_name_in_use_is_a_clear_login_error() {
    let (addr, shutdown) = start_server().await;
    let (alice, _events) = Client::connect(addr, ClientConfig::default())
        .await
        .expect("connect");
    alice.login("alice", "").await.expect("login");
    let output = run_suda(addr, "ALICE", "hi\n").await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("NAME_IN_USE"), "{stderr}");
    shutdown.cancel();
}
