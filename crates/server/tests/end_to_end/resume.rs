//! Session resume: detached sessions keep their name and their messages; a resume replays
//! exactly what was missed, in order; tokens rotate and cannot be borrowed; logout ends it all.

use std::collections::HashMap;
use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode, WireStr};

use crate::support::*;

/// Logs in as `name` and takes a resume token.
async fn resumable(addr: std::net::SocketAddr, name: &str) -> (Raw, String) {
    let mut raw = Raw::login(addr, name).await;
    let token = take_token(&mut raw).await;
    (raw, token)
}

async fn take_token(raw: &mut Raw) -> String {
    raw.send(&Packet::SessionTokenReq).await;
    match raw.recv().await {
        Packet::SessionTokenRes {
            result,
            token,
            grace_ms,
        } => {
            assert_eq!(result, ResultCode::OK);
            assert!(grace_ms > 0);
            token.to_string()
        }
        other => panic!("expected SESSION_TOKEN_RES, got {other:?}"),
    }
}

/// Resumes `name`'s session on a new connection; returns the connection, the result, the new
/// token and the replayed notifications.
async fn resume(
    addr: std::net::SocketAddr,
    name: &str,
    token: &str,
    last_message_id: u64,
) -> (Raw, ResultCode, String, Vec<Packet>) {
    let mut raw = Raw::connect(addr).await;
    raw.send(&Packet::ResumeReq {
        username: name.into(),
        token: token.into(),
        last_message_id,
    })
    .await;
    let (result, token, replayed) = match raw.recv().await {
        Packet::ResumeRes {
            result,
            session_id,
            token,
            replayed,
        } => {
            assert_eq!(result.is_ok(), session_id != 0);
            (result, token.to_string(), replayed)
        }
        other => panic!("expected RESUME_RES, got {other:?}"),
    };
    let mut packets = Vec::new();
    for _ in 0..replayed {
        packets.push(raw.recv().await);
    }
    (raw, result, token, packets)
}

fn texts(packets: &[Packet]) -> Vec<String> {
    packets.iter().map(|p| chat(p).1).collect()
}

