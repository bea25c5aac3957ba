use std::collections::HashMap;

use suda_protocol::{Packet, ResultCode};
use suda_server::ids::unix_time_ms;

use crate::support::*;

#[tokio::test]
async fn broadcast_reaches_every_other_session_but_not_the_sender() {
    let server = TestServer::start().await;
    let names = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let mut clients = Vec::new();
    for name in names {
        clients.push(Raw::login(server.addr, name).await);
    }
    // Someone connected but not logged in must not receive broadcasts either.
    let mut anonymous = Raw::connect(server.addr).await;

    let before = unix_time_ms();
    let (result, id) = clients[0].broadcast("hello everyone").await;
    assert_eq!(result, ResultCode::OK);
    assert_ne!(id, 0);
    for client in &mut clients[1..] {
        let packet = client.recv().await;
        let Packet::BroadcastNotify { sent_at_ms, .. } = &packet else {
            panic!("expected BROADCAST_NOTIFY, got {packet:?}");
        };
        assert!(*sent_at_ms >= before && *sent_at_ms <= unix_time_ms() + 1);
        assert_eq!(chat(&packet), ("alice".into(), "hello everyone".into(), id));
    }
    // The sender's next packet is the PONG, not its own broadcast.
    clients[0].ping(1).await;
    anonymous.ping(2).await;
}

/// Output is held for one I/O cycle of its worker, to gather more into each write. With
/// nothing else to do — one worker, no hibernation sweep, every deadline a minute away — the
/// worker must still not wait for input that never comes before it writes the replies.
#[tokio::test]
async fn a_reply_is_not_held_waiting_for_more_input() {
    let server = TestServer::start_with(|config| {
        config.workers = 1;
        config.hibernate_after = std::time::Duration::ZERO;
        config.login_timeout = std::time::Duration::from_secs(60);
        config.idle_timeout = std::time::Duration::from_secs(60);
    })
    .await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    for nonce in 0..3 {
        alice.ping(nonce).await;
    }
    let (result, id) = alice.whisper("bob", "still there?").await;
    assert_eq!(result, ResultCode::OK);
    assert_eq!(
        chat(&bob.recv().await),
        ("alice".into(), "still there?".into(), id)
    );
}

#[tokio::test]
async fn senders_are_shown_as_they_typed_their_name() {
    let server = TestServer::start().await;
    let mut shouty = Raw::login(server.addr, "ShOuTy").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    shouty.broadcast("hi").await;
    assert_eq!(chat(&bob.recv().await).0, "ShOuTy");
}

#[tokio::test]
async fn whisper_reaches_only_its_target_case_insensitively() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut carol = Raw::login(server.addr, "carol").await;
    let (result, id) = alice.whisper("BOB", "psst").await;
    assert_eq!(result, ResultCode::OK);
    let packet = bob.recv().await;
    assert!(matches!(packet, Packet::WhisperNotify { .. }));
    assert_eq!(chat(&packet), ("alice".into(), "psst".into(), id));
    carol.ping(9).await; // nothing arrived before the PONG
    alice.ping(9).await;
}

/// Whispers pipelined in one write to many recipients — those on the sender's worker written
/// straight into their outboxes, the others handed across in one batch — each arrive once and
/// in the order they were sent, however the connections fell on the two workers.
#[tokio::test]
async fn pipelined_whispers_to_many_arrive_once_and_in_order() {
    const USERS: usize = 8;
    const ROUNDS: usize = 20;
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for i in 0..USERS {
        clients.push(Raw::login(server.addr, &format!("u{i}")).await);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let mut bytes = Vec::new();
        for round in 0..ROUNDS {
            for j in (0..USERS).filter(|&j| j != i) {
                bytes.extend(encode(&Packet::WhisperReq {
                    to: format!("u{j}").into(),
                    text: format!("{i}:{round}").into(),
                }));
            }
        }
        client.send_bytes(&bytes).await;
    }
    for (j, client) in clients.iter_mut().enumerate() {
        let expected = (USERS - 1) * ROUNDS;
        let mut next_round = [0usize; USERS];
        let (mut notified, mut answered) = (0, 0);
        while notified < expected || answered < expected {
            match client.recv().await {
                Packet::WhisperRes { result, .. } => {
                    assert_eq!(result, ResultCode::OK);
                    answered += 1;
                }
                packet @ Packet::WhisperNotify { .. } => {
                    let (from, text, _) = chat(&packet);
                    let i: usize = from[1..].parse().expect("a test user");
                    assert_ne!(i, j, "u{j} whispered to itself");
                    assert_eq!(
                        text,
                        format!("{i}:{}", next_round[i]),
                        "u{j}: u{i}'s whispers out of order or lost"
                    );
                    next_round[i] += 1;
                    notified += 1;
                }
                other => panic!("u{j}: unexpected {other:?}"),
            }
        }
    }
    for client in &mut clients {
        client.ping(1).await; // nothing further arrived
    }
}

