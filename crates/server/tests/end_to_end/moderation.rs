//! Server moderation: operators (only with a proven login), kick, bans by name and address with
//! expiry, mutes, system notices, and the moderation log.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use suda_protocol::{ErrorCode, Packet, ResultCode};

use crate::storage::{Backend, logged_in, register, send_login, start};
use crate::support::*;

const KICK: u8 = 1;
const BAN_USER: u8 = 2;
const BAN_IP: u8 = 3;
const UNBAN_USER: u8 = 4;
const UNBAN_IP: u8 = 5;
const MUTE: u8 = 6;
const UNMUTE: u8 = 7;

const ROOT_PASSWORD: &str = "root password";

/// A server with storage in `backend`, `root` (registered) and `admin` (never registered) as
/// operators, and `root` logged in.
async fn with_operator(backend: &Backend) -> (TestServer, Raw) {
    let server = start(backend, |c| {
        c.operators = vec!["root".into(), "admin".into(), "deputy".into()];
        c.login_backoff = Duration::ZERO;
    })
    .await;
    assert_eq!(
        register(server.addr, "root", ROOT_PASSWORD).await,
        ResultCode::OK
    );
    let root = logged_in(server.addr, "root", ROOT_PASSWORD).await;
    (server, root)
}

/// Expects `ERROR_NOTIFY` with `code` and a reason containing `words`, then the end.
async fn expect_closed_saying(raw: &mut Raw, code: ErrorCode, words: &str) {
    match raw.recv().await {
        Packet::ErrorNotify { code: got, reason } => {
            assert_eq!(got, code);
            assert!(reason.to_string().contains(words), "reason: {reason}");
        }
        other => panic!("expected ERROR_NOTIFY {code}, got {other:?}"),
    }
    assert_eq!(raw.recv_or_eof().await, None, "closed after ERROR_NOTIFY");
}

#[tokio::test]
async fn only_operators_with_a_proven_login_may_moderate() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let mut user = Raw::login(server.addr, "user").await;
    // `admin` is an operator's name, but without an account a guest of that name proves
    // nothing.
    let mut impostor = Raw::login(server.addr, "admin").await;
    for raw in [&mut user, &mut impostor] {
        assert_eq!(
            raw.moderate(KICK, "root", 0, "").await,
            ResultCode::NOT_PERMITTED
        );
        let notice = raw
            .request(&Packet::SystemNoticeReq { text: "hi".into() })
            .await;
        assert!(matches!(
            notice,
            Packet::SystemNoticeRes {
                result: ResultCode::NOT_PERMITTED,
                message_id: 0
            }
        ));
    }
    // Operators do not act on themselves or on each other.
    assert_eq!(
        root.moderate(KICK, "ROOT", 0, "").await,
        ResultCode::NOT_PERMITTED
    );
    assert_eq!(
        root.moderate(BAN_USER, "admin", 0, "").await,
        ResultCode::NOT_PERMITTED
    );
    assert_eq!(
        root.moderate(42, "user", 0, "").await,
        ResultCode::INVALID_REQUEST
    );
    assert_eq!(
        root.moderate(KICK, "nobody", 0, "").await,
        ResultCode::USER_NOT_FOUND
    );
}

#[tokio::test]
async fn a_kick_reaches_a_hibernating_session() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let mut bob = Raw::login(server.addr, "bob").await;
    // Bob (and root) quiet long enough to hibernate: the kick must wake him to close.
    server
        .until("both sessions hibernating", |stats| {
            stats.snapshot().hibernating == 2
        })
        .await;
    assert_eq!(
        root.moderate(KICK, "bob", 0, "asleep").await,
        ResultCode::OK
    );
    expect_closed_saying(&mut bob, ErrorCode::KICKED, "asleep").await;
    server.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_kicked_user_is_told_why_and_may_come_back() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut witness = Raw::login(server.addr, "witness").await;
    assert_eq!(
        root.moderate(KICK, "Bob", 0, "flooding the lobby").await,
        ResultCode::OK
    );
    expect_closed_saying(&mut bob, ErrorCode::KICKED, "flooding the lobby").await;
    witness.ping(1).await;
    let _bob = Raw::login(server.addr, "bob").await;
}

#[tokio::test]
async fn a_banned_user_cannot_log_in_until_the_ban_expires() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let mut bob = Raw::login(server.addr, "bob").await;
    assert_eq!(
        root.moderate(BAN_USER, "bob", 2, "trolling").await,
        ResultCode::OK
    );
    expect_closed_saying(&mut bob, ErrorCode::BANNED, "trolling").await;
    let mut again = Raw::connect(server.addr).await;
    assert_eq!(
        send_login(&mut again, "BOB", "pw").await,
        ResultCode::BANNED
    );
    expect_closed_saying(&mut again, ErrorCode::BANNED, "trolling").await;
    // Others are not affected.
    let _carol = Raw::login(server.addr, "carol").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let _bob = Raw::login(server.addr, "bob").await;
    // Lifting a ban that is gone is an error; a permanent ban lifted early works.
    assert_eq!(
        root.moderate(UNBAN_USER, "bob", 0, "").await,
        ResultCode::USER_NOT_FOUND
    );
    assert_eq!(root.moderate(BAN_USER, "dave", 0, "").await, ResultCode::OK);
    assert_eq!(
        root.moderate(UNBAN_USER, "dave", 0, "").await,
        ResultCode::OK
    );
    let _dave = Raw::login(server.addr, "dave").await;
}

