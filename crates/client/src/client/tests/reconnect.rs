//! Reconnecting and resuming, against the scripted fake server: the client's side of
//! `SESSION_TOKEN_REQ`, `RESUME_REQ` and `LOGOUT_REQ`.

use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode};

use super::fake_server::{FakeServer, Peer};
use super::{config, notify};
use crate::{
    Client, ClientConfig, ClientError, Event, Events, Jitter, PacketType, ProtocolError,
    ReconnectPolicy,
};

const MS: Duration = Duration::from_millis(1);

/// Fast and predictable: 1 ms, then 2, 4..., no jitter.
fn policy() -> ReconnectPolicy {
    ReconnectPolicy::new()
        .with_initial_backoff(MS)
        .with_max_backoff(100 * MS)
        .with_jitter(Jitter::None)
}

fn reconnecting() -> ClientConfig {
    config().with_reconnect(policy())
}

/// The next event, which must come within 10 s.
async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event in time")
        .expect("the stream goes on")
}

/// The next chat message's id; any other event fails the test.
async fn next_message_id(events: &mut Events) -> u64 {
    match next(events).await {
        Event::Broadcast(msg) | Event::Whisper(msg) => msg.message_id,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Logs `client` in as alice through `peer`, answering the token request with `token`.
async fn log_in(client: &Client, peer: &mut Peer, token: ResultCode) {
    let (session, ()) = tokio::join!(client.login("alice", "pw"), async {
        assert!(matches!(peer.expect().await, Packet::LoginReq { .. }));
        peer.send(&[Packet::LoginRes {
            result: ResultCode::OK,
            session_id: 1,
        }])
        .await;
    });
    assert_eq!(session.expect("logged in"), 1);
    assert_eq!(peer.expect().await, Packet::SessionTokenReq);
    let token_text = if token == ResultCode::OK { "t1" } else { "" };
    peer.send(&[Packet::SessionTokenRes {
        result: token,
        token: token_text.into(),
        grace_ms: 30_000,
    }])
    .await;
}

/// A client with reconnecting on, logged in as alice with the token `t1`.
async fn logged_in(config: ClientConfig) -> (Client, Events, Peer, FakeServer) {
    let server = FakeServer::bind().await;
    let (client, events, mut peer) = server.connect(config).await;
    log_in(&client, &mut peer, ResultCode::OK).await;
    // A ping through proves the token response was read before the test goes on.
    let (pong, ()) = tokio::join!(client.ping(), answer_ping(&mut peer));
    pong.expect("ping");
    (client, events, peer, server)
}

async fn answer_ping(peer: &mut Peer) {
    let Packet::Ping { nonce } = peer.expect().await else {
        panic!("expected PING");
    };
    peer.send(&[Packet::Pong { nonce }]).await;
}

/// Expects `ConnectionLost` then the first `Reconnecting`.
async fn expect_lost(events: &mut Events) -> ClientError {
    let Event::ConnectionLost(reason) = next(events).await else {
        panic!("expected ConnectionLost");
    };
    assert!(matches!(
        next(events).await,
        Event::Reconnecting { attempt: 1, delay } if delay == MS
    ));
    reason
}

fn resume_res(result: ResultCode, token: &str, replayed: u32) -> Packet {
    Packet::ResumeRes {
        result,
        session_id: if result.is_ok() { 1 } else { 0 },
        token: token.into(),
        replayed,
    }
}

#[tokio::test]
async fn a_login_asks_for_a_session_token_only_when_reconnecting_is_on() {
    let server = FakeServer::bind().await;
    let (client, _events, mut peer) = server.connect(reconnecting()).await;
    log_in(&client, &mut peer, ResultCode::OK).await;

    let (client, _events, mut peer) = server.connect(config()).await;
    let (session, ()) = tokio::join!(client.login("alice", "pw"), async {
        peer.expect().await;
        peer.send(&[Packet::LoginRes {
            result: ResultCode::OK,
            session_id: 2,
        }])
        .await;
    });
    session.expect("logged in");
    // Without reconnecting, the next thing the server sees is the application's own request.
    let (pong, ()) = tokio::join!(client.ping(), answer_ping(&mut peer));
    pong.expect("ping");
}

#[tokio::test]
async fn a_cut_connection_is_resumed_with_the_missed_messages_once_each() {
    let (client, mut events, mut peer, server) = logged_in(reconnecting()).await;
    // Ids of different senders need not arrive in order: the resume must name the last one
    // received (3), not the largest (5).
    peer.send(&[notify(5, "bob", "a"), notify(3, "carol", "b")])
        .await;
    assert_eq!(next_message_id(&mut events).await, 5);
    assert_eq!(next_message_id(&mut events).await, 3);

    // A request in flight when the connection drops: its fate is unknown.
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.broadcast("did it go out?").await }
    });
    assert!(matches!(peer.expect().await, Packet::BroadcastReq { .. }));
    drop(peer);
    let outcome = in_flight.await.expect("task");
    assert!(
        matches!(&outcome, Err(ClientError::ConnectionLost(reason)) if matches!(**reason, ClientError::Eof)),
        "{outcome:?}"
    );
    assert!(!outcome.expect_err("failed").ends_connection());
    assert!(matches!(expect_lost(&mut events).await, ClientError::Eof));

    // Made while reconnecting: sent once the session is back, after the resume.
    let later = tokio::spawn({
        let client = client.clone();
        async move { client.broadcast("after the cut").await }
    });
    let mut peer = server.accept().await;
    assert_eq!(
        peer.expect().await,
        Packet::ResumeReq {
            username: "alice".into(),
            token: "t1".into(),
            last_message_id: 3,
        }
    );
    // Replayed: 3 again (already delivered, so dropped) and 8, then 9 live.
    peer.send(&[
        resume_res(ResultCode::OK, "t2", 2),
        notify(3, "carol", "b"),
        notify(8, "bob", "missed"),
    ])
    .await;
    assert!(
        matches!(peer.expect().await, Packet::BroadcastReq { text } if text == "after the cut")
    );
    peer.send(&[
        Packet::BroadcastRes {
            result: ResultCode::OK,
            message_id: 10,
        },
        notify(9, "bob", "live"),
    ])
    .await;
    assert_eq!(later.await.expect("task").expect("sent"), 10);
    assert!(matches!(
        next(&mut events).await,
        Event::Resumed { replayed: 2 }
    ));
    assert_eq!(next_message_id(&mut events).await, 8);
    assert_eq!(next_message_id(&mut events).await, 9);

    // Cut again: the rotated token, the attempt count from 1, and the last id received.
    drop(peer);
    expect_lost(&mut events).await;
    let mut peer = server.accept().await;
    assert_eq!(
        peer.expect().await,
        Packet::ResumeReq {
            username: "alice".into(),
            token: "t2".into(),
            last_message_id: 9,
        }
    );
    peer.send(&[resume_res(ResultCode::OK, "t3", 0)]).await;
    assert!(matches!(
        next(&mut events).await,
        Event::Resumed { replayed: 0 }
    ));
    assert!(client.is_connected());
    let (pong, ()) = tokio::join!(client.ping(), answer_ping(&mut peer));
    pong.expect("the resumed connection works");
}