#[tokio::test]
async fn whisper_to_yourself_is_delivered_to_you() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    alice
        .send(&Packet::WhisperReq {
            to: "Alice".into(),
            text: "note to self".into(),
        })
        .await;
    let notify = alice.recv().await;
    let Packet::WhisperRes { result, message_id } = alice.recv().await else {
        panic!("expected WHISPER_RES");
    };
    assert_eq!(result, ResultCode::OK);
    assert_eq!(
        chat(&notify),
        ("alice".into(), "note to self".into(), message_id)
    );
}

#[tokio::test]
async fn whisper_to_unknown_or_offline_users_is_user_not_found() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    assert_eq!(
        alice.whisper("nobody", "hi").await,
        (ResultCode::USER_NOT_FOUND, 0)
    );
    assert_eq!(
        alice.whisper("not a name!", "hi").await,
        (ResultCode::USER_NOT_FOUND, 0)
    );
    let bob = Raw::login(server.addr, "bob").await;
    assert_eq!(alice.whisper("bob", "hi").await.0, ResultCode::OK);
    drop(bob);
    server.until("bob offline", |s| s.online() == 1).await;
    assert_eq!(
        alice.whisper("bob", "hi").await,
        (ResultCode::USER_NOT_FOUND, 0)
    );
    // A user connected but not logged in is not whisperable either.
    let _anonymous = Raw::connect(server.addr).await;
    assert_eq!(
        alice.whisper("bob", "hi").await,
        (ResultCode::USER_NOT_FOUND, 0)
    );
}

#[tokio::test]
async fn invalid_text_is_invalid_message_and_the_connection_stays_open() {
    let server = TestServer::start_with(|c| c.max_text = 100).await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let long = "x".repeat(101);
    assert_eq!(alice.broadcast("").await, (ResultCode::INVALID_MESSAGE, 0));
    assert_eq!(
        alice.broadcast(&long).await,
        (ResultCode::INVALID_MESSAGE, 0)
    );
    assert_eq!(
        alice.whisper("bob", "").await,
        (ResultCode::INVALID_MESSAGE, 0)
    );
    assert_eq!(
        alice.whisper("bob", long.as_str()).await,
        (ResultCode::INVALID_MESSAGE, 0)
    );
    assert_eq!(
        alice.whisper("bob", &[b'a', 0xc3][..]).await,
        (ResultCode::INVALID_MESSAGE, 0)
    );
    alice
        .send(&Packet::BroadcastReq {
            text: (&[0xed, 0xa0, 0x80][..]).into(), // an encoded surrogate: not UTF-8
        })
        .await;
    assert!(matches!(
        alice.recv().await,
        Packet::BroadcastRes {
            result: ResultCode::INVALID_MESSAGE,
            message_id: 0
        }
    ));
    // Exactly the limit, multi-byte characters included, is fine.
    let exact = "é".repeat(50);
    assert_eq!(alice.broadcast(&exact).await.0, ResultCode::OK);
    assert_eq!(chat(&bob.recv().await).1, exact);
}

