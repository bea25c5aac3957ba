//! Rooms, presence and moderation (protocol 1.3) against the scripted fake server: each request
//! leaves as `docs/PROTOCOL.md` §13 says, its answer comes back typed, paged answers collect
//! their items, notifications become events, and logins opt in.

use std::future::Future;
use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode};

use super::config;
use super::fake_server::{Peer, connect};
use crate::{
    ChatMessage, ClientConfig, ClientError, Event, MessageKind, ModerationAction, ModerationKind,
    ModerationNotice, PacketType, Presence, ProtocolError, Role, RoomAction, RoomEvent,
    RoomEventKind, RoomInfo, RoomMessage, RoomOptions, Status, UserEntry,
};

/// Runs `call` while the server expects `request` and answers with `answer` in one write.
async fn exchange<T>(
    peer: &mut Peer,
    call: impl Future<Output = T>,
    request: Packet,
    answer: &[Packet],
) -> T {
    let (outcome, ()) = tokio::join!(call, async {
        assert_eq!(peer.expect().await, request);
        peer.send(answer).await;
    });
    outcome
}

fn room_item(room: &str, flags: u8, members: u32, topic: &str) -> Packet {
    Packet::RoomItem {
        room: room.into(),
        flags,
        members,
        topic: topic.into(),
    }
}

fn user_item(user: &str, status: u8, role: u8, text: &str) -> Packet {
    Packet::UserItem {
        user: user.into(),
        status,
        role,
        text: text.into(),
    }
}

#[tokio::test]
async fn room_requests_go_out_as_documented_and_come_back_typed() {
    let (client, _events, mut peer) = connect(config()).await;

    let options = RoomOptions::default()
        .with_persistent(true)
        .with_invite_only(true)
        .with_password("pw")
        .with_topic("about");
    let created = exchange(
        &mut peer,
        client.create_room("lobby", &options),
        Packet::CreateRoomReq {
            room: "lobby".into(),
            flags: 0b11,
            password: "pw".into(),
            topic: "about".into(),
        },
        &[Packet::CreateRoomRes {
            result: ResultCode::OK,
            room: "lobby".into(),
        }],
    )
    .await;
    assert_eq!(created.expect("created"), "lobby");

    let joined = exchange(
        &mut peer,
        client.join_room("LOBBY", Some("pw")),
        Packet::JoinRoomReq {
            room: "LOBBY".into(),
            password: "pw".into(),
        },
        &[Packet::JoinRoomRes {
            result: ResultCode::OK,
            room: "Lobby".into(),
            flags: 0b101,
            members: 3,
            topic: "hello".into(),
        }],
    )
    .await;
    assert_eq!(
        joined.expect("joined"),
        RoomInfo {
            room: "Lobby".into(),
            persistent: true,
            invite_only: false,
            has_password: true,
            members: 3,
            topic: "hello".into(),
        }
    );

    let id = exchange(
        &mut peer,
        client.room_chat("lobby", "hi"),
        Packet::RoomChatReq {
            room: "lobby".into(),
            text: "hi".into(),
        },
        &[Packet::RoomChatRes {
            result: ResultCode::OK,
            message_id: 77,
        }],
    )
    .await;
    assert_eq!(id.expect("sent"), 77);

    let cases = [
        (
            RoomAction::Kick {
                user: "bob".into(),
                reason: "spam".into(),
            },
            (1, "bob", 0, "spam"),
        ),
        (RoomAction::SetTopic("new".into()), (2, "", 0, "new")),
        (
            RoomAction::Mute {
                user: "bob".into(),
                duration: Some(Duration::from_secs(600)),
                reason: "calm".into(),
            },
            (3, "bob", 600, "calm"),
        ),
        (
            RoomAction::Unmute {
                user: "bob".into(),
                reason: String::new(),
            },
            (4, "bob", 0, ""),
        ),
        (RoomAction::Invite("carol".into()), (5, "carol", 0, "")),
        (RoomAction::Op("carol".into()), (6, "carol", 0, "")),
        (RoomAction::Deop("carol".into()), (7, "carol", 0, "")),
    ];
    for (action, (number, user, duration_s, text)) in cases {
        let done = exchange(
            &mut peer,
            client.room_moderate("lobby", &action),
            Packet::RoomModerateReq {
                room: "lobby".into(),
                action: number,
                user: user.into(),
                duration_s,
                text: text.into(),
            },
            &[Packet::RoomModerateRes {
                result: ResultCode::OK,
            }],
        )
        .await;
        done.expect("done");
    }

    let left = exchange(
        &mut peer,
        client.leave_room("lobby"),
        Packet::LeaveRoomReq {
            room: "lobby".into(),
        },
        &[Packet::LeaveRoomRes {
            result: ResultCode::OK,
            room: "lobby".into(),
        }],
    )
    .await;
    left.expect("left");
}

