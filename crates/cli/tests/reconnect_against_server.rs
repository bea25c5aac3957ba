//! Reconnecting and resuming against the real server, with the fault proxy of `suda-testkit`
//! between them: the library's resume, and the `suda` binary reporting it.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use suda_client::{Client, ClientConfig, Event, Events, Jitter, ReconnectPolicy};
use suda_testkit::{Direction, FaultProxy};
use tokio::io::AsyncWriteExt;

use crate::support::{spawn_suda, start_server};

fn reconnecting() -> ClientConfig {
    ClientConfig::default().with_reconnect(
        ReconnectPolicy::new()
            .with_initial_backoff(Duration::from_millis(10))
            .with_max_backoff(Duration::from_millis(100))
            .with_jitter(Jitter::None),
    )
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

/// Skips connection news and returns the next chat message's text.
async fn next_text(events: &mut Events) -> String {
    loop {
        match next(events).await {
            Event::Broadcast(msg) | Event::Whisper(msg) => return msg.text,
            Event::Disconnected(reason) => panic!("disconnected: {reason}"),
            _ => {}
        }
    }
}

async fn log_in(addr: SocketAddr, name: &str, config: ClientConfig) -> (Client, Events) {
    let (client, events) = Client::connect(addr, config).await.expect("connect");
    client.login(name, "").await.expect("login");
    // Answered after the token request that follows the login, so the token is in hand.
    client.ping().await.expect("ping");
    (client, events)
}

#[tokio::test]
async fn messages_sent_while_cut_off_are_replayed_once_and_in_order() {
    let (addr, shutdown) = start_server().await;
    let proxy = FaultProxy::start(addr);
    let (_alice, mut alice_events) = log_in(proxy.addr(), "alice", reconnecting()).await;
    let (bob, _bob_events) = log_in(addr, "bob", ClientConfig::default()).await;

    bob.broadcast("one").await.expect("sent");
    assert_eq!(next_text(&mut alice_events).await, "one");

    // Cut alice off, and keep her off while bob talks.
    proxy.set_refusing(true);
    proxy.cut_all();
    assert!(matches!(
        next(&mut alice_events).await,
        Event::ConnectionLost(_)
    ));
    bob.broadcast("two").await.expect("sent");
    bob.whisper("alice", "three").await.expect("sent");
    proxy.set_refusing(false);

    loop {
        match next(&mut alice_events).await {
            Event::Reconnecting { .. } => {}
            Event::Resumed { replayed } => {
                assert_eq!(replayed, 2);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(next_text(&mut alice_events).await, "two");
    assert_eq!(next_text(&mut alice_events).await, "three");
    bob.broadcast("four").await.expect("sent");
    assert_eq!(next_text(&mut alice_events).await, "four");
    shutdown.cancel();
}

#[tokio::test]
async fn a_notification_cut_in_half_is_replayed_whole() {
    let (addr, shutdown) = start_server().await;
    let proxy = FaultProxy::start(addr);
    let (alice, mut alice_events) = log_in(proxy.addr(), "alice", reconnecting()).await;
    let (bob, _bob_events) = log_in(addr, "bob", ClientConfig::default()).await;

    // 10 bytes into the next packet alice receives: inside the notification's message id.
    proxy.cut_after_bytes(Direction::ServerToClient, 10);
    bob.broadcast("cut in half").await.expect("sent");
    assert!(matches!(
        next(&mut alice_events).await,
        Event::ConnectionLost(_)
    ));
    assert_eq!(next_text(&mut alice_events).await, "cut in half");
    bob.broadcast("after").await.expect("sent");
    assert_eq!(next_text(&mut alice_events).await, "after");
    assert_eq!(proxy.stats().cuts, 1);
    assert_eq!(proxy.stats().accepted, 2);

    // Logging out frees the name at once: bob can take it.
    alice.logout().await.expect("logged out");
    let (_, _) = log_in(addr, "alice", ClientConfig::default()).await;
    shutdown.cancel();
}

#[tokio::test]
async fn the_terminal_client_reports_a_resume_and_prints_what_it_missed() {
    let (addr, shutdown) = start_server().await;
    let proxy = FaultProxy::start(addr);
    let mut child = spawn_suda(&proxy.addr().to_string(), "alice", &["--wait-secs", "600"]);
    // Stdin stays open until the end, so suda lingers and prints.
    let mut stdin = child.stdin.take().expect("stdin");

    let (bob, mut bob_events) = Client::connect(addr, ClientConfig::default())
        .await
        .expect("connect");
    bob.login("bob", "").await.expect("login");
    // Alice is online once a whisper to her is accepted.
    let whisper = async {
        loop {
            if bob.whisper("alice", "hello").await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), whisper)
        .await
        .expect("alice logs in");

    // Everything the server sent alice has passed the proxy, the session token included (it
    // is pipelined right after the login, so the cut must not beat it): LOGIN_RES (13 bytes),
    // SESSION_TOKEN_RES (42) and the whisper (31).
    proxy
        .wait_until(|s| s.server_to_client >= 13 + 42 + 31)
        .await;
    proxy.set_refusing(true);
    proxy.cut_all();
    // Whispers reach a detached session too: it is still online, its messages kept.
    bob.whisper("alice", "while you were away")
        .await
        .expect("kept");
    proxy.set_refusing(false);
    proxy.wait_until(|s| s.active == 1).await;

    // Alice's own line after the resume, to know she is back.
    stdin.write_all(b"back\n").await.expect("write");
    loop {
        match tokio::time::timeout(Duration::from_secs(10), bob_events.next()).await {
            Ok(Some(Event::Broadcast(msg))) if msg.text == "back" => break,
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    drop(stdin);
    child.start_kill().expect("stop suda");
    let output = child.wait_with_output().await.expect("suda exits");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Each once: "hello" may or may not have reached alice before the cut (if not, it is
    // replayed too), but never twice.
    assert_eq!(stdout.matches("*bob* hello").count(), 1, "{stdout}");
    assert_eq!(
        stdout.matches("*bob* while you were away").count(),
        1,
        "{stdout}"
    );
    assert!(stderr.contains("suda: connection lost"), "{stderr}");
    assert!(
        stderr.contains("suda: reconnecting (attempt 1)…"),
        "{stderr}"
    );
    assert!(
        stderr.contains("suda: resumed, 1 missed message replayed")
            || stderr.contains("suda: resumed, 2 missed messages replayed"),
        "{stderr}"
    );
    shutdown.cancel();
}
