//! The client against a scripted fake server (see `fake_server`).

mod fake_server;
mod protocol13;
mod reconnect;
#[cfg(feature = "tls")]
mod tls;

use std::time::Duration;

use suda_protocol::{DecodeError, EncodeError, Packet, WireStr};
use tokio::task::JoinSet;

use self::fake_server::connect;
use crate::{
    ChatMessage, ClientConfig, ClientError, ErrorCode, Event, PacketType, ProtocolError, ResultCode,
};

/// Keep-alive and the 1.3 opt-in off, so the server sees only what a test sends.
fn config() -> ClientConfig {
    ClientConfig::default()
        .with_keepalive(None)
        .with_opt_in(false)
}

fn notify(message_id: u64, from: &str, text: &str) -> Packet {
    Packet::BroadcastNotify {
        message_id,
        sent_at_ms: 1_700_000_000_000 + message_id,
        from: from.into(),
        text: text.into(),
    }
}

#[tokio::test]
async fn login_returns_the_session_id() {
    let (client, _events, mut server) = connect(config()).await;
    let (session, ()) = tokio::join!(client.login("alice", "pw"), async {
        assert_eq!(
            server.expect().await,
            Packet::LoginReq {
                username: "alice".into(),
                password: "pw".into()
            }
        );
        server
            .send(&[Packet::LoginRes {
                result: ResultCode::OK,
                session_id: 42,
            }])
            .await;
    });
    assert_eq!(session.expect("logged in"), 42);
}

#[tokio::test]
async fn a_refused_login_is_a_matchable_error_and_the_connection_stays_usable() {
    let (client, _events, mut server) = connect(config()).await;
    let (refused, ()) = tokio::join!(client.login("alice", "wrong"), async {
        server.expect().await;
        server
            .send(&[Packet::LoginRes {
                result: ResultCode::INVALID_CREDENTIALS,
                session_id: 0,
            }])
            .await;
    });
    assert!(
        matches!(
            refused,
            Err(ClientError::Rejected {
                request: PacketType::LoginReq,
                result: ResultCode::INVALID_CREDENTIALS
            })
        ),
        "{refused:?}"
    );

    let (pong, ()) = tokio::join!(client.ping(), async {
        let Packet::Ping { nonce } = server.expect().await else {
            panic!("expected PING");
        };
        server.send(&[Packet::Pong { nonce }]).await;
    });
    pong.expect("connection still usable");
}

#[tokio::test]
async fn pipelined_requests_from_many_tasks_each_get_their_own_response() {
    const N: u64 = 60;
    let (client, _events, mut server) = connect(config()).await;
    let mut callers = JoinSet::new();
    for i in 0..N {
        let client = client.clone();
        callers.spawn(async move {
            let outcome = match i % 3 {
                0 => client.broadcast(&i.to_string()).await,
                1 => client.whisper("nobody", &i.to_string()).await,
                _ => client.ping().await.map(|_| i + 1000),
            };
            (i, outcome)
        });
    }

    // Read every request before answering any, so all of them are in flight at once, then answer
    // in arrival order in one write. Ids derive from the text, so each caller can tell whether it
    // got the answer to its own request.
    let mut answers = Vec::new();
    for _ in 0..N {
        answers.push(match server.expect().await {
            Packet::BroadcastReq { text } => Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: text.to_str().expect("utf-8").parse().expect("number"),
            },
            Packet::WhisperReq { .. } => Packet::WhisperRes {
                result: ResultCode::USER_NOT_FOUND,
                message_id: 0,
            },
            Packet::Ping { nonce } => Packet::Pong { nonce },
            other => panic!("unexpected {other:?}"),
        });
    }
    server.send(&answers).await;

    while let Some(joined) = callers.join_next().await {
        let (i, outcome) = joined.expect("caller task");
        match i % 3 {
            1 => assert!(
                matches!(
                    outcome,
                    Err(ClientError::Rejected {
                        request: PacketType::WhisperReq,
                        result: ResultCode::USER_NOT_FOUND
                    })
                ),
                "{i}: {outcome:?}"
            ),
            0 => assert_eq!(outcome.expect("broadcast"), i),
            _ => assert_eq!(outcome.expect("ping"), i + 1000),
        }
    }
}

#[tokio::test]
async fn notifications_become_events_in_order() {
    let (client, mut events, mut server) = connect(config()).await;
    let (sent, ()) = tokio::join!(client.broadcast("hi all"), async {
        server.expect().await;
        server
            .send(&[
                notify(1, "bob", "hello"),
                Packet::WhisperNotify {
                    message_id: 2,
                    sent_at_ms: 5,
                    from: "carol".into(),
                    text: WireStr::from(&[b'o', 0xff, b'k'][..]),
                },
                Packet::BroadcastRes {
                    result: ResultCode::OK,
                    message_id: 3,
                },
            ])
            .await;
    });
    assert_eq!(sent.expect("broadcast"), 3);

    let Some(Event::Broadcast(first)) = events.next().await else {
        panic!("expected a broadcast");
    };
    assert_eq!(
        first,
        ChatMessage {
            message_id: 1,
            sent_at_ms: 1_700_000_000_001,
            from: "bob".into(),
            text: "hello".into()
        }
    );
    let Some(Event::Whisper(second)) = events.next().await else {
        panic!("expected a whisper");
    };
    assert_eq!(
        (second.from.as_str(), second.text.as_str()),
        ("carol", "o\u{fffd}k")
    );
}

