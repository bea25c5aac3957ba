//! Hibernation: quiet sessions give up their task and reactor registration, and everything that
//! reaches a session awake reaches it hibernating — its own requests, deliveries, deadlines, a
//! resume, a moderator, the shutdown, the peer hanging up.

use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode};

use crate::support::*;

/// A server whose quiet sessions hibernate after 20 ms.
async fn hibernating_server(tweak: impl FnOnce(&mut suda_server::Config)) -> TestServer {
    TestServer::start_with(|config| {
        config.hibernate_after = Duration::from_millis(20);
        tweak(config);
    })
    .await
}

/// Waits until `n` sessions hibernate.
async fn until_hibernating(server: &TestServer, n: u64) {
    server
        .until(&format!("{n} sessions hibernating"), |stats| {
            stats.snapshot().hibernating == n
        })
        .await;
}

/// A server whose quiet sessions hibernate after 20 ms, with Alice and Bob logged in and
/// hibernating.
async fn alice_and_bob_hibernating() -> (TestServer, Raw, Raw) {
    let server = hibernating_server(|_| {}).await;
    let alice = Raw::login(server.addr, "alice").await;
    let bob = Raw::login(server.addr, "bob").await;
    until_hibernating(&server, 2).await;
    (server, alice, bob)
}

#[tokio::test]
async fn sessions_woken_soon_after_each_hibernation_learn_to_stay_awake() {
    let (server, mut alice, mut bob) = alice_and_bob_hibernating().await;
    let before = server.stats.snapshot().hibernations;

    // A whisper every 100 ms, five periods apart: each would find both asleep, were they asked
    // after one quiet period every time.
    for i in 0..20 {
        let text = format!("m{i}");
        assert_eq!(alice.whisper("bob", text.as_str()).await.0, ResultCode::OK);
        assert_eq!(chat(&bob.recv().await).1, text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each needs one, two, four, then eight quiet periods: three or four hibernations each
    // before they stay awake.
    let hibernations = server.stats.snapshot().hibernations - before;
    assert!(
        hibernations <= 12,
        "{hibernations} hibernations in 20 exchanges"
    );
    // Left alone, they still hibernate.
    until_hibernating(&server, 2).await;
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn hibernating_sessions_are_woken_by_requests_and_deliveries() {
    let (server, mut alice, mut bob) = alice_and_bob_hibernating().await;

    // Alice's request wakes her; the broadcast wakes Bob.
    let (result, _) = alice.broadcast("good morning").await;
    assert_eq!(result, ResultCode::OK);
    assert_eq!(chat(&bob.recv().await).1, "good morning");
    until_hibernating(&server, 2).await;

    // A whisper to a hibernating session, and its answer.
    assert_eq!(alice.whisper("bob", "psst").await.0, ResultCode::OK);
    let (from, text, _) = chat(&bob.recv().await);
    assert_eq!((from.as_str(), text.as_str()), ("alice", "psst"));
    until_hibernating(&server, 2).await;
    assert_eq!(bob.whisper("alice", "yes?").await.0, ResultCode::OK);
    assert_eq!(chat(&alice.recv().await).1, "yes?");
    until_hibernating(&server, 2).await;

    // A ping is input like any other.
    bob.ping(7).await;
    let snapshot = server.stats.snapshot();
    assert!(
        snapshot.hibernations >= 6,
        "every quiet spell hibernated: {snapshot:?}"
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn messages_to_hibernating_sessions_arrive_once_and_in_order() {
    let server = hibernating_server(|_| {}).await;
    let mut sender = Raw::login(server.addr, "sender").await;
    let mut readers = Vec::new();
    for i in 0..6 {
        readers.push(Raw::login(server.addr, &format!("reader{i}")).await);
    }
    for round in 0..3 {
        until_hibernating(&server, 7).await;
        // A burst pipelined in one write: every reader wakes once and gets all of it.
        let mut burst = Vec::new();
        for n in 0..20 {
            burst.extend(encode(&Packet::BroadcastReq {
                text: format!("{round}-{n}").into(),
            }));
        }
        sender.send_bytes(&burst).await;
        for reader in &mut readers {
            for n in 0..20 {
                assert_eq!(chat(&reader.recv().await).1, format!("{round}-{n}"));
            }
        }
        for _ in 0..20 {
            assert!(matches!(sender.recv().await, Packet::BroadcastRes { .. }));
        }
    }
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_hibernating_session_still_times_out() {
    let server = hibernating_server(|config| {
        config.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let mut alice = Raw::login(server.addr, "alice").await;
    until_hibernating(&server, 1).await;
    alice.expect_closed_with(ErrorCode::IDLE_TIMEOUT).await;
    server
        .until("the name is free", |stats| stats.online() == 0)
        .await;
    assert_eq!(server.stats.snapshot().hibernating, 0);
}

#[tokio::test]
async fn a_hibernating_session_whose_peer_hangs_up_ends() {
    let server = hibernating_server(|_| {}).await;
    let alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    until_hibernating(&server, 2).await;
    drop(alice);
    server
        .until("alice's session ended", |stats| {
            stats.online() == 1 && stats.snapshot().connections_open == 1
        })
        .await;
    assert_eq!(
        bob.whisper("alice", "there?").await.0,
        ResultCode::USER_NOT_FOUND
    );
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn shutdown_reaches_hibernating_sessions() {
    let (server, mut alice, mut bob) = alice_and_bob_hibernating().await;
    server.begin_shutdown();
    alice.expect_closed_with(ErrorCode::SERVER_SHUTDOWN).await;
    bob.expect_closed_with(ErrorCode::SERVER_SHUTDOWN).await;
    // Hung up, so the server need not linger for them.
    drop((alice, bob));
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_resume_takes_over_a_hibernating_session() {
    let server = hibernating_server(|_| {}).await;
    let mut old = Raw::login(server.addr, "alice").await;
    old.send(&Packet::SessionTokenReq).await;
    let token = match old.recv().await {
        Packet::SessionTokenRes { token, .. } => token,
        other => panic!("expected SESSION_TOKEN_RES, got {other:?}"),
    };
    let mut bob = Raw::login(server.addr, "bob").await;
    until_hibernating(&server, 2).await;

    // The old connection looks alive but is quiet: the resume must wake it to take it over.
    let mut new = Raw::connect(server.addr).await;
    new.send(&Packet::ResumeReq {
        username: "alice".into(),
        token,
        last_message_id: 0,
    })
    .await;
    match new.recv().await {
        Packet::ResumeRes { result, .. } => assert_eq!(result, ResultCode::OK),
        other => panic!("expected RESUME_RES, got {other:?}"),
    }
    old.expect_closed_with(ErrorCode::SESSION_TAKEN_OVER).await;
    bob.broadcast("welcome back").await;
    assert_eq!(chat(&new.recv().await).1, "welcome back");
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn hibernation_can_be_turned_off() {
    let server = TestServer::start_with(|config| config.hibernate_after = Duration::ZERO).await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(alice.broadcast("awake").await.0, ResultCode::OK);
    assert_eq!(chat(&bob.recv().await).1, "awake");
    assert_eq!(server.stats.snapshot().hibernations, 0);
    server.stop().await.expect("clean stop");
}