#[tokio::test]
async fn refusals_are_matchable_and_the_connection_stays_usable() {
    let (client, _events, mut peer) = connect(config()).await;
    let refused = exchange(
        &mut peer,
        client.join_room("vault", None),
        Packet::JoinRoomReq {
            room: "vault".into(),
            password: "".into(),
        },
        // A refusal still carries the layout's fields, zeroed.
        &[Packet::JoinRoomRes {
            result: ResultCode::BAD_ROOM_PASSWORD,
            room: "vault".into(),
            flags: 0,
            members: 0,
            topic: "".into(),
        }],
    )
    .await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Rejected {
                request: PacketType::JoinRoomReq,
                result: ResultCode::BAD_ROOM_PASSWORD
            })
        ),
        "{refused:?}"
    );
    let muted = exchange(
        &mut peer,
        client.room_chat("vault", "hi"),
        Packet::RoomChatReq {
            room: "vault".into(),
            text: "hi".into(),
        },
        &[Packet::RoomChatRes {
            result: ResultCode::MUTED,
            message_id: 0,
        }],
    )
    .await;
    assert!(
        matches!(
            muted,
            Err(ClientError::Rejected {
                request: PacketType::RoomChatReq,
                result: ResultCode::MUTED
            })
        ),
        "{muted:?}"
    );
    let notice = exchange(
        &mut peer,
        client.system_notice("hear ye"),
        Packet::SystemNoticeReq {
            text: "hear ye".into(),
        },
        &[Packet::SystemNoticeRes {
            result: ResultCode::NOT_PERMITTED,
            message_id: 0,
        }],
    )
    .await;
    assert!(matches!(
        notice,
        Err(ClientError::Rejected {
            result: ResultCode::NOT_PERMITTED,
            ..
        })
    ));
}