#[tokio::test]
async fn an_address_ban_ends_and_refuses_its_sessions_only() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let banned_ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut victim = Raw::connect_from(server.addr, banned_ip).await;
    assert_eq!(victim.try_login("victim").await, ResultCode::OK);
    let mut neighbour = Raw::login(server.addr, "neighbour").await;
    assert_eq!(
        root.moderate(BAN_IP, "not an address", 0, "").await,
        ResultCode::INVALID_REQUEST
    );
    assert_eq!(
        root.moderate(BAN_IP, "127.0.0.2", 0, "botnet").await,
        ResultCode::OK
    );
    expect_closed_saying(&mut victim, ErrorCode::BANNED, "botnet").await;
    neighbour.ping(1).await;
    let mut retry = Raw::connect_from(server.addr, banned_ip).await;
    assert_eq!(retry.try_login("someone-else").await, ResultCode::BANNED);
    assert_eq!(
        root.moderate(UNBAN_IP, "127.0.0.2", 0, "").await,
        ResultCode::OK
    );
    assert_eq!(
        root.moderate(UNBAN_IP, "127.0.0.2", 0, "").await,
        ResultCode::USER_NOT_FOUND
    );
    let mut back = Raw::connect_from(server.addr, banned_ip).await;
    assert_eq!(back.try_login("victim").await, ResultCode::OK);
}

#[tokio::test]
async fn a_muted_user_cannot_send_until_unmuted_and_is_told() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut carol = Raw::login(server.addr, "carol").await;
    bob.opt_in().await;
    assert_eq!(bob.create_room("r", 0, "", "").await, ResultCode::OK);
    assert_eq!(
        root.moderate(MUTE, "bob", 0, "cool off").await,
        ResultCode::OK
    );
    match bob.recv().await {
        Packet::ModerationNotify {
            action,
            actor,
            expires_at_ms,
            reason,
        } => {
            assert_eq!((action, expires_at_ms), (MUTE, 0));
            assert_eq!(
                (actor.to_string(), reason.to_string()),
                ("root".into(), "cool off".into())
            );
        }
        other => panic!("expected MODERATION_NOTIFY, got {other:?}"),
    }
    assert_eq!(bob.broadcast("x").await.0, ResultCode::MUTED);
    assert_eq!(bob.whisper("carol", "x").await.0, ResultCode::MUTED);
    assert_eq!(bob.room_chat("r", "x").await.0, ResultCode::MUTED);
    carol.ping(1).await;
    assert_eq!(root.moderate(UNMUTE, "bob", 0, "").await, ResultCode::OK);
    assert!(matches!(
        bob.recv().await,
        Packet::ModerationNotify { action: UNMUTE, .. }
    ));
    assert_eq!(bob.broadcast("thanks").await.0, ResultCode::OK);
    assert_eq!(
        root.moderate(UNMUTE, "bob", 0, "").await,
        ResultCode::USER_NOT_FOUND
    );
}

#[tokio::test]
async fn a_system_notice_reaches_everyone_in_their_protocol() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let mut modern = Raw::login(server.addr, "modern").await;
    modern.opt_in().await;
    let mut legacy = Raw::login(server.addr, "legacy").await;
    let packet = Packet::SystemNoticeReq {
        text: "restart at noon".into(),
    };
    let Packet::SystemNoticeRes { result, message_id } = root.request(&packet).await else {
        panic!("expected SYSTEM_NOTICE_RES");
    };
    assert_eq!(result, ResultCode::OK);
    for raw in [&mut root, &mut modern] {
        match raw.recv().await {
            Packet::SystemNoticeNotify {
                message_id: id,
                from,
                text,
                ..
            } => {
                assert_eq!(id, message_id);
                assert_eq!(
                    (from.to_string(), text.to_string()),
                    ("root".into(), "restart at noon".into())
                );
            }
            other => panic!("expected SYSTEM_NOTICE_NOTIFY, got {other:?}"),
        }
    }
    let packet = legacy.recv().await;
    assert!(matches!(packet, Packet::BroadcastNotify { .. }));
    assert_eq!(
        chat(&packet),
        ("*notice*".into(), "restart at noon".into(), message_id)
    );
}

#[tokio::test]
async fn every_action_is_in_the_moderation_log() {
    let backend = Backend::sqlite();
    let (server, mut root) = with_operator(&backend).await;
    let _bob = Raw::login(server.addr, "bob").await;
    assert_eq!(
        root.moderate(KICK, "bob", 0, "first warning").await,
        ResultCode::OK
    );
    assert_eq!(
        root.moderate(BAN_USER, "bob", 60, "second").await,
        ResultCode::OK
    );
    assert_eq!(root.moderate(MUTE, "eve", 0, "noise").await, ResultCode::OK);
    let Backend::Sqlite(dir) = &backend else {
        unreachable!("sqlite")
    };
    let store = suda_store::Store::open(suda_store::StoreConfig::sqlite_in(dir.path()))
        .await
        .expect("open the server's store alongside it");
    let log = store.moderation_log(10).await.expect("log");
    let entries: Vec<(String, String, String, String)> = log
        .into_iter()
        .map(|e| (e.actor, e.action, e.target, e.reason))
        .collect();
    assert_eq!(
        entries,
        [
            ("root".into(), "mute".into(), "eve".into(), "noise".into()),
            ("root".into(), "ban".into(), "bob".into(), "second".into()),
            (
                "root".into(),
                "kick".into(),
                "bob".into(),
                "first warning".into()
            ),
        ]
    );
    drop(server);
}
