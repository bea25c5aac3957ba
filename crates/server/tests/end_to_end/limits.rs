use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode};

use crate::support::*;

#[tokio::test]
async fn connections_over_the_limit_are_told_server_busy() {
    let server = TestServer::start_with(|c| c.max_connections = 3).await;
    let mut kept = Vec::new();
    for i in 0..3 {
        kept.push(Raw::login(server.addr, &format!("user{i}")).await);
    }
    let mut refused = Raw::connect(server.addr).await;
    refused.expect_closed_with(ErrorCode::SERVER_BUSY).await;
    assert_eq!(server.stats.snapshot().connections_refused_busy, 1);
    // A slot frees when someone leaves.
    drop(kept.pop());
    server
        .until("slot freed", |s| s.snapshot().connections_open == 2)
        .await;
    let _again = Raw::login(server.addr, "user9").await;
    assert_eq!(kept[0].broadcast("fine").await.0, ResultCode::OK);
}

#[tokio::test]
async fn a_connection_that_never_logs_in_is_closed_at_the_login_deadline() {
    let server = TestServer::start_with(|c| c.login_timeout = Duration::from_millis(300)).await;
    let mut silent = Raw::connect(server.addr).await;
    // PING is served before login but does not extend the login deadline.
    silent.ping(1).await;
    silent.expect_closed_with(ErrorCode::LOGIN_TIMEOUT).await;
    let mut logged_in = Raw::login(server.addr, "prompt").await;
    logged_in.ping(2).await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_pings_keep_one_alive() {
    let server = TestServer::start_with(|c| c.idle_timeout = Duration::from_millis(400)).await;
    let mut idle = Raw::login(server.addr, "idle").await;
    let mut busy = Raw::login(server.addr, "busy").await;
    let closed =
        tokio::spawn(async move { idle.expect_closed_with(ErrorCode::IDLE_TIMEOUT).await });
    // Keep `busy` alive well past the timeout with pings every 100 ms.
    for nonce in 0..10 {
        busy.ping(nonce).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    closed.await.expect("idle closed");
    assert_eq!(busy.broadcast("alive").await.0, ResultCode::OK);
    assert_eq!(server.stats.snapshot().timeouts, 1);
}

/// Streams broadcasts from `sender` until `done` says stop; returns how many were sent.
async fn stream_until(sender: &mut Raw, text: &str, mut done: impl FnMut() -> bool) -> usize {
    let mut sent = 0;
    while !done() {
        let mut wire = Vec::new();
        for _ in 0..64 {
            wire.extend(encode(&Packet::BroadcastReq { text: text.into() }));
        }
        sender.send_bytes(&wire).await;
        for _ in 0..64 {
            loop {
                match sender.recv().await {
                    Packet::BroadcastRes { result, .. } => {
                        assert_eq!(result, ResultCode::OK);
                        break;
                    }
                    Packet::BroadcastNotify { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        sent += 64;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_and_the_others_lose_nothing() {
    let server = TestServer::start_with(|c| c.send_queue_limit = 256 * 1024).await;
    let mut slow = Raw::login(server.addr, "slow").await;
    let mut fast = Raw::login(server.addr, "fast").await;
    let mut sender = Raw::login(server.addr, "sender").await;
    // `fast` reads everything concurrently and counts.
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut n = 0;
        loop {
            match fast.recv().await {
                Packet::ErrorNotify { code, .. } => {
                    assert_eq!(
                        code,
                        ErrorCode::SERVER_SHUTDOWN,
                        "only the slow one is cut off"
                    );
                    return n;
                }
                packet => {
                    let (from, text, _) = chat(&packet);
                    assert_eq!((from.as_str(), text.len()), ("sender", 1000));
                    n += 1;
                    let _ = count_tx.send(n);
                }
            }
        }
    });
    // `slow` reads nothing while megabytes stream past it. The sender keeps pace with `fast`
    // (a reader that keeps up), so that only `slow` falls behind.
    let text = "x".repeat(1000);
    let mut sent = 0;
    let mut rounds_after_cut = 0;
    while rounds_after_cut < 16 {
        if server.stats.snapshot().slow_consumer_disconnects >= 1 {
            rounds_after_cut += 1;
        }
        sent += stream_until(&mut sender, &text, {
            let mut once = false;
            move || std::mem::replace(&mut once, true)
        })
        .await;
        count_rx
            .wait_for(|&n| n == sent)
            .await
            .expect("fast receiver keeps up");
    }
    assert!(
        sent * 1000 > 1024 * 1024,
        "megabytes streamed ({sent} messages)"
    );
    assert_eq!(server.stats.snapshot().slow_consumer_disconnects, 1);
    // The slow consumer finds, after whatever was already in flight, the reason and the end.
    let mut before_notice = 0;
    loop {
        match slow.recv().await {
            Packet::BroadcastNotify { .. } => before_notice += 1,
            Packet::ErrorNotify { code, .. } => {
                assert_eq!(code, ErrorCode::SLOW_CONSUMER);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(before_notice < sent);
    assert_eq!(slow.recv_or_eof().await, None);
    server.stop().await.expect("clean stop");
    assert_eq!(reader.await.expect("reader"), sent, "fast lost nothing");
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_cut_off_at_the_write_deadline() {
    // A queue limit far above what is sent, so only the write deadline can end the session.
    let server = TestServer::start_with(|c| {
        c.send_queue_limit = 512 * 1024 * 1024;
        c.write_timeout = Duration::from_millis(300);
    })
    .await;
    let _stalled = Raw::login(server.addr, "stalled").await;
    let mut sender = Raw::login(server.addr, "sender").await;
    let text = "y".repeat(4000);
    let stats = server.stats.clone();
    stream_until(&mut sender, &text, || stats.snapshot().timeouts >= 1).await;
    server.until("stalled gone", |s| s.online() == 1).await;
    assert_eq!(server.stats.snapshot().slow_consumer_disconnects, 0);
}
