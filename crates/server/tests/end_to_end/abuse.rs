//! Each abuse limit: the bad client is refused or cut off with a clear reason while a
//! well-behaved client on the same server keeps chatting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use suda_protocol::{ErrorCode, Packet, ResultCode};
use suda_server::Server;
use suda_server::auth::{AuthDecision, AuthFuture, Authenticator};

use crate::support::*;

/// A well-behaved pair chats normally; returns the round trip of one broadcast.
async fn bystanders_chat(server: &TestServer, tag: &str) -> Duration {
    let mut a = Raw::login(server.addr, &format!("{tag}a")).await;
    let mut b = Raw::login(server.addr, &format!("{tag}b")).await;
    let started = Instant::now();
    let (result, id) = a.broadcast("business as usual").await;
    assert_eq!(result, ResultCode::OK);
    let (_, text, got) = chat(&b.recv().await);
    assert_eq!((text.as_str(), got), ("business as usual", id));
    started.elapsed()
}

fn broadcasts(n: usize, text: &str) -> Vec<u8> {
    (0..n)
        .flat_map(|_| encode(&Packet::BroadcastReq { text: text.into() }))
        .collect()
}

#[tokio::test]
async fn a_session_over_its_message_rate_is_told_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.message_rate = 1.0;
        c.message_burst = 20.0;
        c.flood_strikes = 1000;
    })
    .await;
    let mut spammer = Raw::login(server.addr, "spammer").await;
    spammer.send_bytes(&broadcasts(60, "spam")).await;
    let mut results = Vec::new();
    for _ in 0..60 {
        match spammer.recv().await {
            Packet::BroadcastRes { result, .. } => results.push(result),
            other => panic!("unexpected {other:?}"),
        }
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    // The burst, and perhaps one token refilled while the requests were handled.
    assert!((20..=21).contains(&ok), "{ok} accepted");
    assert!(results[..20].iter().all(|r| r.is_ok()));
    assert_eq!(results[59], ResultCode::RATE_LIMITED);
    // Still connected, and the rest of the server is unaffected.
    spammer.ping(1).await;
    bystanders_chat(&server, "by").await;
}

#[tokio::test]
async fn a_session_over_its_byte_rate_is_told_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.byte_rate = 100.0;
        c.byte_burst = 4096.0;
    })
    .await;
    let mut talker = Raw::login(server.addr, "talker").await;
    let long = "z".repeat(3000);
    assert_eq!(talker.broadcast(&long).await.0, ResultCode::OK);
    assert_eq!(talker.broadcast(&long).await.0, ResultCode::RATE_LIMITED);
    assert_eq!(talker.broadcast("short").await.0, ResultCode::OK);
    assert!(server.stats.snapshot().rate_limited >= 1);
}

#[tokio::test]
async fn sustained_flooding_is_disconnected_with_a_reason() {
    let server = TestServer::start_with(|c| {
        c.message_rate = 1.0;
        c.message_burst = 5.0;
        c.flood_strikes = 10;
    })
    .await;
    let mut watcher = Raw::login(server.addr, "watcher").await;
    let mut flooder = Raw::login(server.addr, "flooder").await;
    flooder.send_bytes(&broadcasts(200, "flood")).await;
    let mut answered = 0;
    loop {
        match flooder.recv().await {
            Packet::BroadcastRes { .. } => answered += 1,
            Packet::ErrorNotify { code, .. } => {
                assert_eq!(code, ErrorCode::FLOODING);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(answered < 200, "cut off before the flood was served");
    assert_eq!(flooder.recv_or_eof().await, None);
    assert_eq!(server.stats.snapshot().flood_disconnects, 1);
    // The watcher saw only the accepted part of the flood, and still chats.
    for _ in 0..5 {
        assert_eq!(chat(&watcher.recv().await).1, "flood");
    }
    watcher.ping(1).await;
    bystanders_chat(&server, "by").await;
}

#[tokio::test]
async fn control_characters_other_than_newline_and_tab_are_invalid() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    for bad in [
        "\u{1b}[2J",
        "bell\u{7}",
        "nul\0",
        "cr\r",
        "del\u{7f}",
        "c1\u{9b}",
    ] {
        assert_eq!(
            alice.broadcast(bad).await,
            (ResultCode::INVALID_MESSAGE, 0),
            "{bad:?}"
        );
        assert_eq!(
            alice.whisper("bob", bad).await,
            (ResultCode::INVALID_MESSAGE, 0)
        );
    }
    assert_eq!(
        alice.broadcast("two\nlines\tand a tab").await.0,
        ResultCode::OK
    );
    assert_eq!(chat(&bob.recv().await).1, "two\nlines\tand a tab");
}

#[tokio::test]
async fn too_many_connections_from_one_address_are_refused() {
    let server = TestServer::start_with(|c| {
        c.per_ip_exempt = vec![];
        c.max_connections_per_ip = 3;
        c.connection_rate_per_ip = 0.0;
    })
    .await;
    let mut kept = Vec::new();
    for i in 0..3 {
        kept.push(Raw::login(server.addr, &format!("u{i}")).await);
    }
    let mut fourth = Raw::connect(server.addr).await;
    fourth
        .expect_closed_with(ErrorCode::TOO_MANY_CONNECTIONS)
        .await;
    assert_eq!(server.stats.snapshot().connections_refused_per_ip, 1);
    drop(kept.pop());
    server
        .until("slot freed", |s| s.snapshot().connections_open == 2)
        .await;
    let mut again = Raw::login(server.addr, "u9").await;
    assert_eq!(again.broadcast("back in").await.0, ResultCode::OK);
}

#[tokio::test]
async fn connecting_too_fast_from_one_address_is_refused() {
    let server = TestServer::start_with(|c| {
        c.per_ip_exempt = vec![];
        c.max_connections_per_ip = 0;
        c.connection_rate_per_ip = 0.5; // bursts of one
    })
    .await;
    let mut first = Raw::login(server.addr, "first").await;
    let mut second = Raw::connect(server.addr).await;
    second
        .expect_closed_with(ErrorCode::TOO_MANY_CONNECTIONS)
        .await;
    // The connection already in keeps working.
    first.ping(1).await;
}

#[tokio::test]
async fn exempt_networks_are_not_limited() {
    // The default exempts loopback.
    let server = TestServer::start_with(|c| {
        c.max_connections_per_ip = 2;
        c.connection_rate_per_ip = 1.0;
    })
    .await;
    let mut all = Vec::new();
    for i in 0..10 {
        all.push(Raw::login(server.addr, &format!("local{i}")).await);
    }
    assert_eq!(server.stats.snapshot().connections_refused_per_ip, 0);
}

/// Refuses the password "guess", as a stand-in for any wrong password.
struct Passwords;

impl Authenticator for Passwords {
    fn authenticate<'a>(&'a self, _username: &'a str, password: &'a [u8]) -> AuthFuture<'a> {
        let decision = if password == b"guess" {
            AuthDecision::Reject(ResultCode::INVALID_CREDENTIALS)
        } else {
            AuthDecision::Accept
        };
        Box::pin(async move { decision })
    }
}

