//! The `suda-client` library against the real server.

use suda_client::{Client, ClientConfig, ClientError, Event, PacketType, ResultCode};
use suda_protocol::ErrorCode;

use crate::support::*;

async fn connect(server: &TestServer, name: &str) -> (Client, suda_client::Events) {
    let (client, events) = Client::connect(server.addr, ClientConfig::default())
        .await
        .expect("connect");
    let session_id = client.login(name, "").await.expect("login");
    assert_ne!(session_id, 0);
    (client, events)
}

#[tokio::test]
async fn the_client_library_chats_and_its_errors_can_be_matched() {
    let server = TestServer::start().await;
    let (alice, _alice_events) = connect(&server, "alice").await;
    let (_bob, mut bob_events) = connect(&server, "bob").await;

    let id = alice.broadcast("hi bob").await.expect("broadcast");
    let Some(Event::Broadcast(message)) = bob_events.next().await else {
        panic!("expected a broadcast");
    };
    assert_eq!((message.message_id, message.from.as_str()), (id, "alice"));

    let id = alice.whisper("Bob", "psst").await.expect("whisper");
    let Some(Event::Whisper(message)) = bob_events.next().await else {
        panic!("expected a whisper");
    };
    assert_eq!((message.message_id, message.text.as_str()), (id, "psst"));

    match alice.whisper("ghost", "boo").await {
        Err(ClientError::Rejected {
            request: PacketType::WhisperReq,
            result: ResultCode::USER_NOT_FOUND,
        }) => {}
        other => panic!("expected USER_NOT_FOUND, got {other:?}"),
    }
    let (other, _events) = Client::connect(server.addr, ClientConfig::default())
        .await
        .expect("connect");
    match other.login("ALICE", "").await {
        Err(ClientError::Rejected {
            result: ResultCode::NAME_IN_USE,
            ..
        }) => {}
        other => panic!("expected NAME_IN_USE, got {other:?}"),
    }
    alice.ping().await.expect("ping");
}

#[tokio::test]
async fn pipelined_requests_from_many_tasks_each_get_their_own_answer() {
    let server = TestServer::start().await;
    let (alice, _events) = connect(&server, "alice").await;
    let (_bob, mut bob_events) = connect(&server, "bob").await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let alice = alice.clone();
            tokio::spawn(async move { alice.broadcast(&format!("m{i}")).await })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.expect("task").expect("broadcast"));
    }
    let mut received = Vec::new();
    for _ in 0..50 {
        match bob_events.next().await {
            Some(Event::Broadcast(m)) => received.push(m.message_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    ids.sort_unstable();
    received.sort_unstable();
    assert_eq!(ids, received);
}

#[tokio::test]
async fn the_client_reports_a_server_shutdown() {
    let server = TestServer::start().await;
    let (_alice, mut events) = connect(&server, "alice").await;
    server.begin_shutdown();
    match events.next().await {
        Some(Event::ServerClosing { code, .. }) => assert_eq!(code, ErrorCode::SERVER_SHUTDOWN),
        other => panic!("expected ServerClosing, got {other:?}"),
    }
    assert!(matches!(events.next().await, Some(Event::Disconnected(_))));
    server.stop().await.expect("clean stop");
}
