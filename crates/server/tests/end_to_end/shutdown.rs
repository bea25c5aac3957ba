use suda_protocol::{ErrorCode, Packet, ResultCode};

use crate::support::*;

#[tokio::test]
async fn graceful_shutdown_delivers_every_accepted_message_then_says_goodbye() {
    let server = TestServer::start().await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut receivers = Vec::new();
    for i in 0..4 {
        receivers.push(Raw::login(server.addr, &format!("r{i}")).await);
    }
    let mut wire = Vec::new();
    for i in 0..500 {
        wire.extend(encode(&Packet::BroadcastReq {
            text: format!("m{i}").into(),
        }));
    }
    alice.send_bytes(&wire).await;
    // Make sure some were accepted before the shutdown begins, then race the rest against it.
    assert!(matches!(
        alice.recv().await,
        Packet::BroadcastRes {
            result: ResultCode::OK,
            ..
        }
    ));
    server.begin_shutdown();
    let mut acknowledged = 1;
    loop {
        match alice.recv().await {
            Packet::BroadcastRes { result, .. } => {
                assert_eq!(result, ResultCode::OK);
                acknowledged += 1;
            }
            Packet::ErrorNotify { code, .. } => {
                assert_eq!(code, ErrorCode::SERVER_SHUTDOWN);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(alice.recv_or_eof().await, None);
    for receiver in &mut receivers {
        let mut received = 0;
        loop {
            match receiver.recv().await {
                Packet::BroadcastNotify { text, .. } => {
                    assert_eq!(text, format!("m{received}").as_str());
                    received += 1;
                }
                Packet::ErrorNotify { code, .. } => {
                    assert_eq!(code, ErrorCode::SERVER_SHUTDOWN);
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            received, acknowledged,
            "every acknowledged message was delivered"
        );
        assert_eq!(receiver.recv_or_eof().await, None);
    }
    let addr = server.addr;
    server.stop().await.expect("clean stop");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_with_idle_and_half_logged_in_connections_is_prompt() {
    let server = TestServer::start().await;
    let mut idle = Raw::login(server.addr, "idle").await;
    let mut anonymous = Raw::connect(server.addr).await;
    anonymous.ping(1).await;
    server.begin_shutdown();
    idle.expect_closed_with(ErrorCode::SERVER_SHUTDOWN).await;
    anonymous
        .expect_closed_with(ErrorCode::SERVER_SHUTDOWN)
        .await;
    server.stop().await.expect("clean stop");
}