async fn login_with(raw: &mut Raw, name: &str, password: &str) -> ResultCode {
    raw.send(&Packet::LoginReq {
        username: name.into(),
        password: password.into(),
    })
    .await;
    match raw.recv().await {
        Packet::LoginRes { result, .. } => result,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn failed_logins_are_answered_ever_more_slowly() {
    let mut config = test_config();
    config.login_backoff = Duration::from_millis(100);
    config.login_backoff_max = Duration::from_secs(5);
    let server = Server::bind(config)
        .expect("bind")
        .with_authenticator(Arc::new(Passwords));
    let server = TestServer::start_server(server);
    let mut guesser = Raw::connect(server.addr).await;
    let mut took = Vec::new();
    for _ in 0..4 {
        let started = Instant::now();
        assert_eq!(
            login_with(&mut guesser, "alice", "guess").await,
            ResultCode::INVALID_CREDENTIALS
        );
        took.push(started.elapsed());
    }
    // No delay before the first failure, then 100, 200, 400 ms before each next answer.
    assert!(took[1] >= Duration::from_millis(100), "{took:?}");
    assert!(took[2] >= Duration::from_millis(200), "{took:?}");
    assert!(took[3] >= Duration::from_millis(400), "{took:?}");
    // The rightful owner still gets in (after the account's delay), and that resets it.
    let mut owner = Raw::connect(server.addr).await;
    assert_eq!(
        login_with(&mut owner, "alice", "right").await,
        ResultCode::OK
    );
    bystanders_chat(&server, "by").await;
}

#[tokio::test]
async fn a_packet_that_never_completes_is_closed_at_the_packet_deadline() {
    let server = TestServer::start_with(|c| c.packet_timeout = Duration::from_millis(300)).await;
    let mut loris = Raw::connect(server.addr).await;
    let whole = encode(&Packet::LoginReq {
        username: "loris".into(),
        password: "x".repeat(100).as_str().into(),
    });
    loris.send_bytes(&whole[..50]).await;
    let chatting = bystanders_chat(&server, "by");
    let (_, ()) = tokio::join!(
        chatting,
        loris.expect_closed_with(ErrorCode::PACKET_TIMEOUT)
    );
    assert_eq!(server.stats.snapshot().timeouts, 1);
}

#[tokio::test]
async fn a_packet_dripped_too_slowly_is_closed_even_though_bytes_keep_coming() {
    let server = TestServer::start_with(|c| c.packet_timeout = Duration::from_millis(500)).await;
    let loris = Raw::login(server.addr, "loris").await;
    let whole = encode(&Packet::BroadcastReq {
        text: "y".repeat(200).as_str().into(),
    });
    let mut closed = false;
    for byte in &whole {
        // Pacing of the attack itself: one byte every 50 ms keeps the connection "active".
        tokio::time::sleep(Duration::from_millis(50)).await;
        if loris.stream.try_write(&[*byte]).is_err() {
            closed = true;
            break;
        }
        if server.stats.snapshot().timeouts == 1 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow packet was cut off before it completed");
    bystanders_chat(&server, "by").await;
}

#[tokio::test]
async fn a_client_that_floods_pings_and_never_reads_is_cut_off_as_a_slow_consumer() {
    let server = TestServer::start_with(|c| c.send_queue_limit = 128 * 1024).await;
    let mut amplifier = Raw::login(server.addr, "amplifier").await;
    let pings: Vec<u8> = (0..10_000u64)
        .flat_map(|nonce| encode(&Packet::Ping { nonce }))
        .collect();
    let stats = server.stats.clone();
    // Keep writing pings without reading a single pong until the server gives up on us.
    while stats.snapshot().slow_consumer_disconnects == 0 {
        if tokio::time::timeout(
            Duration::from_millis(200),
            amplifier.send_bytes_checked(&pings),
        )
        .await
        .is_ok_and(|sent| sent.is_err())
        {
            break;
        }
    }
    server
        .until("cut off", |s| s.snapshot().slow_consumer_disconnects == 1)
        .await;
    bystanders_chat(&server, "by").await;
}
