//! Rooms: membership, room chat and its reach, member events in order, names, limits, paging,
//! passwords and invitations, and the owner's and operators' moderation.

use std::collections::HashMap;

use suda_protocol::{Packet, ResultCode};

use crate::support::*;

const JOINED: u8 = 1;
const LEFT: u8 = 2;
const KICKED: u8 = 3;
const TOPIC: u8 = 4;
const MUTED: u8 = 5;
const OP_GRANTED: u8 = 7;
const INVITED: u8 = 9;

const KICK: u8 = 1;
const SET_TOPIC: u8 = 2;
const MUTE: u8 = 3;
const UNMUTE: u8 = 4;
const INVITE: u8 = 5;
const GRANT_OP: u8 = 6;

const INVITE_ONLY: u8 = 2;
const HAS_PASSWORD: u8 = 4;

#[tokio::test]
async fn room_messages_reach_the_other_members_only() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut carol = Raw::login(server.addr, "carol").await;
    assert_eq!(
        alice.create_room("Lobby", 0, "", "welcome").await,
        ResultCode::OK
    );
    let (result, _, members, topic) = bob.join_room("LOBBY", "").await;
    assert_eq!(
        (result, members, topic.as_str()),
        (ResultCode::OK, 2, "welcome")
    );
    assert_eq!(
        alice.room_event().await,
        (JOINED, "bob".into(), String::new(), String::new())
    );

    let (result, id) = alice.room_chat("lobby", "hello room").await;
    assert_eq!(result, ResultCode::OK);
    assert_ne!(id, 0);
    match bob.recv().await {
        Packet::RoomChatNotify {
            message_id,
            room,
            from,
            text,
            ..
        } => {
            assert_eq!(message_id, id);
            assert_eq!((&*room.to_string(), &*from.to_string()), ("Lobby", "alice"));
            assert_eq!(text.to_string(), "hello room");
        }
        other => panic!("expected ROOM_CHAT_NOTIFY, got {other:?}"),
    }
    // Neither the sender nor a non-member gets it: their next packet is the PONG.
    alice.ping(1).await;
    carol.ping(2).await;

    // A non-member cannot speak in the room.
    assert_eq!(
        carol.room_chat("lobby", "let me in").await.0,
        ResultCode::NOT_IN_ROOM
    );
    assert_eq!(
        carol.room_chat("nowhere", "x").await.0,
        ResultCode::ROOM_NOT_FOUND
    );

    // After leaving, nothing of the room arrives any more.
    assert_eq!(bob.leave_room("lobby").await, ResultCode::OK);
    assert_eq!(alice.room_event().await.0, LEFT);
    alice.room_chat("lobby", "anyone?").await;
    bob.ping(3).await;
    assert_eq!(bob.leave_room("lobby").await, ResultCode::NOT_IN_ROOM);
}