#[tokio::test]
async fn responses_come_back_in_request_order() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let _bob = Raw::login(server.addr, "bob").await;
    let mut batch = Vec::new();
    for i in 0..30u64 {
        let packet = match i % 4 {
            0 => Packet::Ping { nonce: i },
            1 => Packet::BroadcastReq {
                text: format!("b{i}").into(),
            },
            2 => Packet::WhisperReq {
                to: "bob".into(),
                text: format!("w{i}").into(),
            },
            _ => Packet::WhisperReq {
                to: "ghost".into(),
                text: "x".into(),
            },
        };
        batch.extend(encode(&packet));
    }
    alice.send_bytes(&batch).await;
    let mut last_id = 0;
    for i in 0..30u64 {
        match (i % 4, alice.recv().await) {
            (0, Packet::Pong { nonce }) => assert_eq!(nonce, i),
            (1, Packet::BroadcastRes { result, message_id })
            | (2, Packet::WhisperRes { result, message_id }) => {
                assert_eq!(result, ResultCode::OK);
                assert!(message_id > last_id, "ids increase");
                last_id = message_id;
            }
            (3, Packet::WhisperRes { result, .. }) => {
                assert_eq!(result, ResultCode::USER_NOT_FOUND)
            }
            (kind, other) => panic!("request {i} (kind {kind}) answered by {other:?}"),
        }
    }
}

#[tokio::test]
async fn concurrent_senders_are_seen_by_every_receiver_exactly_once_in_order() {
    const SENDERS: usize = 6;
    const RECEIVERS: usize = 6;
    const MESSAGES: usize = 300;
    let server = TestServer::start().await;
    let mut receivers = Vec::new();
    for r in 0..RECEIVERS {
        receivers.push(Raw::login(server.addr, &format!("receiver{r}")).await);
    }
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(Raw::login(server.addr, &format!("sender{s}")).await);
    }
    // Each receiver also receives the whispers sent to it, interleaved with broadcasts.
    let send_tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(s, mut sender)| {
            tokio::spawn(async move {
                let mut wire = Vec::new();
                for m in 0..MESSAGES {
                    let text = format!("{s}:{m}");
                    let packet = if m % 10 == 0 {
                        suda_protocol::Packet::WhisperReq {
                            to: format!("receiver{}", m / 10 % RECEIVERS).into(),
                            text: text.into(),
                        }
                    } else {
                        suda_protocol::Packet::BroadcastReq { text: text.into() }
                    };
                    wire.extend(encode(&packet));
                }
                // Written in uneven pieces so packets straddle reads.
                for piece in wire.chunks(777) {
                    sender.send_bytes(piece).await;
                }
                let mut answered = 0;
                while answered < MESSAGES {
                    match sender.recv().await {
                        Packet::BroadcastRes { result, .. } | Packet::WhisperRes { result, .. } => {
                            assert_eq!(result, ResultCode::OK);
                            answered += 1;
                        }
                        // Other senders' broadcasts interleave with our responses.
                        Packet::BroadcastNotify { .. } => {}
                        other => panic!("unexpected {other:?}"),
                    }
                }
                sender
            })
        })
        .collect();
    // What receiver `r` must get from each sender, in this order: every broadcast, and the
    // whispers addressed to it.
    let expected_for = |r: usize| -> Vec<usize> {
        (0..MESSAGES)
            .filter(|m| m % 10 != 0 || m / 10 % RECEIVERS == r)
            .collect()
    };
    let receive_tasks: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(r, mut receiver)| {
            let expected = expected_for(r);
            tokio::spawn(async move {
                let mut position: HashMap<String, usize> = HashMap::new();
                let mut seen = std::collections::HashSet::new();
                for _ in 0..SENDERS * expected.len() {
                    let (from, text, id) = chat(&receiver.recv().await);
                    assert!(seen.insert(id), "message {id} delivered twice");
                    let (s, m) = text.split_once(':').expect("s:m");
                    assert_eq!(format!("sender{s}"), from);
                    let m: usize = m.parse().expect("number");
                    let at = position.entry(from.clone()).or_default();
                    assert_eq!(
                        expected.get(*at),
                        Some(&m),
                        "receiver{r} got {from}'s messages out of order"
                    );
                    *at += 1;
                }
                receiver.ping(1).await; // and nothing more
            })
        })
        .collect();
    for task in send_tasks {
        task.await.expect("sender");
    }
    for task in receive_tasks {
        task.await.expect("receiver");
    }
}
