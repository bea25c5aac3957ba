//! Accounts, history, offline whispers and durability, on both storage backends: the same tests
//! run on an SQLite file in a temp dir and on a throwaway PostgreSQL server.

use suda_protocol::{Packet, ResultCode};
use suda_server::Config;
use suda_server::config::{AuthMode, OfflineWhispers, StoreKind};
use suda_store::testing::{TempPostgres, skip_postgres};

use crate::support::*;

/// Where a test's server keeps its data; the same place for a restarted server.
pub(crate) enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    pub(crate) fn sqlite() -> Self {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh database on the shared throwaway server; `None` only when
    /// `SUDA_SKIP_POSTGRES=1` says so explicitly (never silently).
    pub(crate) async fn postgres() -> Option<Self> {
        if skip_postgres() {
            eprintln!("SUDA_SKIP_POSTGRES=1: PostgreSQL test skipped");
            return None;
        }
        let server = TempPostgres::shared().unwrap_or_else(|err| {
            panic!("PostgreSQL unavailable ({err}); run scripts/postgres.sh")
        });
        Some(Backend::Postgres(
            server.create_database().await.expect("create database"),
        ))
    }

    pub(crate) fn apply(&self, config: &mut Config) {
        match self {
            Backend::Sqlite(dir) => {
                config.store = StoreKind::Sqlite;
                config.data_dir = dir.path().to_owned();
            }
            Backend::Postgres(url) => {
                config.store = StoreKind::Postgres;
                config.database_url = Some(url.clone());
            }
        }
    }
}

/// Runs an async test body once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = super::Backend::postgres().await {
                        super::$name(backend).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    registered_accounts_log_in_with_their_password_only,
    open_mode_protects_registered_names,
    concurrent_registrations_of_one_name_have_one_winner,
    history_is_stored_paged_and_private,
    a_restart_keeps_accounts_and_history,
    offline_whispers_are_delivered_in_order_at_the_next_login,
    a_login_with_the_password_takes_over_a_detached_session,
    persistent_rooms_survive_a_restart_with_their_settings,
    room_history_is_for_members_only,
    bans_survive_a_restart,
);

pub(crate) async fn start(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|config| {
        backend.apply(config);
        tweak(config);
    })
    .await
}

pub(crate) async fn send_login(raw: &mut Raw, name: &str, password: &str) -> ResultCode {
    raw.send(&Packet::LoginReq {
        username: name.into(),
        password: password.into(),
    })
    .await;
    match raw.recv().await {
        Packet::LoginRes { result, .. } => result,
        other => panic!("expected LOGIN_RES, got {other:?}"),
    }
}

pub(crate) async fn register(addr: std::net::SocketAddr, name: &str, password: &str) -> ResultCode {
    let mut raw = Raw::connect(addr).await;
    raw.send(&Packet::RegisterReq {
        username: name.into(),
        password: password.into(),
    })
    .await;
    match raw.recv().await {
        Packet::RegisterRes { result } => result,
        other => panic!("expected REGISTER_RES, got {other:?}"),
    }
}

pub(crate) async fn logged_in(addr: std::net::SocketAddr, name: &str, password: &str) -> Raw {
    let mut raw = Raw::connect(addr).await;
    assert_eq!(
        send_login(&mut raw, name, password).await,
        ResultCode::OK,
        "login {name}"
    );
    raw
}

/// `(from, text, id)` of the history the request returns.
async fn history(
    raw: &mut Raw,
    peer: Option<&str>,
    before: u64,
    limit: u8,
) -> Vec<(String, String, u64)> {
    raw.send(&Packet::HistoryReq {
        channel: u8::from(peer.is_some()),
        peer: peer.unwrap_or_default().into(),
        before_id: before,
        limit,
    })
    .await;
    let count = match raw.recv().await {
        Packet::HistoryRes { result, count } => {
            assert_eq!(result, ResultCode::OK);
            count
        }
        other => panic!("expected HISTORY_RES, got {other:?}"),
    };
    let mut items = Vec::new();
    for _ in 0..count {
        match raw.recv().await {
            Packet::HistoryItem {
                from,
                text,
                message_id,
                ..
            } => items.push((from.to_string(), text.to_string(), message_id)),
            other => panic!("expected HISTORY_ITEM, got {other:?}"),
        }
    }
    items
}