#[tokio::test]
async fn a_dropped_session_is_resumed_with_everything_it_missed_in_order() {
    let server = TestServer::start().await;
    let (mut alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    bob.broadcast("seen").await;
    let seen_id = chat(&alice.recv().await).2;
    drop(alice);
    server.until("alice detached", |s| s.detached() == 1).await;

    // While alice is away: broadcasts, and a whisper, which is accepted, not USER_NOT_FOUND.
    bob.broadcast("missed 1").await;
    assert_eq!(bob.whisper("ALICE", "missed 2").await.0, ResultCode::OK);
    bob.broadcast("missed 3").await;
    // Her name stays hers.
    let mut squatter = Raw::connect(server.addr).await;
    assert_eq!(squatter.try_login("alice").await, ResultCode::NAME_IN_USE);
    // All three reached her session (on whichever worker it lives) before she comes back; what
    // arrives during a resume would follow the replay live, which the next test covers.
    server
        .until("delivered", |s| s.snapshot().deliveries == 4)
        .await;

    let (mut alice, result, new_token, replayed) =
        resume(server.addr, "alice", &token, seen_id).await;
    assert_eq!(result, ResultCode::OK);
    assert_ne!(new_token, token, "tokens rotate");
    assert_eq!(texts(&replayed), ["missed 1", "missed 2", "missed 3"]);
    assert!(matches!(replayed[1], Packet::WhisperNotify { .. }));
    // Then live, and the session works as before.
    bob.broadcast("live").await;
    assert_eq!(chat(&alice.recv().await).1, "live");
    assert_eq!(alice.broadcast("back").await.0, ResultCode::OK);
    assert_eq!(chat(&bob.recv().await).1, "back");
    assert_eq!(server.stats.snapshot().resumes, 1);
    // The old token is dead.
    let (_, result, _, _) = resume(server.addr, "alice", &token, 0).await;
    assert_eq!(result, ResultCode::INVALID_TOKEN);
}

#[tokio::test]
async fn what_reached_a_session_before_it_took_its_token_counts_for_a_resume() {
    let server = TestServer::start().await;
    let mut bob = Raw::login(server.addr, "bob").await;
    // Clients ask for their token once their login is answered: chat can come first.
    let mut alice = Raw::login(server.addr, "alice").await;
    bob.broadcast("before the token").await;
    let seen_id = chat(&alice.recv().await).2;
    let token = take_token(&mut alice).await;
    drop(alice);
    server.until("alice detached", |s| s.detached() == 1).await;
    bob.broadcast("while away").await;
    server
        .until("delivered", |s| s.snapshot().deliveries == 2)
        .await;

    // Naming it, she missed only what followed.
    let (alice, result, token, replayed) = resume(server.addr, "alice", &token, seen_id).await;
    assert_eq!(result, ResultCode::OK);
    assert_eq!(texts(&replayed), ["while away"]);
    // Naming nothing, she missed it too, and nothing holds it any more: a gap, not "complete".
    drop(alice);
    server.until("alice detached", |s| s.detached() == 1).await;
    let (_, result, _, replayed) = resume(server.addr, "alice", &token, 0).await;
    assert_eq!(result, ResultCode::RESUMED_WITH_GAP);
    assert_eq!(texts(&replayed), ["while away"]);
}

#[tokio::test]
async fn repeated_cuts_lose_nothing_and_duplicate_nothing_with_senders_streaming() {
    let server = TestServer::start().await;
    stream_through_cuts(&server, 5, 50).await;
}

/// Five senders stream while the receiver's connection is cut again and again; after every
/// resume (which must be complete) the receiver has had every message exactly once, each
/// sender's in order. Senders pause briefly after every `burst` messages; at least `min_cuts`
/// cuts happen.
async fn stream_through_cuts(server: &TestServer, min_cuts: usize, burst: usize) {
    const SENDERS: usize = 5;
    const MESSAGES: usize = 300;
    let (mut receiver, mut token) = resumable(server.addr, "receiver").await;
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut sender = Raw::login(addr, &format!("s{s}")).await;
                for m in 0..MESSAGES {
                    sender
                        .send(&Packet::BroadcastReq {
                            text: format!("{s}:{m}").into(),
                        })
                        .await;
                    if m % burst == burst - 1 {
                        // Let the cuts land between bursts, too.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                let mut acknowledged = 0;
                while acknowledged < MESSAGES {
                    if let Packet::BroadcastRes { result, .. } = sender.recv().await {
                        assert_eq!(result, ResultCode::OK);
                        acknowledged += 1;
                    }
                }
                sender
            })
        })
        .collect();

    let mut next: HashMap<String, usize> = HashMap::new();
    let mut last_id = 0;
    let mut received = 0;
    let mut cuts = 0;
    let mut accept = |packet: &Packet, last_id: &mut u64| {
        let (from, text, id) = chat(packet);
        if from == "receiver" {
            return;
        }
        let (s, m) = text.split_once(':').expect("s:m");
        let m: usize = m.parse().expect("number");
        let expected = next.entry(s.to_owned()).or_default();
        assert_eq!(m, *expected, "sender {s}: lost or duplicated at {m}");
        *expected += 1;
        *last_id = id;
    };
    while received < SENDERS * MESSAGES {
        // Read a few messages, then cut the connection abruptly and resume.
        for _ in 0..(37 + cuts * 11) % 200 {
            if received == SENDERS * MESSAGES {
                break;
            }
            accept(&receiver.recv().await, &mut last_id);
            received += 1;
        }
        drop(receiver);
        cuts += 1;
        let (raw, result, new_token, replayed) =
            resume(server.addr, "receiver", &token, last_id).await;
        assert_eq!(result, ResultCode::OK, "cut {cuts}: nothing may be missing");
        for packet in &replayed {
            accept(packet, &mut last_id);
        }
        received += replayed.len();
        receiver = raw;
        token = new_token;
    }
    assert!(cuts >= min_cuts, "only {cuts} cuts");
    for sender in senders {
        sender.await.expect("sender");
    }
    receiver.ping(1).await; // nothing beyond what was expected
}

