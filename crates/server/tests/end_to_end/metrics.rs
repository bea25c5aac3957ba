//! The Prometheus endpoint reports what happened.

use suda_protocol::{ErrorCode, ResultCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut response = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut response))
        .await
        .expect("answer in time")
        .expect("read");
    response
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
        .trim()
        .parse()
        .expect("number")
}

#[tokio::test]
async fn metrics_count_connections_logins_packets_deliveries_and_close_reasons() {
    let mut config = test_config();
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let server = suda_server::Server::bind(config).expect("bind");
    let metrics_addr = server.metrics_local_addr().expect("metrics listener");
    let server = TestServer::start_server(server);

    let mut alice = Raw::login(server.addr, "alice").await;
    let mut bob = Raw::login(server.addr, "bob").await;
    let mut carol = Raw::login(server.addr, "carol").await;
    let mut refused = Raw::connect(server.addr).await;
    assert_eq!(refused.try_login("ALICE").await, ResultCode::NAME_IN_USE);
    alice.broadcast("one").await;
    bob.recv().await;
    carol.recv().await;
    alice.whisper("bob", "two").await;
    bob.recv().await;
    refused.send_bytes(&[4, 0, 0x99, 0x99]).await;
    refused
        .expect_closed_with(ErrorCode::UNKNOWN_PACKET_TYPE)
        .await;
    drop(refused);
    server
        .until("closed and counted", |s| {
            let s = s.snapshot();
            s.protocol_errors == 1 && s.connections_open == 3
        })
        .await;

    let response = http_get(metrics_addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let m = response;
    assert_eq!(value(&m, "suda_users_online"), 3.0);
    assert_eq!(value(&m, "suda_connections_open"), 3.0);
    assert_eq!(value(&m, "suda_connections_accepted_total"), 4.0);
    assert_eq!(value(&m, "suda_logins_total{result=\"OK\"}"), 3.0);
    assert_eq!(value(&m, "suda_logins_total{result=\"NAME_IN_USE\"}"), 1.0);
    assert_eq!(
        value(&m, "suda_packets_in_total{type=\"BROADCAST_REQ\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "suda_packets_in_total{type=\"WHISPER_REQ\"}"),
        1.0
    );
    assert_eq!(
        value(&m, "suda_packets_out_total{type=\"BROADCAST_NOTIFY\"}"),
        2.0
    );
    assert_eq!(
        value(&m, "suda_packets_out_total{type=\"WHISPER_NOTIFY\"}"),
        1.0
    );
    assert_eq!(value(&m, "suda_packets_out_total{type=\"LOGIN_RES\"}"), 4.0);
    assert_eq!(value(&m, "suda_deliveries_total"), 3.0);
    assert_eq!(
        value(&m, "suda_disconnects_total{reason=\"protocol_error\"}"),
        1.0
    );
    assert!(value(&m, "suda_bytes_in_total") > 0.0);
    assert!(value(&m, "suda_bytes_out_total") > 0.0);
    assert!(value(&m, "suda_delivery_delay_seconds_count") >= 1.0);
    assert!(value(&m, "suda_send_queue_bytes_count") >= 1.0);
    assert!(m.contains("suda_delivery_delay_seconds_bucket{le=\"0.001\"}"));

    assert!(
        http_get(metrics_addr, "/nope")
            .await
            .starts_with("HTTP/1.1 404")
    );
    server.stop().await.expect("clean stop");
}

/// Every Argon2 computation is counted, and registering a taken name costs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashes_are_counted_and_a_taken_name_costs_none() {
    let backend = crate::storage::Backend::sqlite();
    let mut config = test_config();
    backend.apply(&mut config);
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let server = suda_server::Server::bind(config).expect("bind");
    let metrics_addr = server.metrics_local_addr().expect("metrics listener");
    let server = TestServer::start_server(server);
    let hashes = || async {
        value(
            &http_get(metrics_addr, "/metrics").await,
            "suda_password_hashes_total",
        )
    };
    assert_eq!(hashes().await, 0.0);
    assert_eq!(
        crate::storage::register(server.addr, "alice", "correct horse").await,
        ResultCode::OK
    );
    assert_eq!(hashes().await, 1.0);
    assert_eq!(
        crate::storage::register(server.addr, "ALICE", "other horse").await,
        ResultCode::USERNAME_TAKEN
    );
    assert_eq!(
        hashes().await,
        1.0,
        "a taken name is refused before hashing"
    );
    // A name with an account needs its password, even in open mode: one verification.
    let mut raw = Raw::connect(server.addr).await;
    assert_eq!(
        crate::storage::send_login(&mut raw, "alice", "correct horse").await,
        ResultCode::OK
    );
    assert_eq!(hashes().await, 2.0);
    server.stop().await.expect("clean stop");
}