#[tokio::test]
async fn paged_answers_collect_their_items_even_split_across_reads() {
    let (client, _events, mut peer) = connect(config()).await;

    let (rooms, ()) = tokio::join!(client.list_rooms(Some("a"), 2), async {
        assert_eq!(
            peer.expect().await,
            Packet::ListRoomsReq {
                after: "a".into(),
                limit: 2
            }
        );
        // The header and the items in separate writes: the answer waits for the last item.
        peer.send(&[
            Packet::ListRoomsRes {
                result: ResultCode::OK,
                count: 2,
            },
            room_item("b", 0, 1, ""),
        ])
        .await;
        peer.send(&[room_item("C", 0b110, 9, "topic")]).await;
    });
    let rooms = rooms.expect("rooms");
    assert_eq!(
        rooms.iter().map(|r| r.room.as_str()).collect::<Vec<_>>(),
        ["b", "C"]
    );
    assert!(rooms[1].invite_only && rooms[1].has_password && !rooms[1].persistent);

    let members = exchange(
        &mut peer,
        client.room_members("lobby", None, 100),
        Packet::RoomMembersReq {
            room: "lobby".into(),
            after: "".into(),
            limit: 100,
        },
        &[
            Packet::RoomMembersRes {
                result: ResultCode::OK,
                count: 3,
            },
            user_item("alice", 0, 2, ""),
            user_item("bob", 1, 1, "lunch"),
            user_item("carol", 0, 0, ""),
        ],
    )
    .await;
    assert_eq!(
        members.expect("members"),
        [
            UserEntry {
                user: "alice".into(),
                status: Status::Online,
                role: Role::Owner,
                text: "".into()
            },
            UserEntry {
                user: "bob".into(),
                status: Status::Away,
                role: Role::Operator,
                text: "lunch".into()
            },
            UserEntry {
                user: "carol".into(),
                status: Status::Online,
                role: Role::Member,
                text: "".into()
            },
        ]
    );

    // No items: an empty page, not an error.
    let users = exchange(
        &mut peer,
        client.user_list(Some("zed"), 50),
        Packet::UserListReq {
            after: "zed".into(),
            limit: 50,
        },
        &[Packet::UserListRes {
            result: ResultCode::OK,
            count: 0,
        }],
    )
    .await;
    assert_eq!(users.expect("users"), []);

    let history = exchange(
        &mut peer,
        client.room_history("lobby", Some(90), 10),
        Packet::HistoryReq {
            channel: 2,
            peer: "lobby".into(),
            before_id: 90,
            limit: 10,
        },
        &[
            Packet::HistoryRes {
                result: ResultCode::OK,
                count: 1,
            },
            Packet::HistoryItem {
                message_id: 80,
                sent_at_ms: 1,
                kind: 3,
                from: "bob".into(),
                to: "lobby".into(),
                text: "earlier".into(),
            },
        ],
    )
    .await;
    let history = history.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, MessageKind::Room);
    assert_eq!(history[0].to.as_deref(), Some("lobby"));

    let refused = exchange(
        &mut peer,
        client.list_rooms(None, 0),
        Packet::ListRoomsReq {
            after: "".into(),
            limit: 0,
        },
        &[Packet::ListRoomsRes {
            result: ResultCode::INVALID_REQUEST,
            count: 0,
        }],
    )
    .await;
    assert!(matches!(
        refused,
        Err(ClientError::Rejected {
            request: PacketType::ListRoomsReq,
            result: ResultCode::INVALID_REQUEST
        })
    ));
}

#[tokio::test]
async fn an_item_of_the_wrong_kind_ends_the_connection() {
    let (client, mut events, mut peer) = connect(config()).await;
    let (outcome, ()) = tokio::join!(client.list_rooms(None, 10), async {
        peer.expect().await;
        peer.send(&[
            Packet::ListRoomsRes {
                result: ResultCode::OK,
                count: 1,
            },
            user_item("bob", 0, 0, ""),
        ])
        .await;
    });
    let expected = ProtocolError::UnexpectedResponse {
        expected: PacketType::ListRoomsRes,
        got: PacketType::UserItem,
    };
    assert!(
        matches!(&outcome, Err(ClientError::Protocol(e)) if *e == expected),
        "{outcome:?}"
    );
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::Protocol(_)))
    ));
}