#[tokio::test]
async fn a_resume_with_a_gap_says_so() {
    let (_client, mut events, peer, server) = logged_in(reconnecting()).await;
    drop(peer);
    expect_lost(&mut events).await;
    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::ResumeReq { .. }));
    peer.send(&[
        resume_res(ResultCode::RESUMED_WITH_GAP, "t2", 1),
        notify(4, "bob", "the one that was kept"),
    ])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::ResumedWithGap { replayed: 1 }
    ));
    assert_eq!(next_message_id(&mut events).await, 4);
}

#[tokio::test]
async fn an_invalid_token_falls_back_to_a_new_login_on_the_same_connection() {
    let (client, mut events, mut peer, server) = logged_in(reconnecting()).await;
    peer.send(&[notify(7, "bob", "before")]).await;
    assert_eq!(next_message_id(&mut events).await, 7);
    drop(peer);
    expect_lost(&mut events).await;

    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::ResumeReq { .. }));
    peer.send(&[resume_res(ResultCode::INVALID_TOKEN, "", 0)])
        .await;
    assert_eq!(
        peer.expect().await,
        Packet::LoginReq {
            username: "alice".into(),
            password: "pw".into()
        }
    );
    peer.send(&[Packet::LoginRes {
        result: ResultCode::OK,
        session_id: 99,
    }])
    .await;
    // A new session gets a token of its own.
    assert_eq!(peer.expect().await, Packet::SessionTokenReq);
    peer.send(&[Packet::SessionTokenRes {
        result: ResultCode::OK,
        token: "fresh".into(),
        grace_ms: 1000,
    }])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::Reconnected { session_id: 99 }
    ));
    let (pong, ()) = tokio::join!(client.ping(), answer_ping(&mut peer));
    pong.expect("ping");

    // The next resume uses the new token and counts from the new session's start.
    drop(peer);
    expect_lost(&mut events).await;
    let mut peer = server.accept().await;
    assert_eq!(
        peer.expect().await,
        Packet::ResumeReq {
            username: "alice".into(),
            token: "fresh".into(),
            last_message_id: 0,
        }
    );
}

