use futures_util::future::join_all;
use suda_protocol::{Packet, ResultCode};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_all_receive_every_broadcast() {
    const CLIENTS: usize = 1000;
    const SENDERS: usize = 10;
    let server = TestServer::start().await;
    let addr = server.addr;
    let clients = join_all(
        (0..CLIENTS).map(|i| async move { Raw::login(addr, &format!("user{i:04}")).await }),
    )
    .await;
    server.until("all online", |s| s.online() == CLIENTS).await;

    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            tokio::spawn(async move {
                let is_sender = i < SENDERS;
                if is_sender {
                    client
                        .send(&Packet::BroadcastReq {
                            text: format!("from {i}").into(),
                        })
                        .await;
                }
                let expected = if is_sender { SENDERS - 1 } else { SENDERS };
                let mut seen = std::collections::HashSet::new();
                let mut answered = !is_sender;
                while seen.len() < expected || !answered {
                    match client.recv().await {
                        Packet::BroadcastRes { result, .. } => {
                            assert_eq!(result, ResultCode::OK);
                            answered = true;
                        }
                        packet => {
                            let (_, text, _) = chat(&packet);
                            assert_ne!(text, format!("from {i}"), "own broadcast echoed");
                            assert!(seen.insert(text), "duplicate delivery");
                        }
                    }
                }
                client.ping(0).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    let stats = server.stats.snapshot();
    assert_eq!(stats.broadcasts, SENDERS as u64);
    assert_eq!(stats.deliveries, (SENDERS * (CLIENTS - 1)) as u64);
    server.stop().await.expect("clean stop");
}