async fn registered_accounts_log_in_with_their_password_only(backend: Backend) {
    let server = start(&backend, |c| c.auth = AuthMode::Registered).await;
    assert_eq!(
        register(server.addr, "Alice", "correct horse").await,
        ResultCode::OK
    );
    assert_eq!(
        register(server.addr, "alice", "other pass").await,
        ResultCode::USERNAME_TAKEN
    );
    assert_eq!(
        register(server.addr, "bob", "short").await,
        ResultCode::WEAK_PASSWORD
    );
    assert_eq!(
        register(server.addr, "bad name", "long enough").await,
        ResultCode::INVALID_USERNAME
    );

    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(
        send_login(&mut raw, "alice", "wrong pass").await,
        ResultCode::INVALID_CREDENTIALS
    );
    // An unknown user gets the very same answer.
    assert_eq!(
        send_login(&mut raw, "nobody", "whatever1").await,
        ResultCode::INVALID_CREDENTIALS
    );
    assert_eq!(
        send_login(&mut raw, "ALICE", "correct horse").await,
        ResultCode::OK
    );

    // Change the password: the old one stops working.
    raw.send(&Packet::ChangePasswordReq {
        old_password: "wrong pass".into(),
        new_password: "battery staple".into(),
    })
    .await;
    assert!(matches!(
        raw.recv().await,
        Packet::ChangePasswordRes {
            result: ResultCode::INVALID_CREDENTIALS
        }
    ));
    raw.send(&Packet::ChangePasswordReq {
        old_password: "correct horse".into(),
        new_password: "battery staple".into(),
    })
    .await;
    assert!(matches!(
        raw.recv().await,
        Packet::ChangePasswordRes {
            result: ResultCode::OK
        }
    ));
    drop(raw);
    server.until("alice offline", |s| s.online() == 0).await;
    let mut again = Raw::connect(server.addr).await;
    assert_eq!(
        send_login(&mut again, "alice", "correct horse").await,
        ResultCode::INVALID_CREDENTIALS
    );
    assert_eq!(
        send_login(&mut again, "alice", "battery staple").await,
        ResultCode::OK
    );

    // With self-registration switched off.
    let closed = start(&backend, |c| {
        c.auth = AuthMode::Registered;
        c.registration = false;
    })
    .await;
    assert_eq!(
        register(closed.addr, "carol", "long enough").await,
        ResultCode::REGISTRATION_CLOSED
    );
}

async fn open_mode_protects_registered_names(backend: Backend) {
    let server = start(&backend, |c| c.auth = AuthMode::Open).await;
    assert_eq!(
        register(server.addr, "owner", "secret pass").await,
        ResultCode::OK
    );
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(
        send_login(&mut raw, "owner", "").await,
        ResultCode::INVALID_CREDENTIALS
    );
    assert_eq!(
        send_login(&mut raw, "owner", "secret pass").await,
        ResultCode::OK
    );
    // Names without an account stay free for anyone.
    let _guest = logged_in(server.addr, "guest", "").await;
}

async fn concurrent_registrations_of_one_name_have_one_winner(backend: Backend) {
    let server = start(&backend, |c| c.auth = AuthMode::Registered).await;
    let addr = server.addr;
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(async move { register(addr, "contested", &format!("password{i}")).await })
        })
        .collect();
    let mut results = Vec::new();
    for attempt in attempts {
        results.push(attempt.await.expect("task"));
    }
    assert_eq!(
        results.iter().filter(|r| **r == ResultCode::OK).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| *r == ResultCode::OK || *r == ResultCode::USERNAME_TAKEN)
    );
}

