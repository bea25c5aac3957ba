//! Presence: the online list, away statuses, and presence events for watchers only.

use suda_protocol::{Packet, ResultCode};

use crate::support::*;

const ONLINE: u8 = 0;
const AWAY: u8 = 1;
const OFFLINE: u8 = 2;

async fn watch(raw: &mut Raw, watch: u8, user: &str) -> (ResultCode, u8, String) {
    let packet = Packet::WatchReq {
        watch,
        user: user.into(),
    };
    match raw.request(&packet).await {
        Packet::WatchRes {
            result,
            status,
            text,
            ..
        } => (result, status, text.to_string()),
        other => panic!("expected WATCH_RES, got {other:?}"),
    }
}

async fn set_status(raw: &mut Raw, status: u8, text: &str) -> ResultCode {
    let packet = Packet::SetStatusReq {
        status,
        text: text.into(),
    };
    match raw.request(&packet).await {
        Packet::SetStatusRes { result } => result,
        other => panic!("expected SET_STATUS_RES, got {other:?}"),
    }
}

async fn presence(raw: &mut Raw) -> (String, u8, String) {
    match raw.recv().await {
        Packet::PresenceNotify { user, status, text } => {
            (user.to_string(), status, text.to_string())
        }
        other => panic!("expected PRESENCE_NOTIFY, got {other:?}"),
    }
}

#[tokio::test]
async fn the_user_list_comes_in_pages_with_statuses() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    for name in ["dora", "Amy", "carl", "Bea", "eli"] {
        clients.push(Raw::login(server.addr, name).await);
    }
    assert_eq!(
        set_status(&mut clients[2], AWAY, "lunch").await,
        ResultCode::OK
    );
    let page = |after: &str, limit| Packet::UserListReq {
        after: after.into(),
        limit,
    };
    let items = |items: Vec<Packet>| -> Vec<(String, u8, String)> {
        items
            .into_iter()
            .map(|item| match item {
                Packet::UserItem {
                    user, status, text, ..
                } => (user.to_string(), status, text.to_string()),
                other => panic!("expected USER_ITEM, got {other:?}"),
            })
            .collect()
    };
    let (result, first) = clients[0].list(&page("", 3)).await;
    assert_eq!(result, ResultCode::OK);
    assert_eq!(
        items(first),
        [
            ("Amy".into(), ONLINE, String::new()),
            ("Bea".into(), ONLINE, String::new()),
            ("carl".into(), AWAY, "lunch".into()),
        ]
    );
    let (_, rest) = clients[0].list(&page("carl", 3)).await;
    let names: Vec<String> = items(rest).into_iter().map(|i| i.0).collect();
    assert_eq!(names, ["dora", "eli"]);
    assert_eq!(
        clients[0].list(&page("", 101)).await.0,
        ResultCode::INVALID_REQUEST
    );
    // Back from lunch.
    assert_eq!(
        set_status(&mut clients[2], ONLINE, "").await,
        ResultCode::OK
    );
    let (_, again) = clients[0].list(&page("bea", 1)).await;
    assert_eq!(items(again), [("carl".into(), ONLINE, String::new())]);
}

#[tokio::test]
async fn watchers_alone_hear_of_logins_statuses_and_logouts() {
    let server = TestServer::start().await;
    let mut fan = Raw::login(server.addr, "fan").await;
    let mut stranger = Raw::login(server.addr, "stranger").await;
    assert_eq!(
        watch(&mut fan, 1, "Star").await,
        (ResultCode::OK, OFFLINE, String::new())
    );
    // The star logs in: the fan hears it, the stranger does not.
    let mut star = Raw::login(server.addr, "Star").await;
    assert_eq!(
        presence(&mut fan).await,
        ("Star".into(), ONLINE, String::new())
    );
    assert_eq!(
        set_status(&mut star, AWAY, "on stage").await,
        ResultCode::OK
    );
    assert_eq!(
        presence(&mut fan).await,
        ("Star".into(), AWAY, "on stage".into())
    );
    // Saying the same again tells nobody anything.
    assert_eq!(
        set_status(&mut star, AWAY, "on stage").await,
        ResultCode::OK
    );
    assert_eq!(
        watch(&mut fan, 1, "star").await,
        (ResultCode::OK, AWAY, "on stage".into())
    );
    drop(star);
    assert_eq!(
        presence(&mut fan).await,
        ("Star".into(), OFFLINE, String::new())
    );
    stranger.ping(1).await;
    // After unwatching, nothing more.
    assert_eq!(watch(&mut fan, 0, "star").await.0, ResultCode::OK);
    let _star = Raw::login(server.addr, "star").await;
    fan.ping(2).await;
}

#[tokio::test]
async fn watch_lists_and_statuses_are_checked() {
    let server = TestServer::start_with(|c| c.max_watch = 2).await;
    let mut fan = Raw::login(server.addr, "fan").await;
    assert_eq!(watch(&mut fan, 1, "a").await.0, ResultCode::OK);
    assert_eq!(watch(&mut fan, 1, "b").await.0, ResultCode::OK);
    assert_eq!(
        watch(&mut fan, 1, "A").await.0,
        ResultCode::OK,
        "already watched"
    );
    assert_eq!(watch(&mut fan, 1, "c").await.0, ResultCode::NOT_AVAILABLE);
    assert_eq!(watch(&mut fan, 0, "a").await.0, ResultCode::OK);
    assert_eq!(watch(&mut fan, 1, "c").await.0, ResultCode::OK);
    assert_eq!(
        watch(&mut fan, 1, "not a name").await.0,
        ResultCode::INVALID_USERNAME
    );
    assert_eq!(watch(&mut fan, 7, "c").await.0, ResultCode::INVALID_REQUEST);
    assert_eq!(
        set_status(&mut fan, 9, "").await,
        ResultCode::INVALID_REQUEST
    );
    assert_eq!(
        set_status(&mut fan, AWAY, "bell\u{7}").await,
        ResultCode::INVALID_MESSAGE
    );
    assert_eq!(
        set_status(&mut fan, AWAY, &"x".repeat(129)).await,
        ResultCode::INVALID_MESSAGE
    );
}