#[tokio::test]
async fn without_a_token_a_lost_connection_logs_in_again() {
    let server = FakeServer::bind().await;
    let (client, mut events, mut peer) = server.connect(reconnecting()).await;
    log_in(&client, &mut peer, ResultCode::NOT_AVAILABLE).await;
    let (pong, ()) = tokio::join!(client.ping(), answer_ping(&mut peer));
    pong.expect("ping");
    drop(peer);
    expect_lost(&mut events).await;

    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::LoginReq { .. }));
    peer.send(&[Packet::LoginRes {
        result: ResultCode::OK,
        session_id: 5,
    }])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::Reconnected { session_id: 5 }
    ));
}

#[tokio::test]
async fn a_name_still_in_use_is_retried_and_a_refused_login_gives_up() {
    let (_client, mut events, peer, server) = logged_in(reconnecting()).await;
    drop(peer);
    expect_lost(&mut events).await;

    // The old session may still hold the name: try again later.
    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::ResumeReq { .. }));
    peer.send(&[resume_res(ResultCode::INVALID_TOKEN, "", 0)])
        .await;
    assert!(matches!(peer.expect().await, Packet::LoginReq { .. }));
    peer.send(&[Packet::LoginRes {
        result: ResultCode::NAME_IN_USE,
        session_id: 0,
    }])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::Reconnecting { attempt: 2, delay } if delay == 2 * MS
    ));

    // The refused token is not offered again; refused credentials end it.
    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::LoginReq { .. }));
    peer.send(&[Packet::LoginRes {
        result: ResultCode::INVALID_CREDENTIALS,
        session_id: 0,
    }])
    .await;
    match next(&mut events).await {
        Event::Disconnected(ClientError::ReconnectFailed { attempts: 2, last }) => assert!(
            matches!(
                *last,
                ClientError::Rejected {
                    request: PacketType::LoginReq,
                    result: ResultCode::INVALID_CREDENTIALS
                }
            ),
            "{last:?}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn attempts_back_off_and_the_client_gives_up_after_the_last() {
    let config = config().with_reconnect(policy().with_max_attempts(Some(3)));
    let (client, mut events, peer, server) = logged_in(config).await;
    // Nothing listens any more: every attempt is refused.
    drop(server);
    drop(peer);
    assert!(matches!(
        next(&mut events).await,
        Event::ConnectionLost(ClientError::Eof)
    ));
    for (attempt, delay) in [(1, MS), (2, 2 * MS), (3, 4 * MS)] {
        match next(&mut events).await {
            Event::Reconnecting {
                attempt: got,
                delay: waited,
            } => assert_eq!((got, waited), (attempt, delay)),
            other => panic!("{other:?}"),
        }
    }
    match next(&mut events).await {
        Event::Disconnected(ClientError::ReconnectFailed { attempts: 3, last }) => {
            assert!(matches!(*last, ClientError::Io(_)), "{last:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(events.next().await.is_none());
    assert!(client.is_closed());
    assert!(matches!(
        client.ping().await,
        Err(ClientError::ReconnectFailed { attempts: 3, .. })
    ));
}

#[tokio::test]
async fn a_request_made_while_reconnecting_gives_up_after_the_request_timeout() {
    let timeout = Duration::from_millis(200);
    let slow = policy().with_initial_backoff(Duration::from_secs(3600));
    let config = config()
        .with_request_timeout(timeout)
        .with_reconnect(slow.with_max_backoff(Duration::from_secs(3600)));
    let (client, mut events, peer, _server) = logged_in(config).await;
    drop(peer);
    assert!(matches!(next(&mut events).await, Event::ConnectionLost(_)));
    assert!(matches!(
        next(&mut events).await,
        Event::Reconnecting { attempt: 1, .. }
    ));
    let outcome = client.whisper("bob", "anyone?").await;
    assert!(
        matches!(
            outcome,
            Err(ClientError::ReconnectTimeout { request: PacketType::WhisperReq, after }) if after == timeout
        ),
        "{outcome:?}"
    );
    assert!(!client.is_closed(), "still reconnecting");
    assert!(!client.is_connected());
    // Closing while reconnecting ends it at once.
    client.close().await;
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected(ClientError::Closed)
    ));
}

#[tokio::test]
async fn logout_ends_the_client_without_reconnecting() {
    let (client, mut events, mut peer, server) = logged_in(reconnecting()).await;
    let (outcome, ()) = tokio::join!(client.logout(), async {
        assert_eq!(peer.expect().await, Packet::LogoutReq);
        peer.send(&[Packet::LogoutRes {
            result: ResultCode::OK,
        }])
        .await;
        // The client hangs up: its side closes after the answer.
        assert!(peer.recv().await.is_none());
    });
    outcome.expect("logged out");
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected(ClientError::Closed)
    ));
    assert!(events.next().await.is_none());
    assert!(client.is_closed());
    assert!(!client.is_connected());
    drop(server);
}