#[tokio::test]
async fn presence_and_moderation_requests_go_out_as_documented() {
    let (client, _events, mut peer) = connect(config()).await;

    let away = exchange(
        &mut peer,
        client.set_status(Some("lunch")),
        Packet::SetStatusReq {
            status: 1,
            text: "lunch".into(),
        },
        &[Packet::SetStatusRes {
            result: ResultCode::OK,
        }],
    )
    .await;
    away.expect("away");
    let back = exchange(
        &mut peer,
        client.set_status(None),
        Packet::SetStatusReq {
            status: 0,
            text: "".into(),
        },
        &[Packet::SetStatusRes {
            result: ResultCode::OK,
        }],
    )
    .await;
    back.expect("back");

    let watched = exchange(
        &mut peer,
        client.watch("bob"),
        Packet::WatchReq {
            watch: 1,
            user: "bob".into(),
        },
        &[Packet::WatchRes {
            result: ResultCode::OK,
            user: "Bob".into(),
            status: 2,
            text: "".into(),
        }],
    )
    .await;
    assert_eq!(
        watched.expect("watching"),
        Presence {
            user: "Bob".into(),
            status: Status::Offline,
            text: "".into()
        }
    );
    let unwatched = exchange(
        &mut peer,
        client.unwatch("bob"),
        Packet::WatchReq {
            watch: 0,
            user: "bob".into(),
        },
        &[Packet::WatchRes {
            result: ResultCode::OK,
            user: "Bob".into(),
            status: 1,
            text: "brb".into(),
        }],
    )
    .await;
    assert_eq!(unwatched.expect("unwatched").status, Status::Away);

    let addr = "192.0.2.7".parse().expect("address");
    let cases = [
        (
            ModerationAction::Kick {
                user: "bob".into(),
                reason: "spam".into(),
            },
            (1, "bob", 0, "spam"),
        ),
        (
            ModerationAction::BanUser {
                user: "bob".into(),
                duration: None,
                reason: "for good".into(),
            },
            (2, "bob", 0, "for good"),
        ),
        (
            ModerationAction::BanIp {
                addr,
                duration: Some(Duration::from_secs(3600)),
                reason: "flood".into(),
            },
            (3, "192.0.2.7", 3600, "flood"),
        ),
        (
            ModerationAction::UnbanUser {
                user: "bob".into(),
                reason: String::new(),
            },
            (4, "bob", 0, ""),
        ),
        (
            ModerationAction::UnbanIp {
                addr,
                reason: String::new(),
            },
            (5, "192.0.2.7", 0, ""),
        ),
        (
            ModerationAction::Mute {
                user: "bob".into(),
                duration: Some(Duration::from_secs(60)),
                reason: "calm".into(),
            },
            (6, "bob", 60, "calm"),
        ),
        (
            ModerationAction::Unmute {
                user: "bob".into(),
                reason: String::new(),
            },
            (7, "bob", 0, ""),
        ),
    ];
    for (action, (number, target, duration_s, reason)) in cases {
        let done = exchange(
            &mut peer,
            client.moderate(&action),
            Packet::ModerateReq {
                action: number,
                target: target.into(),
                duration_s,
                reason: reason.into(),
            },
            &[Packet::ModerateRes {
                result: ResultCode::OK,
            }],
        )
        .await;
        done.expect("done");
    }

    let id = exchange(
        &mut peer,
        client.system_notice("restart at noon"),
        Packet::SystemNoticeReq {
            text: "restart at noon".into(),
        },
        &[Packet::SystemNoticeRes {
            result: ResultCode::OK,
            message_id: 12,
        }],
    )
    .await;
    assert_eq!(id.expect("sent"), 12);
}

