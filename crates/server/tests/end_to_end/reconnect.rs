//! The client library's automatic reconnect against the real server, through a proxy that cuts
//! connections: what a mobile user on a bad link sees.

use std::collections::HashMap;
use std::time::Duration;

use suda_client::{Client, ClientConfig, Event, Events, Jitter, ReconnectPolicy};
use suda_testkit::{Direction, FaultProxy};

use crate::support::*;

fn reconnecting() -> ClientConfig {
    ClientConfig::default().with_reconnect(
        ReconnectPolicy::new()
            .with_initial_backoff(Duration::from_millis(5))
            .with_max_backoff(Duration::from_millis(50))
            .with_jitter(Jitter::Full),
    )
}

async fn log_in(addr: std::net::SocketAddr, name: &str, config: ClientConfig) -> (Client, Events) {
    let (client, events) = Client::connect(addr, config).await.expect("connect");
    client.login(name, "").await.expect("login");
    // Answered after the token request that follows the login: the token is in hand.
    client.ping().await.expect("ping");
    (client, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_senders_streaming_and_a_receiver_cut_again_and_again_lose_nothing() {
    const SENDERS: usize = 5;
    const MESSAGES: usize = 400;
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr);
    let (_receiver, mut events) = log_in(proxy.addr(), "receiver", reconnecting()).await;

    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let addr = server.addr;
            tokio::spawn(async move {
                let (client, events) =
                    log_in(addr, &format!("s{s}"), ClientConfig::default()).await;
                // Senders do not read the others' messages: dropping the stream says so.
                drop(events);
                for m in 0..MESSAGES {
                    client
                        .broadcast(&format!("{s}:{m}"))
                        .await
                        .expect("broadcast accepted");
                }
            })
        })
        .collect();

    let mut next: HashMap<String, usize> = HashMap::new();
    let mut received = 0;
    let mut resumes = 0;
    while received < SENDERS * MESSAGES {
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("an event in time")
            .expect("events go on");
        match event {
            Event::Broadcast(message) => {
                let (s, m) = message.text.split_once(':').expect("s:m");
                let m: usize = m.parse().expect("number");
                let expected = next.entry(s.to_owned()).or_default();
                assert_eq!(
                    m, *expected,
                    "sender {s}: message {m} lost, duplicated or reordered"
                );
                *expected += 1;
                received += 1;
                // Cut the receiver's connection every 150 messages.
                if received % 150 == 0 {
                    proxy.cut_all();
                }
            }
            Event::Resumed { .. } => resumes += 1,
            Event::ResumedWithGap { .. } | Event::Reconnected { .. } => {
                panic!("a resume lost messages: {event:?}")
            }
            Event::Disconnected(reason) => panic!("gave up: {reason}"),
            _ => {}
        }
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    assert!(resumes >= 5, "only {resumes} resumes");
    assert!(server.stats.snapshot().resumes >= 5);
    // The senders are gone; the receiver's connection, handed from worker to worker at every
    // resume, is still counted exactly once.
    server
        .until("senders closed", |s| s.snapshot().connections_open == 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_cut_mid_packet_delivers_nothing_half_sent() {
    let server = TestServer::start().await;
    let proxy = FaultProxy::start(server.addr);
    let (sender, _sender_events) = log_in(proxy.addr(), "sender", reconnecting()).await;
    let (_watcher, mut watcher_events) =
        log_in(server.addr, "watcher", ClientConfig::default()).await;

    sender.broadcast("whole").await.expect("sent");
    // Cut the sender's next packet 10 bytes in, in the middle of its text.
    proxy.cut_after_bytes(Direction::ClientToServer, 10);
    let cut = sender.broadcast("this one is cut in half").await;
    assert!(cut.is_err(), "the cut request fails: {cut:?}");
    // After the reconnect the sender goes on.
    sender.broadcast("after").await.expect("sent after resume");

    let mut texts = Vec::new();
    while texts.len() < 2 {
        if let Some(Event::Broadcast(m)) = watcher_events.next().await {
            texts.push(m.text);
        }
    }
    assert_eq!(texts, ["whole", "after"], "nothing half-sent was delivered");
}