async fn history_is_stored_paged_and_private(backend: Backend) {
    let server = start(&backend, |_| {}).await;
    let mut alice = logged_in(server.addr, "alice", "").await;
    let mut bob = logged_in(server.addr, "bob", "").await;
    let mut eve = logged_in(server.addr, "eve", "").await;
    for i in 0..5 {
        assert_eq!(alice.broadcast(&format!("b{i}")).await.0, ResultCode::OK);
    }
    // Each reads what arrived before its next request, so the next packet is its answer.
    bob.sync(1).await;
    eve.sync(1).await;
    assert_eq!(
        alice.whisper("bob", "secret to bob").await.0,
        ResultCode::OK
    );
    bob.sync(2).await;
    assert_eq!(
        bob.whisper("alice", "secret to alice").await.0,
        ResultCode::OK
    );
    assert_eq!(eve.whisper("bob", "from eve").await.0, ResultCode::OK);
    bob.sync(3).await;
    alice.sync(3).await;

    let global = history(&mut bob, None, 0, 100).await;
    let texts: Vec<_> = global.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(texts, ["b0", "b1", "b2", "b3", "b4"], "oldest first");
    let page = history(&mut bob, None, global[3].2, 2).await;
    let texts: Vec<_> = page.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(texts, ["b1", "b2"], "the two before b3");

    let between = history(&mut alice, Some("BOB"), 0, 100).await;
    let texts: Vec<_> = between.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(texts, ["secret to bob", "secret to alice"]);
    // Eve sees only her own conversation with bob, never alice's.
    let eves = history(&mut eve, Some("bob"), 0, 100).await;
    let texts: Vec<_> = eves.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(texts, ["from eve"]);
    let eve_alice = history(&mut eve, Some("alice"), 0, 100).await;
    assert!(eve_alice.is_empty());
}

async fn a_restart_keeps_accounts_and_history(backend: Backend) {
    let server = start(&backend, |c| c.auth = AuthMode::Registered).await;
    assert_eq!(
        register(server.addr, "keeper", "durable pass").await,
        ResultCode::OK
    );
    let mut keeper = logged_in(server.addr, "keeper", "durable pass").await;
    let (_, id) = keeper.broadcast("remember me").await;
    drop(keeper);
    server.stop().await.expect("clean stop");

    let restarted = start(&backend, |c| c.auth = AuthMode::Registered).await;
    let mut keeper = logged_in(restarted.addr, "keeper", "durable pass").await;
    let stored = history(&mut keeper, None, 0, 10).await;
    assert_eq!(
        stored,
        [("keeper".to_owned(), "remember me".to_owned(), id)]
    );
}

async fn offline_whispers_are_delivered_in_order_at_the_next_login(backend: Backend) {
    let server = start(&backend, |c| c.offline_whispers = OfflineWhispers::Store).await;
    assert_eq!(
        register(server.addr, "away", "away pass 1").await,
        ResultCode::OK
    );
    let mut sender = logged_in(server.addr, "sender", "").await;
    for i in 0..3 {
        assert_eq!(
            sender
                .whisper("away", format!("while away {i}").as_str())
                .await
                .0,
            ResultCode::OK
        );
    }
    // Unregistered names are still unknown.
    assert_eq!(
        sender.whisper("ghost", "hello?").await.0,
        ResultCode::USER_NOT_FOUND
    );
    let mut away = logged_in(server.addr, "away", "away pass 1").await;
    for i in 0..3 {
        let (from, text, _) = chat(&away.recv().await);
        assert_eq!((from.as_str(), text), ("sender", format!("while away {i}")));
    }
    away.ping(1).await;
    // Delivered once: a second login finds nothing waiting.
    drop(away);
    server.until("away offline", |s| s.online() == 1).await;
    let mut again = logged_in(server.addr, "away", "away pass 1").await;
    again.ping(2).await;
}