#[tokio::test]
async fn notifications_of_1_3_become_events_in_order() {
    let (_client, mut events, mut peer) = connect(config()).await;
    peer.send(&[
        Packet::RoomEventNotify {
            event_id: 1,
            sent_at_ms: 10,
            room: "lobby".into(),
            kind: 1,
            user: "bob".into(),
            actor: "".into(),
            text: "".into(),
        },
        Packet::RoomChatNotify {
            message_id: 2,
            sent_at_ms: 11,
            room: "lobby".into(),
            from: "bob".into(),
            text: "hi room".into(),
        },
        Packet::PresenceNotify {
            user: "carol".into(),
            status: 1,
            text: "lunch".into(),
        },
        Packet::SystemNoticeNotify {
            message_id: 3,
            sent_at_ms: 12,
            from: "root".into(),
            text: "restart".into(),
        },
        Packet::ModerationNotify {
            action: 6,
            actor: "root".into(),
            expires_at_ms: 99,
            reason: "calm down".into(),
        },
        Packet::RoomEventNotify {
            event_id: 4,
            sent_at_ms: 13,
            room: "lobby".into(),
            kind: 3,
            user: "bob".into(),
            actor: "alice".into(),
            text: "spam".into(),
        },
    ])
    .await;

    let mut next = async || events.next().await.expect("an event");
    assert!(matches!(
        next().await,
        Event::RoomEvent(RoomEvent {
            event_id: 1,
            kind: RoomEventKind::Joined,
            actor: None,
            ..
        })
    ));
    match next().await {
        Event::RoomChat(message) => assert_eq!(
            message,
            RoomMessage {
                room: "lobby".into(),
                message: ChatMessage {
                    message_id: 2,
                    sent_at_ms: 11,
                    from: "bob".into(),
                    text: "hi room".into()
                }
            }
        ),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        next().await,
        Event::Presence(Presence { status: Status::Away, ref user, .. }) if user == "carol"
    ));
    assert!(matches!(
        next().await,
        Event::SystemNotice(ChatMessage { message_id: 3, ref from, .. }) if from == "root"
    ));
    match next().await {
        Event::Moderation(notice) => assert_eq!(
            notice,
            ModerationNotice {
                kind: ModerationKind::Muted,
                actor: "root".into(),
                expires_at_ms: Some(99),
                reason: "calm down".into()
            }
        ),
        other => panic!("{other:?}"),
    }
    match next().await {
        Event::RoomEvent(event) => {
            assert_eq!(event.kind, RoomEventKind::Kicked);
            assert_eq!(event.actor.as_deref(), Some("alice"));
            assert_eq!(event.text, "spam");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_1_3_request_from_the_server_breaks_the_protocol() {
    let (_client, mut events, mut peer) = connect(config()).await;
    peer.send(&[Packet::WatchReq {
        watch: 1,
        user: "x".into(),
    }])
    .await;
    assert!(matches!(
        events.next().await,
        Some(Event::Disconnected(ClientError::Protocol(
            ProtocolError::UnexpectedPacket(PacketType::WatchReq)
        )))
    ));
}

/// The server's side of a login, answered with `OK`.
async fn accept_login(peer: &mut Peer) {
    assert!(matches!(peer.expect().await, Packet::LoginReq { .. }));
    peer.send(&[Packet::LoginRes {
        result: ResultCode::OK,
        session_id: 1,
    }])
    .await;
}

#[tokio::test]
async fn every_login_opts_in_by_default_and_a_refused_opt_in_harms_nothing() {
    let config = ClientConfig::default().with_keepalive(None);
    let (client, _events, mut peer) = connect(config.clone()).await;
    let (session, ()) = tokio::join!(client.login("alice", "pw"), accept_login(&mut peer));
    session.expect("logged in");
    assert_eq!(
        peer.expect().await,
        Packet::SetStatusReq {
            status: 0,
            text: "".into()
        }
    );
    // Nobody waits for it: a refusal is only logged.
    peer.send(&[Packet::SetStatusRes {
        result: ResultCode::RATE_LIMITED,
    }])
    .await;
    let (pong, ()) = tokio::join!(client.ping(), async {
        let Packet::Ping { nonce } = peer.expect().await else {
            panic!("expected PING");
        };
        peer.send(&[Packet::Pong { nonce }]).await;
    });
    pong.expect("still connected");

    // With reconnecting on, the opt-in goes first, then the token request.
    let reconnecting = config.with_reconnect(crate::ReconnectPolicy::new());
    let (client, _events, mut peer) = connect(reconnecting).await;
    let (session, ()) = tokio::join!(client.login("alice", "pw"), accept_login(&mut peer));
    session.expect("logged in");
    assert!(matches!(
        peer.expect().await,
        Packet::SetStatusReq { status: 0, .. }
    ));
    assert_eq!(peer.expect().await, Packet::SessionTokenReq);

    // A refused login opts nothing in.
    let (client, _events, mut peer) = connect(ClientConfig::default().with_keepalive(None)).await;
    let (refused, ()) = tokio::join!(client.login("alice", "pw"), async {
        peer.expect().await;
        peer.send(&[Packet::LoginRes {
            result: ResultCode::BANNED,
            session_id: 0,
        }])
        .await;
    });
    assert!(matches!(
        refused,
        Err(ClientError::Rejected {
            result: ResultCode::BANNED,
            ..
        })
    ));
    let (pong, ()) = tokio::join!(client.ping(), async {
        assert!(
            matches!(peer.expect().await, Packet::Ping { .. }),
            "no opt-in"
        );
        peer.send(&[Packet::ErrorNotify {
            code: ErrorCode::BANNED,
            reason: "go away".into(),
        }])
        .await;
    });
    assert!(matches!(
        pong,
        Err(ClientError::ServerClosed {
            code: ErrorCode::BANNED,
            ..
        })
    ));
}