#[tokio::test]
async fn tokens_are_bound_to_their_user_and_wrong_ones_are_refused() {
    let server = TestServer::start().await;
    let (alice, token) = resumable(server.addr, "alice").await;
    let (_bob, _) = resumable(server.addr, "bob").await;
    drop(alice);
    server.until("alice detached", |s| s.detached() == 1).await;
    let (_, result, _, _) = resume(server.addr, "bob", &token, 0).await;
    assert_eq!(result, ResultCode::INVALID_TOKEN, "alice's token for bob");
    let (_, result, _, _) = resume(server.addr, "alice", &"0".repeat(32), 0).await;
    assert_eq!(result, ResultCode::INVALID_TOKEN, "a guessed token");
    let (_, result, _, _) = resume(server.addr, "not a name", &token, 0).await;
    assert_eq!(result, ResultCode::INVALID_TOKEN);
    // A logged-in connection cannot resume anything.
    let mut carol = Raw::login(server.addr, "carol").await;
    carol
        .send(&Packet::ResumeReq {
            username: "alice".into(),
            token: token.as_str().into(),
            last_message_id: 0,
        })
        .await;
    assert!(matches!(
        carol.recv().await,
        Packet::ResumeRes {
            result: ResultCode::ALREADY_AUTHENTICATED,
            ..
        }
    ));
    // The right one still works after all that.
    let (_, result, _, _) = resume(server.addr, "Alice", &token, 0).await;
    assert_eq!(result, ResultCode::OK);
}