#[tokio::test]
async fn members_see_joins_messages_and_leaves_of_each_user_in_order() {
    let server = TestServer::start_with(|c| c.workers = 4).await;
    let mut observer = Raw::login(server.addr, "observer").await;
    assert_eq!(
        observer.create_room("hall", 0, "", "").await,
        ResultCode::OK
    );
    let addr = server.addr;
    // Many users, landing on different workers, each join, talk and leave concurrently.
    let users: Vec<_> = (0..12)
        .map(|i| {
            tokio::spawn(async move {
                let name = format!("user{i}");
                let mut raw = Raw::login(addr, &name).await;
                for round in 0..3 {
                    assert_eq!(raw.join_room("hall", "").await.0, ResultCode::OK);
                    for n in 0..5 {
                        let text = format!("{round}.{n}");
                        assert_eq!(raw.room_chat("hall", &text).await.0, ResultCode::OK);
                    }
                    // Pipelined: the leave right behind the last message of the round.
                    raw.send(&Packet::RoomChatReq {
                        room: "hall".into(),
                        text: format!("{round}.last").into(),
                    })
                    .await;
                    raw.send(&Packet::LeaveRoomReq {
                        room: "hall".into(),
                    })
                    .await;
                    loop {
                        if let Packet::LeaveRoomRes { result, .. } = raw.recv().await {
                            assert_eq!(result, ResultCode::OK);
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // Per user, what the observer must see: joined, 6 messages, left; three times.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let expected_total = 12 * 3 * (1 + 6 + 1);
    for _ in 0..expected_total {
        match observer.recv().await {
            Packet::RoomEventNotify { kind, user, .. } => {
                let what = if kind == JOINED { "joined" } else { "left" };
                assert!(kind == JOINED || kind == LEFT, "kind {kind}");
                seen.entry(user.to_string()).or_default().push(what.into());
            }
            Packet::RoomChatNotify { from, text, .. } => {
                seen.entry(from.to_string())
                    .or_default()
                    .push(text.to_string());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for user in users {
        user.await.expect("user task");
    }
    for (user, events) in seen {
        let mut expected = Vec::new();
        for round in 0..3 {
            expected.push("joined".to_string());
            for n in 0..5 {
                expected.push(format!("{round}.{n}"));
            }
            expected.push(format!("{round}.last"));
            expected.push("left".to_string());
        }
        assert_eq!(events, expected, "what the observer saw of {user}");
    }
    observer.ping(1).await;
}

#[tokio::test]
async fn room_names_follow_the_rules_and_compare_case_insensitively() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    for bad in ["", "has space", "semi;colon", &"x".repeat(33), "ümlaut"] {
        assert_eq!(
            alice.create_room(bad, 0, "", "").await,
            ResultCode::INVALID_ROOM_NAME,
            "{bad:?}"
        );
    }
    assert_eq!(
        alice.create_room("Dev.Team-1_x", 0, "", "").await,
        ResultCode::OK
    );
    let mut bob = Raw::login(server.addr, "bob").await;
    assert_eq!(
        bob.create_room("dev.team-1_X", 0, "", "").await,
        ResultCode::ROOM_EXISTS
    );
    assert_eq!(bob.join_room("DEV.TEAM-1_X", "").await.0, ResultCode::OK);
    assert_eq!(
        bob.join_room("dev.team-1_x", "").await.0,
        ResultCode::ALREADY_IN_ROOM
    );
    assert_eq!(
        bob.join_room("missing", "").await.0,
        ResultCode::ROOM_NOT_FOUND
    );
    assert_eq!(
        alice.create_room("t", 0x80, "", "").await,
        ResultCode::INVALID_REQUEST
    );
    assert_eq!(
        alice.create_room("t", 0, "", "bad\u{1b}[2Jtopic").await,
        ResultCode::INVALID_MESSAGE
    );
    // Before login, rooms are out of reach.
    let mut anonymous = Raw::connect(server.addr).await;
    assert_eq!(
        anonymous.join_room("dev.team-1_x", "").await.0,
        ResultCode::NOT_AUTHENTICATED
    );
}

#[tokio::test]
async fn a_temporary_room_is_gone_with_its_last_member() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    assert_eq!(alice.create_room("brief", 0, "", "").await, ResultCode::OK);
    assert_eq!(alice.leave_room("brief").await, ResultCode::OK);
    assert_eq!(
        bob.join_room("brief", "").await.0,
        ResultCode::ROOM_NOT_FOUND
    );
    // The name is free for a new room, which has nothing of the old one.
    assert_eq!(bob.create_room("brief", 0, "", "new").await, ResultCode::OK);
    // A member that disconnects leaves too; the others hear it quit.
    let mut carol = Raw::login(server.addr, "carol").await;
    assert_eq!(carol.join_room("brief", "").await.0, ResultCode::OK);
    assert_eq!(bob.room_event().await.0, JOINED);
    drop(carol);
    assert_eq!(
        bob.room_event().await,
        (LEFT, "carol".into(), String::new(), "quit".into())
    );
    drop(bob);
    let list = Packet::ListRoomsReq {
        after: "".into(),
        limit: 100,
    };
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (result, items) = alice.list(&list).await;
        assert_eq!(result, ResultCode::OK);
        if items.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the empty room never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn passwords_and_invitations_guard_the_door() {
    let server = TestServer::start().await;
    let mut owner = Raw::login(server.addr, "owner").await;
    let mut guest = Raw::login(server.addr, "guest").await;
    assert_eq!(
        owner.create_room("vault", 0, "s3cret", "").await,
        ResultCode::OK
    );
    assert_eq!(
        guest.join_room("vault", "wrong").await.0,
        ResultCode::BAD_ROOM_PASSWORD
    );
    let (result, flags, members, _) = guest.join_room("vault", "s3cret").await;
    assert_eq!(
        (result, flags & HAS_PASSWORD, members),
        (ResultCode::OK, HAS_PASSWORD, 2)
    );
    assert_eq!(owner.room_event().await.0, JOINED);

    assert_eq!(
        owner.create_room("club", INVITE_ONLY, "", "").await,
        ResultCode::OK
    );
    assert_eq!(guest.join_room("club", "").await.0, ResultCode::INVITE_ONLY);
    // Outsiders do not see who is in a private room.
    let members = Packet::RoomMembersReq {
        room: "club".into(),
        after: "".into(),
        limit: 10,
    };
    assert_eq!(guest.list(&members).await.0, ResultCode::NOT_PERMITTED);
    assert_eq!(
        guest.room_moderate("club", INVITE, "guest", 0, "").await,
        ResultCode::NOT_PERMITTED,
        "a non-member cannot invite themself"
    );
    assert_eq!(
        owner
            .room_moderate("club", INVITE, "GUEST", 0, "come in")
            .await,
        ResultCode::OK
    );
    // The guest speaks protocol 1.3 (it sent room requests), so it hears of the invitation.
    assert_eq!(
        guest.room_event().await,
        (INVITED, "GUEST".into(), "owner".into(), "come in".into())
    );
    let (result, flags, _, _) = guest.join_room("club", "").await;
    assert_eq!((result, flags & INVITE_ONLY), (ResultCode::OK, INVITE_ONLY));
    let (result, items) = guest.list(&members).await;
    assert_eq!(result, ResultCode::OK);
    let roles: Vec<(String, u8)> = items
        .iter()
        .map(|item| match item {
            Packet::UserItem { user, role, .. } => (user.to_string(), *role),
            other => panic!("expected USER_ITEM, got {other:?}"),
        })
        .collect();
    assert_eq!(roles, [("guest".to_string(), 0), ("owner".to_string(), 2)]);
}

#[tokio::test]
async fn room_limits_are_enforced() {
    let server = TestServer::start_with(|c| {
        c.max_rooms_per_user = 2;
        c.max_room_members = 2;
        c.max_rooms = 3;
    })
    .await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut carol = Raw::login(server.addr, "carol").await;
    assert_eq!(alice.create_room("a1", 0, "", "").await, ResultCode::OK);
    assert_eq!(alice.create_room("a2", 0, "", "").await, ResultCode::OK);
    assert_eq!(
        alice.create_room("a3", 0, "", "").await,
        ResultCode::TOO_MANY_ROOMS
    );
    assert_eq!(bob.create_room("b1", 0, "", "").await, ResultCode::OK);
    assert_eq!(
        carol.create_room("c1", 0, "", "").await,
        ResultCode::TOO_MANY_ROOMS,
        "server-wide"
    );
    assert_eq!(bob.join_room("a1", "").await.0, ResultCode::OK);
    assert_eq!(bob.join_room("a2", "").await.0, ResultCode::TOO_MANY_ROOMS);
    assert_eq!(carol.join_room("a1", "").await.0, ResultCode::ROOM_FULL);
}

#[tokio::test]
async fn room_lists_and_member_lists_come_in_pages() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    for (name, topic) in [
        ("echo", "e"),
        ("Alpha", "a"),
        ("delta", "d"),
        ("bravo", "b"),
        ("charlie", "c"),
    ] {
        assert_eq!(alice.create_room(name, 0, "", topic).await, ResultCode::OK);
    }
    let page = |after: &str, limit| Packet::ListRoomsReq {
        after: after.into(),
        limit,
    };
    let names = |items: Vec<Packet>| -> Vec<String> {
        items
            .into_iter()
            .map(|item| match item {
                Packet::RoomItem {
                    room,
                    members,
                    topic,
                    ..
                } => {
                    assert_eq!(members, 1);
                    assert_eq!(topic.to_string(), room.to_string()[..1].to_lowercase());
                    room.to_string()
                }
                other => panic!("expected ROOM_ITEM, got {other:?}"),
            })
            .collect()
    };
    let (result, items) = alice.list(&page("", 2)).await;
    assert_eq!(result, ResultCode::OK);
    assert_eq!(names(items), ["Alpha", "bravo"]);
    assert_eq!(
        names(alice.list(&page("bravo", 2)).await.1),
        ["charlie", "delta"]
    );
    assert_eq!(names(alice.list(&page("delta", 2)).await.1), ["echo"]);
    assert_eq!(
        alice.list(&page("", 0)).await.0,
        ResultCode::INVALID_REQUEST
    );

    let mut others = Vec::new();
    for name in ["zed", "bob", "Yan", "carl"] {
        let mut raw = Raw::login(server.addr, name).await;
        assert_eq!(raw.join_room("alpha", "").await.0, ResultCode::OK);
        others.push(raw);
    }
    let members = |after: &str| Packet::RoomMembersReq {
        room: "alpha".into(),
        after: after.into(),
        limit: 3,
    };
    let users = |items: Vec<Packet>| -> Vec<String> {
        items
            .into_iter()
            .map(|item| match item {
                Packet::UserItem { user, .. } => user.to_string(),
                other => panic!("expected USER_ITEM, got {other:?}"),
            })
            .collect()
    };
    assert_eq!(
        users(others[0].list(&members("")).await.1),
        ["alice", "bob", "carl"]
    );
    assert_eq!(
        users(others[0].list(&members("carl")).await.1),
        ["Yan", "zed"]
    );
}

#[tokio::test]
async fn owners_and_operators_moderate_their_room() {
    let server = TestServer::start().await;
    let mut owner = Raw::login(server.addr, "owner").await;
    let mut helper = Raw::login(server.addr, "helper").await;
    let mut troll = Raw::login(server.addr, "troll").await;
    let mut bystander = Raw::login(server.addr, "bystander").await;
    assert_eq!(owner.create_room("den", 0, "", "").await, ResultCode::OK);
    // One at a time, each join heard by all before the next: a join event still travelling to
    // another worker would reach a member who joined there meanwhile.
    assert_eq!(helper.join_room("den", "").await.0, ResultCode::OK);
    assert_eq!(owner.room_event().await.1, "helper");
    assert_eq!(troll.join_room("den", "").await.0, ResultCode::OK);
    for raw in [&mut owner, &mut helper] {
        assert_eq!(raw.room_event().await.1, "troll");
    }
    assert_eq!(bystander.join_room("den", "").await.0, ResultCode::OK);
    for raw in [&mut owner, &mut helper, &mut troll] {
        assert_eq!(raw.room_event().await.1, "bystander");
    }

    // A plain member may not moderate.
    assert_eq!(
        troll.room_moderate("den", KICK, "helper", 0, "").await,
        ResultCode::NOT_PERMITTED
    );
    assert_eq!(
        troll.room_moderate("den", SET_TOPIC, "", 0, "mine").await,
        ResultCode::NOT_PERMITTED
    );
    // The owner makes helper an operator; everyone else hears it.
    assert_eq!(
        owner.room_moderate("den", GRANT_OP, "helper", 0, "").await,
        ResultCode::OK
    );
    for raw in [&mut helper, &mut troll, &mut bystander] {
        assert_eq!(raw.room_event().await.0, OP_GRANTED);
    }
    // The operator sets the topic.
    assert_eq!(
        helper
            .room_moderate("den", SET_TOPIC, "", 0, "be nice")
            .await,
        ResultCode::OK
    );
    for raw in [&mut owner, &mut troll, &mut bystander] {
        assert_eq!(
            raw.room_event().await,
            (TOPIC, "helper".into(), String::new(), "be nice".into())
        );
    }
    // Mute: the troll's room messages are refused until unmuted.
    assert_eq!(
        helper
            .room_moderate("den", MUTE, "troll", 0, "calm down")
            .await,
        ResultCode::OK
    );
    for raw in [&mut owner, &mut troll, &mut bystander] {
        assert_eq!(
            raw.room_event().await,
            (MUTED, "troll".into(), "helper".into(), "calm down".into())
        );
    }
    assert_eq!(troll.room_chat("den", "!!!").await.0, ResultCode::MUTED);
    assert_eq!(
        helper.room_moderate("den", UNMUTE, "troll", 0, "").await,
        ResultCode::OK
    );
    for raw in [&mut owner, &mut troll, &mut bystander] {
        raw.room_event().await;
    }
    assert_eq!(troll.room_chat("den", "sorry").await.0, ResultCode::OK);
    for raw in [&mut owner, &mut helper, &mut bystander] {
        assert_eq!(raw.room_message().await.2, "sorry");
    }
    // An operator cannot act on the owner, nor on another operator.
    assert_eq!(
        helper.room_moderate("den", KICK, "owner", 0, "").await,
        ResultCode::NOT_PERMITTED
    );
    // Kick: the troll hears why, and nothing of the room after that.
    assert_eq!(
        helper.room_moderate("den", KICK, "troll", 0, "spam").await,
        ResultCode::OK
    );
    let kicked = (
        KICKED,
        "troll".to_string(),
        "helper".to_string(),
        "spam".to_string(),
    );
    assert_eq!(troll.room_event().await, kicked);
    for raw in [&mut owner, &mut bystander] {
        assert_eq!(raw.room_event().await, kicked);
    }
    assert_eq!(
        bystander.room_chat("den", "bye troll").await.0,
        ResultCode::OK
    );
    assert_eq!(owner.room_message().await.2, "bye troll");
    troll.ping(1).await;
    assert_eq!(
        troll.room_chat("den", "back?").await.0,
        ResultCode::NOT_IN_ROOM
    );
    assert_eq!(
        helper.room_moderate("den", KICK, "troll", 0, "").await,
        ResultCode::NOT_IN_ROOM
    );
    assert_eq!(
        helper.room_moderate("den", 99, "troll", 0, "").await,
        ResultCode::INVALID_REQUEST
    );
}

#[tokio::test]
async fn a_room_with_1000_members_fans_out_to_all_of_them() {
    let server = TestServer::start().await;
    let mut speaker = Raw::login(server.addr, "speaker").await;
    assert_eq!(
        speaker.create_room("arena", 0, "", "").await,
        ResultCode::OK
    );
    let mut members = Vec::new();
    for i in 0..999 {
        let mut raw = Raw::login(server.addr, &format!("m{i}")).await;
        raw.send(&Packet::JoinRoomReq {
            room: "arena".into(),
            password: "".into(),
        })
        .await;
        members.push(raw);
    }
    // Wait until every member is in (each saw its own JOIN_ROOM_RES).
    for raw in &mut members {
        loop {
            match raw.recv().await {
                Packet::JoinRoomRes { result, .. } => {
                    assert_eq!(result, ResultCode::OK);
                    break;
                }
                Packet::RoomEventNotify { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let (result, id) = speaker.room_chat("arena", "to all thousand").await;
    assert_eq!(result, ResultCode::OK);
    let mut received = 0;
    for raw in &mut members {
        loop {
            match raw.recv().await {
                Packet::RoomChatNotify { message_id, .. } => {
                    assert_eq!(message_id, id);
                    received += 1;
                    break;
                }
                Packet::RoomEventNotify { kind, .. } => assert_eq!(kind, JOINED),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(received, 999);
}

#[tokio::test]
async fn older_clients_never_receive_packets_of_protocol_1_3() {
    let server = TestServer::start().await;
    let mut modern = Raw::login(server.addr, "modern").await;
    let mut legacy = Raw::login(server.addr, "legacy").await;
    assert_eq!(modern.create_room("r", 0, "", "").await, ResultCode::OK);
    // An invitation to a client that never spoke 1.3 is kept, but not sent.
    assert_eq!(
        modern.room_moderate("r", INVITE, "legacy", 0, "").await,
        ResultCode::OK
    );
    legacy.ping(1).await;
    // Chat as usual still works both ways.
    modern.broadcast("still here").await;
    assert!(matches!(
        legacy.recv().await,
        Packet::BroadcastNotify { .. }
    ));
}

#[tokio::test]
async fn a_room_keeps_a_bounded_number_of_invitations() {
    let server = TestServer::start().await;
    let mut owner = Raw::login(server.addr, "owner").await;
    assert_eq!(
        owner.create_room("big", INVITE_ONLY, "", "").await,
        ResultCode::OK
    );
    // Pipelined, then answered in order.
    for i in 0..1000 {
        owner
            .send(&Packet::RoomModerateReq {
                room: "big".into(),
                action: INVITE,
                user: format!("guest{i}").into(),
                duration_s: 0,
                text: "".into(),
            })
            .await;
    }
    for _ in 0..1000 {
        assert!(matches!(
            owner.recv().await,
            Packet::RoomModerateRes {
                result: ResultCode::OK
            }
        ));
    }
    assert_eq!(
        owner.room_moderate("big", INVITE, "one-more", 0, "").await,
        ResultCode::NOT_AVAILABLE
    );
    assert_eq!(
        owner.room_moderate("big", INVITE, "guest7", 0, "").await,
        ResultCode::OK,
        "inviting again is not growing"
    );
    assert_eq!(
        owner.room_moderate("big", MUTE, "noisy", 0, "").await,
        ResultCode::OK
    );
    assert_eq!(
        owner.room_moderate("big", UNMUTE, "noisy", 0, "").await,
        ResultCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_room_limit_holds_under_concurrent_creation() {
    let server = TestServer::start_with(|c| {
        c.workers = 4;
        c.max_rooms = 3;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..24 {
        clients.push(Raw::login(server.addr, &format!("c{i}")).await);
    }
    // Every creation on the wire before any answer is read, across four workers.
    for (i, raw) in clients.iter_mut().enumerate() {
        raw.send(&Packet::CreateRoomReq {
            room: format!("r{i}").into(),
            flags: 0,
            password: "".into(),
            topic: "".into(),
        })
        .await;
    }
    let mut creators = Vec::new();
    for (i, raw) in clients.iter_mut().enumerate() {
        match raw.recv().await {
            Packet::CreateRoomRes {
                result: ResultCode::OK,
                ..
            } => creators.push(i),
            Packet::CreateRoomRes {
                result: ResultCode::TOO_MANY_ROOMS,
                ..
            } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(creators.len(), 3, "created by {creators:?}");
    // A room that closes frees its place.
    let first = creators[0];
    assert_eq!(
        clients[first].leave_room(&format!("r{first}")).await,
        ResultCode::OK
    );
    let other = (0..clients.len())
        .find(|i| !creators.contains(i))
        .expect("one refused");
    assert_eq!(
        clients[other].create_room("again", 0, "", "").await,
        ResultCode::OK
    );
    assert_eq!(
        clients[other].create_room("one-too-many", 0, "", "").await,
        ResultCode::TOO_MANY_ROOMS
    );
}