#[tokio::test]
async fn a_connection_lost_during_logout_is_not_reconnected() {
    let (client, mut events, mut peer, _server) = logged_in(reconnecting()).await;
    let (outcome, ()) = tokio::join!(client.logout(), async {
        assert_eq!(peer.expect().await, Packet::LogoutReq);
        drop(peer);
    });
    assert!(matches!(outcome, Err(ClientError::Eof)), "{outcome:?}");
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected(ClientError::Eof)
    ));
}

#[tokio::test]
async fn a_protocol_violation_is_not_reconnected() {
    let (_client, mut events, mut peer, _server) = logged_in(reconnecting()).await;
    peer.send_raw(&[4, 0, 0xee, 0xee]).await;
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected(ClientError::Protocol(ProtocolError::Decode(_)))
    ));
}

#[tokio::test]
async fn a_server_shutdown_is_reconnected() {
    let (_client, mut events, mut peer, server) = logged_in(reconnecting()).await;
    peer.send(&[Packet::ErrorNotify {
        code: ErrorCode::SERVER_SHUTDOWN,
        reason: "restarting".into(),
    }])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::ServerClosing {
            code: ErrorCode::SERVER_SHUTDOWN,
            ..
        }
    ));
    assert!(matches!(
        expect_lost(&mut events).await,
        ClientError::ServerClosed {
            code: ErrorCode::SERVER_SHUTDOWN,
            ..
        }
    ));
    // The server is back: it refuses the first attempt while still starting, then resumes.
    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::ResumeReq { .. }));
    peer.send(&[Packet::ErrorNotify {
        code: ErrorCode::SERVER_BUSY,
        reason: "full".into(),
    }])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::Reconnecting { attempt: 2, .. }
    ));
    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::ResumeReq { .. }));
    peer.send(&[resume_res(ResultCode::OK, "t2", 0)]).await;
    assert!(matches!(
        next(&mut events).await,
        Event::Resumed { replayed: 0 }
    ));
}

#[tokio::test]
async fn a_connection_lost_before_login_is_not_reconnected() {
    let server = FakeServer::bind().await;
    let (_client, mut events, peer) = server.connect(reconnecting()).await;
    drop(peer);
    assert!(matches!(
        next(&mut events).await,
        Event::Disconnected(ClientError::Eof)
    ));
}

#[tokio::test]
async fn a_slow_event_consumer_loses_nothing_across_a_resume() {
    // One event of room, and the application reads slowly: nothing may be lost or reordered
    // between the old connection's messages, the reconnect's events and the replay.
    let (_client, mut events, mut peer, server) =
        logged_in(reconnecting().with_event_capacity(1)).await;
    peer.send(&[notify(1, "bob", "a"), notify(2, "bob", "b")])
        .await;
    drop(peer);
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::time::sleep(5 * MS).await;
            let event = next(&mut events).await;
            let resumed = matches!(event, Event::Resumed { .. });
            seen.push(event);
            if resumed {
                seen.push(next(&mut events).await);
                return seen;
            }
        }
    });
    let mut peer = server.accept().await;
    // Both messages were decoded before the cut was noticed, so both count as received.
    assert_eq!(
        peer.expect().await,
        Packet::ResumeReq {
            username: "alice".into(),
            token: "t1".into(),
            last_message_id: 2,
        }
    );
    peer.send(&[resume_res(ResultCode::OK, "t2", 1), notify(3, "bob", "c")])
        .await;
    let seen = reader.await.expect("reader");
    let summary: Vec<String> = seen
        .iter()
        .map(|event| match event {
            Event::Broadcast(msg) => msg.message_id.to_string(),
            Event::ConnectionLost(_) => "lost".to_owned(),
            Event::Reconnecting { attempt, .. } => format!("attempt {attempt}"),
            Event::Resumed { replayed } => format!("resumed {replayed}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        ["1", "2", "lost", "attempt 1", "resumed 1", "3"].map(String::from)
    );
}

#[tokio::test]
async fn a_notification_cut_short_does_not_count_as_received() {
    let (_client, mut events, mut peer, server) = logged_in(reconnecting()).await;
    let mut bytes = bytes::BytesMut::new();
    suda_protocol::encode(&notify(4, "bob", "whole"), &mut bytes).expect("encodable");
    suda_protocol::encode(&notify(5, "bob", "cut short"), &mut bytes).expect("encodable");
    // All of the first, and 10 bytes of the second: into its message id.
    let whole = bytes.len() - (23 + 3 + 9) + 10;
    peer.send_raw(&bytes[..whole]).await;
    drop(peer);
    assert_eq!(next_message_id(&mut events).await, 4);
    expect_lost(&mut events).await;
    let mut peer = server.accept().await;
    assert!(matches!(
        peer.expect().await,
        Packet::ResumeReq {
            last_message_id: 4,
            ..
        }
    ));
    peer.send(&[
        resume_res(ResultCode::OK, "t2", 1),
        notify(5, "bob", "cut short"),
    ])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::Resumed { replayed: 1 }
    ));
    assert_eq!(next_message_id(&mut events).await, 5);
}