#[tokio::test]
async fn the_grace_period_ends_the_session_and_frees_the_name() {
    let server = TestServer::start_with(|c| c.resume_grace = Duration::from_millis(300)).await;
    let (alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    drop(alice);
    server.until("detached", |s| s.detached() == 1).await;
    server.until("expired", |s| s.online() == 1).await;
    assert_eq!(server.stats.snapshot().detach_expiries, 1);
    assert_eq!(
        bob.whisper("alice", "gone?").await.0,
        ResultCode::USER_NOT_FOUND
    );
    let (_, result, _, _) = resume(server.addr, "alice", &token, 0).await;
    assert_eq!(result, ResultCode::INVALID_TOKEN, "expired");
    let _new_alice = Raw::login(server.addr, "alice").await;
}

#[tokio::test]
async fn logout_ends_the_session_at_once() {
    let server = TestServer::start().await;
    let (mut alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    alice.send(&Packet::LogoutReq).await;
    assert!(matches!(
        alice.recv().await,
        Packet::LogoutRes {
            result: ResultCode::OK
        }
    ));
    assert_eq!(alice.recv_or_eof().await, None, "closed after LOGOUT_RES");
    server.until("alice gone", |s| s.online() == 1).await;
    assert_eq!(server.stats.detached(), 0);
    assert_eq!(
        bob.whisper("alice", "hi").await.0,
        ResultCode::USER_NOT_FOUND
    );
    let (_, result, _, _) = resume(server.addr, "alice", &token, 0).await;
    assert_eq!(result, ResultCode::INVALID_TOKEN);
}

#[tokio::test]
async fn sessions_without_a_token_end_as_before() {
    let server = TestServer::start().await;
    let alice = Raw::login(server.addr, "alice").await;
    drop(alice);
    server
        .until("name freed at once", |s| s.online() == 0)
        .await;
    assert_eq!(server.stats.detached(), 0);
}

#[tokio::test]
async fn a_zero_grace_period_turns_resume_off() {
    let server = TestServer::start_with(|c| c.resume_grace = Duration::ZERO).await;
    let mut alice = Raw::login(server.addr, "alice").await;
    alice.send(&Packet::SessionTokenReq).await;
    assert!(matches!(
        alice.recv().await,
        Packet::SessionTokenRes {
            result: ResultCode::NOT_AVAILABLE,
            ..
        }
    ));
    drop(alice);
    server
        .until("name freed at once", |s| s.online() == 0)
        .await;
}

#[tokio::test]
async fn more_than_the_replay_limit_is_answered_as_a_gap_never_as_complete() {
    let server = TestServer::start_with(|c| c.max_replay = 10).await;
    let (alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    drop(alice);
    server.until("detached", |s| s.detached() == 1).await;
    for i in 0..25 {
        bob.broadcast(&format!("m{i}")).await;
    }
    server
        .until("delivered", |s| s.snapshot().deliveries == 25)
        .await;
    let (_, result, _, replayed) = resume(server.addr, "alice", &token, 0).await;
    assert_eq!(result, ResultCode::RESUMED_WITH_GAP);
    assert_eq!(
        texts(&replayed),
        (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "the newest that fit"
    );
    assert_eq!(server.stats.snapshot().resume_gaps, 1);
}

#[tokio::test]
async fn a_resume_while_the_old_connection_still_looks_alive_takes_it_over() {
    let server = TestServer::start().await;
    let (mut old, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    bob.broadcast("one").await;
    let seen = chat(&old.recv().await).2;
    // The old connection is half-open as far as the server knows: it never closed.
    let (mut new, result, _, replayed) = resume(server.addr, "alice", &token, seen).await;
    assert_eq!(result, ResultCode::OK);
    assert!(replayed.is_empty());
    old.expect_closed_with(ErrorCode::SESSION_TAKEN_OVER).await;
    bob.broadcast("two").await;
    assert_eq!(chat(&new.recv().await).1, "two");
}

#[tokio::test]
async fn requests_pipelined_behind_a_resume_are_served_by_the_resumed_session() {
    let server = TestServer::start().await;
    let (alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    drop(alice);
    server.until("detached", |s| s.detached() == 1).await;
    let mut raw = Raw::connect(server.addr).await;
    let mut wire = encode(&Packet::Ping { nonce: 1 });
    wire.extend(encode(&Packet::ResumeReq {
        username: "alice".into(),
        token: WireStr::from(token.as_str()),
        last_message_id: 0,
    }));
    wire.extend(encode(&Packet::BroadcastReq {
        text: "right behind".into(),
    }));
    raw.send_bytes(&wire).await;
    assert!(matches!(raw.recv().await, Packet::Pong { nonce: 1 }));
    assert!(matches!(
        raw.recv().await,
        Packet::ResumeRes {
            result: ResultCode::OK,
            replayed: 0,
            ..
        }
    ));
    assert!(matches!(
        raw.recv().await,
        Packet::BroadcastRes {
            result: ResultCode::OK,
            ..
        }
    ));
    let (from, text, _) = chat(&bob.recv().await);
    assert_eq!((from.as_str(), text.as_str()), ("alice", "right behind"));
}

// Resumes that reach back beyond the replay log, filled from history. The tests on both
// storage backends are instantiated in `storage.rs` (`on_both_backends!`).

/// Replay log size in the tests below: far fewer than the messages missed.
const SMALL_LOG: usize = 5;

/// Sends a chat request and waits for its `OK`, skipping the notifications that arrive first.
async fn acknowledged(raw: &mut Raw, request: &Packet) {
    raw.send(request).await;
    loop {
        match raw.recv().await {
            Packet::BroadcastRes { result, .. } | Packet::WhisperRes { result, .. } => {
                assert_eq!(result, ResultCode::OK);
                return;
            }
            Packet::BroadcastNotify { .. } | Packet::WhisperNotify { .. } => {}
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    }
}

/// `(from, text)` of each packet, which must be chat notifications, and whether the ids are
/// all different.
fn senders_and_texts(packets: &[Packet]) -> (Vec<(String, String)>, bool) {
    let mut ids = std::collections::HashSet::new();
    let pairs = packets
        .iter()
        .map(|p| {
            let (from, text, id) = chat(p);
            ids.insert(id);
            (from, text)
        })
        .collect();
    (pairs, ids.len() == packets.len())
}

/// Alice is away while bob and carol send 12 broadcasts and 6 whispers to her, more than her
/// replay log holds; her resume gets every one, once, in order, and `OK`. A second cut and a
/// resume from a position in the middle of what history supplied gets exactly the rest.
pub(crate) async fn a_resume_beyond_the_log_is_filled_from_history(
    backend: crate::storage::Backend,
    durability: suda_server::config::Durability,
) {
    let server = TestServer::start_with(|c| {
        backend.apply(c);
        c.durability = durability;
        c.replay_log_messages = SMALL_LOG;
    })
    .await;
    let (mut alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "Bob").await;
    let mut carol = Raw::login(server.addr, "carol").await;
    bob.broadcast("seen").await;
    let seen = chat(&alice.recv().await).2;
    drop(alice);
    server.until("alice detached", |s| s.detached() == 1).await;

    // Each message reaches alice's session before the next is sent, so `expected` is the
    // order her session received them in.
    let mut expected = Vec::new();
    let mut deliveries = 2; // "seen", to alice and carol
    for i in 0..6 {
        for (sender, name) in [(&mut bob, "Bob"), (&mut carol, "carol")] {
            let text = format!("{name} {i}");
            acknowledged(
                sender,
                &Packet::BroadcastReq {
                    text: text.as_str().into(),
                },
            )
            .await;
            expected.push((name.to_owned(), text));
            deliveries += 2; // alice and the other sender
            server
                .until("delivered", |s| s.snapshot().deliveries == deliveries)
                .await;
        }
        let text = format!("psst {i}");
        let whisper = Packet::WhisperReq {
            to: "alice".into(),
            text: text.as_str().into(),
        };
        acknowledged(&mut bob, &whisper).await;
        expected.push(("Bob".to_owned(), text));
        deliveries += 1;
        server
            .until("delivered", |s| s.snapshot().deliveries == deliveries)
            .await;
    }

    let (mut alice, result, token, replayed) = resume(server.addr, "alice", &token, seen).await;
    assert_eq!(result, ResultCode::OK, "history fills what the log evicted");
    let (got, unique) = senders_and_texts(&replayed);
    assert!(unique, "no message twice");
    assert_eq!(got, expected, "every message, in order");
    assert_eq!(
        replayed
            .iter()
            .filter(|p| matches!(p, Packet::WhisperNotify { .. }))
            .count(),
        6,
        "whispers come back as whispers"
    );
    assert_eq!(server.stats.snapshot().resume_gaps, 0);

    // Live again, after the replay.
    acknowledged(
        &mut bob,
        &Packet::BroadcastReq {
            text: "live".into(),
        },
    )
    .await;
    let live = alice.recv().await;
    assert_eq!(chat(&live).1, "live");
    drop(alice);
    server
        .until("alice detached again", |s| s.detached() == 1)
        .await;

    // From the third message history supplied: the rest of them, then the log's.
    let position = chat(&replayed[2]).2;
    let (_alice, result, _, again) = resume(server.addr, "alice", &token, position).await;
    assert_eq!(result, ResultCode::OK);
    let (got, unique) = senders_and_texts(&again);
    assert!(unique);
    let mut rest = expected[3..].to_vec();
    rest.push(("Bob".to_owned(), "live".to_owned()));
    assert_eq!(got, rest);
    assert_eq!(server.stats.snapshot().resume_gaps, 0);
}

/// With history, a gap larger than `max_replay` is still a gap: the newest of the log, and
/// `RESUMED_WITH_GAP`.
pub(crate) async fn history_does_not_fill_more_than_the_replay_limit(
    backend: crate::storage::Backend,
) {
    let server = TestServer::start_with(|c| {
        backend.apply(c);
        c.replay_log_messages = SMALL_LOG;
        c.max_replay = 10;
    })
    .await;
    let (alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    drop(alice);
    server.until("detached", |s| s.detached() == 1).await;
    for i in 0..25 {
        bob.broadcast(&format!("m{i}")).await;
    }
    server
        .until("delivered", |s| s.snapshot().deliveries == 25)
        .await;
    let (_alice, result, _, replayed) = resume(server.addr, "alice", &token, 0).await;
    assert_eq!(result, ResultCode::RESUMED_WITH_GAP);
    assert_eq!(
        texts(&replayed),
        (20..25).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "the newest the log holds"
    );
    assert_eq!(server.stats.snapshot().resume_gaps, 1);

    // Exactly `max_replay` missed fits, from history (alice, online, gets them live).
    let (alice, token) = resumable(server.addr, "carol").await;
    drop(alice);
    server.until("detached", |s| s.detached() == 1).await;
    for i in 0..10 {
        bob.broadcast(&format!("n{i}")).await;
    }
    server
        .until("delivered", |s| s.snapshot().deliveries == 25 + 10 + 10)
        .await;
    let (_, result, _, replayed) = resume(server.addr, "carol", &token, 0).await;
    assert_eq!(result, ResultCode::OK);
    assert_eq!(
        texts(&replayed),
        (0..10).map(|i| format!("n{i}")).collect::<Vec<_>>()
    );
}

/// Five senders streaming, the receiver cut again and again, a replay log of 3: resumes are
/// filled from history while messages keep arriving, and nothing is lost or doubled. Many
/// arrive during each history fetch (the log holds them meanwhile), so `max_replay` is raised
/// above the total (a longer replay is rightly a gap), and the senders pause more often so
/// that the stream outlasts enough cuts.
pub(crate) async fn repeated_cuts_with_a_small_log_are_filled_from_history(
    backend: crate::storage::Backend,
) {
    let server = TestServer::start_with(|c| {
        backend.apply(c);
        c.durability = suda_server::config::Durability::Batched;
        c.replay_log_messages = 3;
        c.max_replay = 5000;
    })
    .await;
    stream_through_cuts(&server, 5, 10).await;
    assert_eq!(server.stats.snapshot().resume_gaps, 0);
}

#[tokio::test]
async fn without_storage_a_resume_beyond_the_log_is_a_gap() {
    let server = TestServer::start_with(|c| c.replay_log_messages = SMALL_LOG).await;
    let (mut alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    bob.broadcast("seen").await;
    let seen = chat(&alice.recv().await).2;
    drop(alice);
    server.until("detached", |s| s.detached() == 1).await;
    for i in 0..12 {
        bob.broadcast(&format!("m{i}")).await;
    }
    server
        .until("delivered", |s| s.snapshot().deliveries == 13)
        .await;
    let (_, result, _, replayed) = resume(server.addr, "alice", &token, seen).await;
    assert_eq!(result, ResultCode::RESUMED_WITH_GAP);
    assert_eq!(
        texts(&replayed),
        (7..12).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "the newest the log holds"
    );
}

/// A detached member keeps its rooms: their messages and events are replayed on resume, from
/// the log, and (with storage) from history where the log no longer reaches. `room_log` is the
/// replay log's size.
async fn room_traffic_is_replayed(server: TestServer, messages: usize) {
    let (mut alice, token) = resumable(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    assert_eq!(bob.create_room("Den", 0, "", "").await, ResultCode::OK);
    assert_eq!(alice.join_room("den", "").await.0, ResultCode::OK);
    let (_, seen) = bob.room_chat("den", "seen").await;
    assert_eq!(alice.room_message().await.2, "seen");
    drop(alice);
    server.until("alice detached", |s| s.detached() == 1).await;
    // Still a member while detached.
    let members = Packet::RoomMembersReq {
        room: "den".into(),
        after: "".into(),
        limit: 10,
    };
    assert_eq!(bob.list(&members).await.1.len(), 2);
    let mut expected = Vec::new();
    for i in 0..messages {
        let text = format!("m{i}");
        assert_eq!(bob.room_chat("den", &text).await.0, ResultCode::OK);
        expected.push(text);
    }
    let (_, result, _, replayed) = resume(server.addr, "alice", &token, seen).await;
    assert_eq!(result, ResultCode::OK);
    let texts: Vec<String> = replayed
        .iter()
        .map(|packet| match packet {
            Packet::RoomChatNotify { room, text, .. } => {
                assert_eq!(room.to_string(), "Den");
                text.to_string()
            }
            other => panic!("expected ROOM_CHAT_NOTIFY, got {other:?}"),
        })
        .collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn a_detached_member_keeps_its_rooms_and_gets_their_traffic_replayed() {
    let server = TestServer::start().await;
    room_traffic_is_replayed(server, 20).await;
}

#[tokio::test]
async fn room_traffic_beyond_the_log_is_filled_from_history() {
    let backend = crate::storage::Backend::sqlite();
    let server = TestServer::start_with(|c| {
        backend.apply(c);
        c.replay_log_messages = SMALL_LOG;
    })
    .await;
    room_traffic_is_replayed(server, 4 * SMALL_LOG).await;
}