#[tokio::test]
async fn error_notify_becomes_server_closing_then_disconnected() {
    let (client, mut events, mut server) = connect(config()).await;
    let (pending, ()) = tokio::join!(client.broadcast("x"), async {
        server.expect().await;
        server
            .send(&[
                notify(1, "bob", "last words"),
                Packet::ErrorNotify {
                    code: ErrorCode::SERVER_SHUTDOWN,
                    reason: "maintenance".into(),
                },
            ])
            .await;
        // The client closes its end without waiting for the server to.
        assert!(server.recv().await.is_none());
    });
    assert!(
        matches!(&pending, Err(ClientError::ServerClosed { code: ErrorCode::SERVER_SHUTDOWN, reason }) if reason == "maintenance"),
        "{pending:?}"
    );

    assert!(matches!(events.next().await, Some(Event::Broadcast(_))));
    assert!(matches!(
        events.next().await,
        Some(Event::ServerClosing { code: ErrorCode::SERVER_SHUTDOWN, reason }) if reason == "maintenance"
    ));
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::ServerClosed { .. }))
    ));
    assert!(events.next().await.is_none());

    assert!(client.is_closed());
    assert!(matches!(
        client.ping().await,
        Err(ClientError::ServerClosed { .. })
    ));
}

#[tokio::test]
async fn a_response_of_the_wrong_type_is_a_protocol_error_that_ends_the_connection() {
    let (client, mut events, mut server) = connect(config()).await;
    let (login, ()) = tokio::join!(client.login("alice", "pw"), async {
        server.expect().await;
        server
            .send(&[Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: 1,
            }])
            .await;
    });
    let expected = ProtocolError::UnexpectedResponse {
        expected: PacketType::LoginRes,
        got: PacketType::BroadcastRes,
    };
    assert!(
        matches!(&login, Err(ClientError::Protocol(e)) if *e == expected),
        "{login:?}"
    );
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::Protocol(e))) if e == expected
    ));
    assert!(server.recv().await.is_none());
}

#[tokio::test]
async fn other_protocol_violations_end_the_connection_with_the_reason() {
    let pong = {
        let mut buf = bytes::BytesMut::new();
        suda_protocol::encode(&Packet::Pong { nonce: 1 }, &mut buf).expect("encodable");
        buf.to_vec()
    };
    let ping = {
        let mut buf = bytes::BytesMut::new();
        suda_protocol::encode(&Packet::Ping { nonce: 1 }, &mut buf).expect("encodable");
        buf.to_vec()
    };
    let cases = [
        (pong, ProtocolError::UnsolicitedResponse(PacketType::Pong)),
        (ping, ProtocolError::UnexpectedPacket(PacketType::Ping)),
        (
            vec![4, 0, 0xee, 0xee],
            ProtocolError::Decode(DecodeError::UnknownType(0xeeee)),
        ),
        (
            vec![2, 0, 0x01, 0x01],
            ProtocolError::Decode(DecodeError::TooShort { size: 2 }),
        ),
    ];
    for (bytes, expected) in cases {
        let (_client, mut events, mut server) = connect(config()).await;
        server.send_raw(&bytes).await;
        match events.next().await {
            Some(Event::Disconnected(ClientError::Protocol(e))) => assert_eq!(e, expected),
            other => panic!("{expected:?}: got {other:?}"),
        }
        assert!(server.recv().await.is_none());
    }
}

#[tokio::test]
async fn an_unanswered_request_times_out_and_ends_the_connection() {
    let timeout = Duration::from_secs(5);
    let (client, mut events, mut server) = connect(config().with_request_timeout(timeout)).await;
    // Virtual time from here on: the runtime jumps to the deadline once everyone is idle.
    tokio::time::pause();
    let (outcome, request) = tokio::join!(client.broadcast("anyone?"), server.expect());
    assert!(matches!(request, Packet::BroadcastReq { .. }));
    assert!(
        matches!(
            outcome,
            Err(ClientError::Timeout { request: PacketType::BroadcastReq, after }) if after == timeout
        ),
        "{outcome:?}"
    );
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::Timeout { .. }))
    ));
    assert!(server.recv().await.is_none());
}

#[tokio::test]
async fn keepalive_pings_a_quiet_connection() {
    let (_client, _events, mut server) =
        connect(config().with_keepalive(Some(Duration::from_secs(10)))).await;
    tokio::time::pause();
    let Packet::Ping { nonce: first } = server.expect().await else {
        panic!("expected a keep-alive PING");
    };
    server.send(&[Packet::Pong { nonce: first }]).await;
    // A second ping, one interval later, shows the PONG was accepted without ending anything.
    let Packet::Ping { nonce: second } = server.expect().await else {
        panic!("expected a second keep-alive PING");
    };
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_server_hangup_fails_pending_requests() {
    let (client, mut events, mut server) = connect(config()).await;
    let (outcome, ()) = tokio::join!(client.ping(), async move {
        server.expect().await;
        drop(server);
    });
    assert!(matches!(outcome, Err(ClientError::Eof)), "{outcome:?}");
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::Eof))
    ));
}