#[tokio::test]
async fn room_traffic_counts_for_the_resume_and_is_delivered_once() {
    let (_client, mut events, mut peer, server) = logged_in(reconnecting()).await;
    let room_chat = |message_id| Packet::RoomChatNotify {
        message_id,
        sent_at_ms: 0,
        room: "lobby".into(),
        from: "bob".into(),
        text: "hi".into(),
    };
    let room_event = |event_id| Packet::RoomEventNotify {
        event_id,
        sent_at_ms: 0,
        room: "lobby".into(),
        kind: 2,
        user: "carol".into(),
        actor: "".into(),
        text: "".into(),
    };
    let notice = |message_id| Packet::SystemNoticeNotify {
        message_id,
        sent_at_ms: 0,
        from: "root".into(),
        text: "hear ye".into(),
    };
    let id_of = |event: Event| match event {
        Event::RoomChat(message) => message.message.message_id,
        Event::RoomEvent(event) => event.event_id,
        Event::SystemNotice(message) => message.message_id,
        other => panic!("expected 1.3 traffic, got {other:?}"),
    };
    peer.send(&[room_chat(4), notice(5), room_event(6)]).await;
    for id in [4, 5, 6] {
        assert_eq!(id_of(next(&mut events).await), id);
    }
    drop(peer);
    expect_lost(&mut events).await;

    let mut peer = server.accept().await;
    assert_eq!(
        peer.expect().await,
        Packet::ResumeReq {
            username: "alice".into(),
            token: "t1".into(),
            last_message_id: 6,
        }
    );
    // 5 and 6 again (already delivered, so dropped), then 7 and 8 that were missed.
    peer.send(&[
        resume_res(ResultCode::OK, "t2", 4),
        notice(5),
        room_event(6),
        room_chat(7),
        room_event(8),
    ])
    .await;
    assert!(matches!(
        next(&mut events).await,
        Event::Resumed { replayed: 4 }
    ));
    assert_eq!(id_of(next(&mut events).await), 7);
    assert_eq!(id_of(next(&mut events).await), 8);
}

#[tokio::test]
async fn a_new_login_after_a_reconnect_opts_in_again_with_the_last_status() {
    // Opting in is off: it is the session having spoken 1.3 (set_status) that counts.
    let (client, mut events, mut peer, server) = logged_in(reconnecting()).await;
    let (away, ()) = tokio::join!(client.set_status(Some("lunch")), async {
        assert!(matches!(peer.expect().await, Packet::SetStatusReq { .. }));
        peer.send(&[Packet::SetStatusRes {
            result: ResultCode::OK,
        }])
        .await;
    });
    away.expect("away");
    drop(peer);
    expect_lost(&mut events).await;

    let mut peer = server.accept().await;
    assert!(matches!(peer.expect().await, Packet::ResumeReq { .. }));
    peer.send(&[resume_res(ResultCode::INVALID_TOKEN, "", 0)])
        .await;
    assert!(matches!(peer.expect().await, Packet::LoginReq { .. }));
    peer.send(&[Packet::LoginRes {
        result: ResultCode::OK,
        session_id: 2,
    }])
    .await;
    // The new session is opted in, and away again, before anything else.
    assert_eq!(
        peer.expect().await,
        Packet::SetStatusReq {
            status: 1,
            text: "lunch".into()
        }
    );
    assert_eq!(peer.expect().await, Packet::SessionTokenReq);
    assert!(matches!(
        next(&mut events).await,
        Event::Reconnected { session_id: 2 }
    ));
}
