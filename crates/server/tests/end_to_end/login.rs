use std::sync::Arc;

use suda_protocol::{Packet, ResultCode};
use suda_server::Server;
use suda_server::auth::{AuthDecision, AuthFuture, Authenticator};

use crate::support::*;

#[tokio::test]
async fn login_succeeds_with_a_fresh_nonzero_session_id() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    let mut clients = Vec::new();
    for name in ["alice", "bob", "Carol_1", "d-2"] {
        let mut raw = Raw::connect(server.addr).await;
        raw.send(&Packet::LoginReq {
            username: name.into(),
            password: "".into(),
        })
        .await;
        let Packet::LoginRes { result, session_id } = raw.recv().await else {
            panic!("not LOGIN_RES");
        };
        assert_eq!(result, ResultCode::OK);
        ids.push(session_id);
        clients.push(raw);
    }
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "session ids are unique: {ids:?}");
    assert!(ids.iter().all(|&id| id != 0));
    server.until("four online", |s| s.online() == 4).await;
}

#[tokio::test]
async fn second_login_on_one_connection_is_already_authenticated() {
    let server = TestServer::start().await;
    let mut raw = Raw::login(server.addr, "alice").await;
    assert_eq!(
        raw.try_login("alice2").await,
        ResultCode::ALREADY_AUTHENTICATED
    );
    // Still logged in as alice and usable.
    assert_eq!(raw.broadcast("still here").await.0, ResultCode::OK);
}

#[tokio::test]
async fn invalid_usernames_are_refused_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(server.addr).await;
    let too_long = "x".repeat(33);
    for bad in [
        "",
        too_long.as_str(),
        "has space",
        "é",
        "semi;colon",
        "new\nline",
    ] {
        assert_eq!(
            raw.try_login(bad).await,
            ResultCode::INVALID_USERNAME,
            "{bad:?}"
        );
    }
    raw.send(&Packet::LoginReq {
        username: (&[0xff, 0xfe][..]).into(),
        password: "".into(),
    })
    .await;
    assert!(matches!(
        raw.recv().await,
        Packet::LoginRes {
            result: ResultCode::INVALID_USERNAME,
            session_id: 0
        }
    ));
    assert_eq!(raw.try_login(&"y".repeat(32)).await, ResultCode::OK);
}

#[tokio::test]
async fn names_are_unique_case_insensitively() {
    let server = TestServer::start().await;
    let _alice = Raw::login(server.addr, "Alice").await;
    let mut other = Raw::connect(server.addr).await;
    assert_eq!(other.try_login("alice").await, ResultCode::NAME_IN_USE);
    assert_eq!(other.try_login("ALICE").await, ResultCode::NAME_IN_USE);
    assert_eq!(other.try_login("alice2").await, ResultCode::OK);
}

#[tokio::test]
async fn requests_before_login_get_not_authenticated_but_ping_works() {
    let server = TestServer::start().await;
    let mut raw = Raw::connect(server.addr).await;
    raw.ping(7).await;
    assert_eq!(
        raw.broadcast("hi").await,
        (ResultCode::NOT_AUTHENTICATED, 0)
    );
    assert_eq!(
        raw.whisper("bob", "hi").await,
        (ResultCode::NOT_AUTHENTICATED, 0)
    );
    // The connection stayed open and can still log in.
    assert_eq!(raw.try_login("late").await, ResultCode::OK);
}

#[tokio::test]
async fn an_abrupt_disconnect_frees_the_name() {
    let server = TestServer::start().await;
    let alice = Raw::login(server.addr, "alice").await;
    server.until("alice online", |s| s.online() == 1).await;
    drop(alice);
    server.until("alice gone", |s| s.online() == 0).await;
    let _again = Raw::login(server.addr, "ALICE").await;
}

/// Refuses one password, to show that an authenticator's verdict reaches the client.
struct RejectsWrongPassword;

impl Authenticator for RejectsWrongPassword {
    fn authenticate<'a>(&'a self, _username: &'a str, password: &'a [u8]) -> AuthFuture<'a> {
        let decision = if password == b"wrong" {
            AuthDecision::Reject(ResultCode::INVALID_CREDENTIALS)
        } else {
            AuthDecision::Accept
        };
        Box::pin(async move { decision })
    }
}

#[tokio::test]
async fn an_authenticators_refusal_is_invalid_credentials_and_does_not_hold_the_name() {
    let server = Server::bind(test_config())
        .expect("bind")
        .with_authenticator(Arc::new(RejectsWrongPassword));
    let server = TestServer::start_server(server);
    let mut raw = Raw::connect(server.addr).await;
    raw.send(&Packet::LoginReq {
        username: "alice".into(),
        password: "wrong".into(),
    })
    .await;
    assert!(matches!(
        raw.recv().await,
        Packet::LoginRes {
            result: ResultCode::INVALID_CREDENTIALS,
            session_id: 0
        }
    ));
    assert_eq!(raw.try_login("alice").await, ResultCode::OK);
}

fn token(secret: &[u8], sub: &str, exp: u64) -> String {
    let claims = serde_json::json!({ "sub": sub, "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("token")
}

#[tokio::test]
async fn token_mode_accepts_the_applications_signed_tokens_only() {
    let secret = "a secret shared with the game backend, 32+ bytes";
    let server = TestServer::start_with(|c| {
        c.auth = suda_server::config::AuthMode::Token;
        c.jwt_secret = Some(secret.to_owned());
    })
    .await;
    let now = suda_server::ids::unix_time_ms() / 1000;
    let login = |name: &'static str, password: String| async move {
        let mut raw = Raw::connect(server.addr).await;
        raw.send(&Packet::LoginReq {
            username: name.into(),
            password: password.as_str().into(),
        })
        .await;
        match raw.recv().await {
            Packet::LoginRes { result, .. } => result,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        login("alice", token(secret.as_bytes(), "Alice", now + 600)).await,
        ResultCode::OK
    );
    assert_eq!(
        login("bob", token(secret.as_bytes(), "alice", now + 600)).await,
        ResultCode::INVALID_CREDENTIALS,
        "a token for someone else"
    );
    assert_eq!(
        login("carol", token(secret.as_bytes(), "carol", now - 600)).await,
        ResultCode::INVALID_CREDENTIALS,
        "expired"
    );
    assert_eq!(
        login(
            "dave",
            token(b"not the secret, but also long enough", "dave", now + 600)
        )
        .await,
        ResultCode::INVALID_CREDENTIALS,
        "wrong key"
    );
    assert_eq!(
        login("erin", "not a token".into()).await,
        ResultCode::INVALID_CREDENTIALS
    );
}