#[tokio::test]
async fn close_fails_pending_requests_and_ends_the_event_stream() {
    let (client, mut events, mut server) = connect(config()).await;
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move { client.broadcast("never answered").await }
    });
    server.expect().await;
    client.close().await;
    assert!(matches!(
        in_flight.await.expect("task"),
        Err(ClientError::Closed)
    ));
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::Closed))
    ));
    assert!(events.next().await.is_none());
    assert!(server.recv().await.is_none());
    assert!(matches!(client.ping().await, Err(ClientError::Closed)));
    client.close().await;
}

#[tokio::test]
async fn the_connection_lives_until_every_handle_and_the_events_are_dropped() {
    let (client, mut events, mut server) = connect(config()).await;
    let other = client.clone();
    drop(client);

    // Handles remain: requests still work. With no handle left, events still arrive.
    let (pong, ()) = tokio::join!(other.ping(), async {
        let Packet::Ping { nonce } = server.expect().await else {
            panic!("expected PING");
        };
        server.send(&[Packet::Pong { nonce }]).await;
    });
    pong.expect("ping");
    drop(other);
    server.send(&[notify(1, "bob", "still there?")]).await;
    assert!(matches!(events.next().await, Some(Event::Broadcast(_))));

    drop(events);
    assert!(server.recv().await.is_none());
}

#[tokio::test]
async fn requests_that_cannot_be_sent_are_refused_locally() {
    let (client, _events, mut server) = connect(config()).await;
    let text = "x".repeat(9000);
    assert!(matches!(
        client.broadcast(&text).await,
        Err(ClientError::TooLarge {
            request: PacketType::BroadcastReq,
            size: 9006,
            max: 8192
        })
    ));
    assert!(matches!(
        client.login(&"a".repeat(300), "").await,
        Err(ClientError::Encode {
            request: PacketType::LoginReq,
            source: EncodeError::FieldTooLong {
                field: "username",
                ..
            }
        })
    ));
    // Nothing of either reached the server: the next packet it sees is this ping.
    let (pong, ()) = tokio::join!(client.ping(), async {
        let Packet::Ping { nonce } = server.expect().await else {
            panic!("expected PING");
        };
        server.send(&[Packet::Pong { nonce }]).await;
    });
    pong.expect("ping");
}

#[tokio::test]
async fn a_slow_event_consumer_loses_nothing() {
    const N: u64 = 200;
    let (client, mut events, mut server) = connect(config().with_event_capacity(1)).await;
    let (sent, (), ()) = tokio::join!(
        client.broadcast("after the flood"),
        async {
            server.expect().await;
            let mut flood: Vec<Packet> = (1..=N).map(|i| notify(i, "bob", "spam")).collect();
            flood.push(Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: N + 1,
            });
            server.send(&flood).await;
        },
        async {
            for i in 1..=N {
                match events.next().await {
                    Some(Event::Broadcast(msg)) => assert_eq!(msg.message_id, i),
                    other => panic!("{i}: {other:?}"),
                }
            }
        }
    );
    assert_eq!(sent.expect("answered once the events were taken"), N + 1);
}

#[tokio::test]
async fn unconsumed_events_hold_back_responses_but_are_still_delivered() {
    let (client, mut events, mut server) = connect(
        config()
            .with_event_capacity(1)
            .with_request_timeout(Duration::from_secs(5)),
    )
    .await;
    tokio::time::pause();
    let (outcome, ()) = tokio::join!(client.broadcast("x"), async {
        server.expect().await;
        server
            .send(&[
                notify(1, "bob", "a"),
                notify(2, "bob", "b"),
                Packet::BroadcastRes {
                    result: ResultCode::OK,
                    message_id: 3,
                },
            ])
            .await;
    });
    // Nobody took event 1, so event 2 waits and the response behind it is never read.
    assert!(
        matches!(outcome, Err(ClientError::Timeout { .. })),
        "{outcome:?}"
    );
    for id in [1, 2] {
        assert!(matches!(events.next().await, Some(Event::Broadcast(m)) if m.message_id == id));
    }
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::Timeout { .. }))
    ));
}

#[tokio::test]
async fn packets_larger_than_our_send_limit_are_still_received() {
    // A server configured with a larger max_packet may send up to 65535 bytes.
    let (_client, mut events, mut server) = connect(config()).await;
    let text = "y".repeat(20_000);
    server.send(&[notify(1, "bob", &text)]).await;
    match events.next().await {
        Some(Event::Broadcast(msg)) => assert_eq!(msg.text.len(), 20_000),
        other => panic!("{other:?}"),
    }
}