async fn a_login_with_the_password_takes_over_a_detached_session(backend: Backend) {
    let server = start(&backend, |c| c.auth = AuthMode::Open).await;
    assert_eq!(
        register(server.addr, "owner", "owner pass 1").await,
        ResultCode::OK
    );
    for (name, password) in [("owner", "owner pass 1"), ("guest", "")] {
        let mut raw = logged_in(server.addr, name, password).await;
        raw.send(&Packet::SessionTokenReq).await;
        assert!(matches!(
            raw.recv().await,
            Packet::SessionTokenRes {
                result: ResultCode::OK,
                ..
            }
        ));
        drop(raw);
    }
    server.until("both detached", |s| s.detached() == 2).await;
    // An open name proves nothing: only its token could resume it.
    let mut other = Raw::connect(server.addr).await;
    assert_eq!(
        send_login(&mut other, "guest", "").await,
        ResultCode::NAME_IN_USE
    );
    // A wrong password takes nothing over.
    assert_eq!(
        send_login(&mut other, "owner", "not it at all").await,
        ResultCode::INVALID_CREDENTIALS
    );
    // The password does.
    assert_eq!(
        send_login(&mut other, "owner", "owner pass 1").await,
        ResultCode::OK
    );
    server
        .until("one detached left", |s| s.detached() == 1)
        .await;
    assert_eq!(other.broadcast("it is me").await.0, ResultCode::OK);
}

async fn persistent_rooms_survive_a_restart_with_their_settings(backend: Backend) {
    let server = start(&backend, |_| {}).await;
    assert_eq!(
        register(server.addr, "owner", "owner pass 1").await,
        ResultCode::OK
    );
    let mut owner = logged_in(server.addr, "owner", "owner pass 1").await;
    // A guest name proves nothing, so it cannot own a room that outlives it.
    let mut guest = Raw::login(server.addr, "guest").await;
    assert_eq!(
        guest.create_room("Keep", 1, "", "").await,
        ResultCode::NOT_PERMITTED
    );
    assert_eq!(
        owner.create_room("Keep", 1, "door", "first topic").await,
        ResultCode::OK
    );
    assert_eq!(
        owner.room_moderate("keep", 2, "", 0, "the topic").await,
        ResultCode::OK
    );
    assert_eq!(
        owner.room_moderate("keep", 6, "guest", 0, "").await,
        ResultCode::OK
    );
    // Empty, it stays.
    assert_eq!(owner.leave_room("keep").await, ResultCode::OK);
    drop((owner, guest));
    server.stop().await.expect("clean stop");

    let restarted = start(&backend, |_| {}).await;
    let mut guest = Raw::login(restarted.addr, "guest").await;
    let list = Packet::ListRoomsReq {
        after: "".into(),
        limit: 10,
    };
    let (_, items) = guest.list(&list).await;
    match &items[..] {
        [
            Packet::RoomItem {
                room,
                flags,
                members,
                topic,
            },
        ] => {
            assert_eq!(room.to_string(), "Keep");
            assert_eq!(
                (*flags, *members),
                (1 | 4, 0),
                "persistent, with a password"
            );
            assert_eq!(topic.to_string(), "the topic");
        }
        other => panic!("expected the one room, got {other:?}"),
    }
    let mut stranger = Raw::login(restarted.addr, "stranger").await;
    assert_eq!(
        stranger.join_room("keep", "").await.0,
        ResultCode::BAD_ROOM_PASSWORD
    );
    assert_eq!(stranger.join_room("keep", "door").await.0, ResultCode::OK);
    // The guest is still an operator of the room: no password needed, and the topic is theirs
    // to set.
    assert_eq!(guest.join_room("keep", "").await.0, ResultCode::OK);
    assert_eq!(
        guest.room_moderate("keep", 2, "", 0, "guest topic").await,
        ResultCode::OK
    );
    // Without storage there are no persistent rooms.
    let plain = TestServer::start().await;
    let mut anyone = Raw::login(plain.addr, "anyone").await;
    assert_eq!(
        anyone.create_room("keep", 1, "", "").await,
        ResultCode::NOT_AVAILABLE
    );
}

