use suda_protocol::{ErrorCode, Packet, ResultCode};

use crate::support::*;

#[tokio::test]
async fn a_packet_delivered_one_byte_at_a_time_is_reassembled() {
    let server = TestServer::start().await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut alice = Raw::connect(server.addr).await;
    let mut wire = encode(&Packet::LoginReq {
        username: "alice".into(),
        password: "secret".into(),
    });
    wire.extend(encode(&Packet::BroadcastReq {
        text: "slowly, 한 글자씩".into(),
    }));
    for byte in wire {
        alice.send_bytes(&[byte]).await;
        // Pacing, not synchronisation: gives each byte time to travel alone, so the server
        // really reads the packets one byte at a time.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert!(matches!(
        alice.recv().await,
        Packet::LoginRes {
            result: ResultCode::OK,
            ..
        }
    ));
    assert!(matches!(
        alice.recv().await,
        Packet::BroadcastRes {
            result: ResultCode::OK,
            ..
        }
    ));
    assert_eq!(chat(&bob.recv().await).1, "slowly, 한 글자씩");
}

#[tokio::test]
async fn fifty_packets_in_one_write_are_all_served_in_order() {
    let server = TestServer::start().await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut alice = Raw::connect(server.addr).await;
    let mut wire = encode(&Packet::LoginReq {
        username: "alice".into(),
        password: "".into(),
    });
    for i in 0..49 {
        wire.extend(encode(&Packet::BroadcastReq {
            text: format!("message {i}").into(),
        }));
    }
    alice.send_bytes(&wire).await;
    assert!(matches!(
        alice.recv().await,
        Packet::LoginRes {
            result: ResultCode::OK,
            ..
        }
    ));
    for i in 0..49 {
        assert!(matches!(
            alice.recv().await,
            Packet::BroadcastRes {
                result: ResultCode::OK,
                ..
            }
        ));
        assert_eq!(chat(&bob.recv().await).1, format!("message {i}"));
    }
}

/// Sends `bytes` after logging in, expects the connection to be closed with `code`, and checks
/// that the server still serves a fresh client.
async fn malformed_closes_only_that_connection(bytes: &[u8], code: ErrorCode) {
    let server = TestServer::start().await;
    let mut bystander = Raw::login(server.addr, "bystander").await;
    let mut offender = Raw::login(server.addr, "offender").await;
    offender.send_bytes(bytes).await;
    offender.expect_closed_with(code).await;
    server
        .until("protocol error counted", |s| {
            s.snapshot().protocol_errors == 1
        })
        .await;
    server.until("name freed", |s| s.online() == 1).await;
    let mut fresh = Raw::login(server.addr, "offender").await;
    assert_eq!(fresh.broadcast("still works").await.0, ResultCode::OK);
    assert_eq!(chat(&bystander.recv().await).1, "still works");
}

#[tokio::test]
async fn size_below_the_header_is_refused() {
    for size in [0u8, 1, 3] {
        malformed_closes_only_that_connection(&[size, 0, 7, 0], ErrorCode::PACKET_TOO_SHORT).await;
    }
}

#[tokio::test]
async fn size_above_max_packet_is_refused_from_the_header_alone() {
    // Only the header is sent: the server must not wait for the 9000-byte body.
    let [lo, hi] = 9000u16.to_le_bytes();
    malformed_closes_only_that_connection(&[lo, hi, 3, 0], ErrorCode::PACKET_TOO_LARGE).await;
}

#[tokio::test]
async fn unknown_type_is_refused() {
    malformed_closes_only_that_connection(&[4, 0, 0x34, 0x12], ErrorCode::UNKNOWN_PACKET_TYPE)
        .await;
}

#[tokio::test]
async fn body_shorter_than_its_fields_is_refused() {
    // BROADCAST_REQ whose text claims 200 bytes inside a 10-byte packet.
    malformed_closes_only_that_connection(
        &[10, 0, 3, 0, 200, 0, b'a', b'b', b'c', b'd'],
        ErrorCode::MALFORMED_BODY,
    )
    .await;
}

#[tokio::test]
async fn trailing_bytes_are_refused() {
    let mut ping = encode(&Packet::Ping { nonce: 1 });
    ping[0] += 2;
    ping.extend([0xaa, 0xbb]);
    malformed_closes_only_that_connection(&ping, ErrorCode::MALFORMED_BODY).await;
}

#[tokio::test]
async fn server_only_packets_from_a_client_are_refused() {
    let pong = encode(&Packet::Pong { nonce: 1 });
    malformed_closes_only_that_connection(&pong, ErrorCode::UNEXPECTED_PACKET).await;
}

#[tokio::test]
async fn requests_before_a_malformed_packet_in_the_same_read_are_answered() {
    let server = TestServer::start().await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut wire = encode(&Packet::BroadcastReq {
        text: "first".into(),
    });
    wire.extend([4, 0, 0xff, 0xff]);
    alice.send_bytes(&wire).await;
    assert!(matches!(alice.recv().await, Packet::BroadcastRes { .. }));
    alice
        .expect_closed_with(ErrorCode::UNKNOWN_PACKET_TYPE)
        .await;
    assert_eq!(chat(&bob.recv().await).1, "first");
}

#[tokio::test]
async fn a_sender_cut_mid_packet_delivers_nothing_half_sent() {
    let server = TestServer::start().await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut alice = Raw::login(server.addr, "alice").await;
    let mut wire = encode(&Packet::BroadcastReq {
        text: "whole".into(),
    });
    let cut = encode(&Packet::BroadcastReq {
        text: "never".into(),
    });
    wire.extend(&cut[..cut.len() - 2]);
    alice.send_bytes(&wire).await;
    assert!(matches!(alice.recv().await, Packet::BroadcastRes { .. }));
    drop(alice);
    assert_eq!(chat(&bob.recv().await).1, "whole");
    server.until("alice gone", |s| s.online() == 1).await;
    bob.ping(1).await; // "never" did not arrive before the PONG
}