async fn room_history_is_for_members_only(backend: Backend) {
    let server = start(&backend, |_| {}).await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut outsider = Raw::login(server.addr, "outsider").await;
    assert_eq!(alice.create_room("Log", 0, "", "").await, ResultCode::OK);
    let (_, first) = alice.room_chat("log", "one").await;
    let (_, second) = alice.room_chat("log", "two").await;
    alice.broadcast("not in the room").await;
    let request = Packet::HistoryReq {
        channel: 2,
        peer: "LOG".into(),
        before_id: 0,
        limit: 10,
    };
    let count = match alice.request(&request).await {
        Packet::HistoryRes { result, count } => {
            assert_eq!(result, ResultCode::OK);
            count
        }
        other => panic!("expected HISTORY_RES, got {other:?}"),
    };
    let mut items = Vec::new();
    for _ in 0..count {
        match alice.recv().await {
            Packet::HistoryItem {
                message_id,
                kind,
                to,
                text,
                ..
            } => items.push((message_id, kind, to.to_string(), text.to_string())),
            other => panic!("expected HISTORY_ITEM, got {other:?}"),
        }
    }
    assert_eq!(
        items,
        [
            (first, 3, "log".into(), "one".into()),
            (second, 3, "log".into(), "two".into())
        ]
    );
    outsider.recv().await; // the broadcast
    match outsider.request(&request).await {
        Packet::HistoryRes { result, count } => {
            assert_eq!((result, count), (ResultCode::NOT_IN_ROOM, 0));
        }
        other => panic!("expected HISTORY_RES, got {other:?}"),
    }
}

async fn bans_survive_a_restart(backend: Backend) {
    let operators = |c: &mut Config| c.operators = vec!["root".into()];
    let server = start(&backend, operators).await;
    assert_eq!(
        register(server.addr, "root", "root pass 1").await,
        ResultCode::OK
    );
    let mut root = logged_in(server.addr, "root", "root pass 1").await;
    assert_eq!(root.moderate(2, "bob", 0, "for good").await, ResultCode::OK);
    assert_eq!(
        root.moderate(6, "carol", 3600, "an hour").await,
        ResultCode::OK
    );
    drop(root);
    server.stop().await.expect("clean stop");

    let restarted = start(&backend, operators).await;
    let mut bob = Raw::connect(restarted.addr).await;
    assert_eq!(send_login(&mut bob, "bob", "pw").await, ResultCode::BANNED);
    let mut carol = Raw::login(restarted.addr, "carol").await;
    assert_eq!(carol.broadcast("hello?").await.0, ResultCode::MUTED);
}

/// Resumes filled from history (the bodies are in `resume.rs`).
mod resume_history {
    use super::Backend;
    use crate::resume::{
        a_resume_beyond_the_log_is_filled_from_history,
        history_does_not_fill_more_than_the_replay_limit,
        repeated_cuts_with_a_small_log_are_filled_from_history,
    };
    use suda_server::config::Durability;

    async fn a_resume_beyond_the_log_is_filled_from_history_strict(backend: Backend) {
        a_resume_beyond_the_log_is_filled_from_history(backend, Durability::Strict).await;
    }

    async fn a_resume_beyond_the_log_is_filled_from_history_batched(backend: Backend) {
        a_resume_beyond_the_log_is_filled_from_history(backend, Durability::Batched).await;
    }

    on_both_backends!(
        a_resume_beyond_the_log_is_filled_from_history_strict,
        a_resume_beyond_the_log_is_filled_from_history_batched,
        history_does_not_fill_more_than_the_replay_limit,
        repeated_cuts_with_a_small_log_are_filled_from_history,
    );
}
