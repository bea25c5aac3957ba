//! Rooms, presence and notices (protocol 1.3) through the real server: the `suda` binary in
//! script mode beside `suda-client` sessions. These need the server side of §13.

mod support;

use std::time::Duration;

use suda_client::{Client, ClientConfig, Event, Events, RoomEventKind, RoomOptions};

use crate::support::{spawn_suda_with_input, start_server};

async fn log_in(addr: std::net::SocketAddr, name: &str) -> (Client, Events) {
    let (client, events) = Client::connect(addr, ClientConfig::default())
        .await
        .expect("connect");
    client.login(name, "").await.expect("login");
    (client, events)
}

/// The next event that is not about the connection, within 10 s.
async fn next_chat(events: &mut Events) -> Event {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on");
        match event {
            Event::Disconnected(reason) => panic!("disconnected: {reason}"),
            Event::RoomChat(_)
            | Event::RoomEvent(_)
            | Event::Presence(_)
            | Event::SystemNotice(_)
            | Event::Broadcast(_)
            | Event::Whisper(_) => return event,
            _ => {}
        }
    }
}

#[tokio::test]
async fn suda_joins_talks_in_and_lists_a_room_created_through_the_library() {
    let (addr, shutdown) = start_server().await;
    let (bob, mut bob_events) = log_in(addr, "bob").await;
    let (carol, _carol_events) = log_in(addr, "carol").await;
    let created = bob
        .create_room("Lobby", &RoomOptions::default().with_topic("rust talk"))
        .await
        .expect("created");
    assert_eq!(created, "Lobby");
    carol.set_status(Some("lunch")).await.expect("away");

    let stdin = "/join #lobby\n/r lobby hello room\n/rooms\n/members lobby\n/who\n/leave lobby\n";
    let child = spawn_suda_with_input(&addr.to_string(), "alice", &[], stdin).await;
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("suda finishes")
        .expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    for expected in [
        "1 room:",
        "  #Lobby (2 members) - rust talk",
        "2 members in #lobby:",
        "  alice",
        "  ~bob",
        "3 users online:",
        "  carol (away: lunch)",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in {stdout}");
    }

    // Bob saw alice come, talk and go, in that order.
    match next_chat(&mut bob_events).await {
        Event::RoomEvent(event) => {
            assert_eq!(
                (event.kind, event.user.as_str()),
                (RoomEventKind::Joined, "alice")
            );
        }
        other => panic!("expected alice joining, got {other:?}"),
    }
    match next_chat(&mut bob_events).await {
        Event::RoomChat(message) => {
            assert_eq!(message.room, "Lobby");
            assert_eq!(message.message.text, "hello room");
        }
        other => panic!("expected alice's message, got {other:?}"),
    }
    match next_chat(&mut bob_events).await {
        Event::RoomEvent(event) => assert_eq!(event.kind, RoomEventKind::Left),
        other => panic!("expected alice leaving, got {other:?}"),
    }
    shutdown.cancel();
}

#[tokio::test]
async fn suda_prints_room_messages_and_watched_presence() {
    let (addr, shutdown) = start_server().await;
    let (bob, mut bob_events) = log_in(addr, "bob").await;
    bob.create_room("dev", &RoomOptions::default())
        .await
        .expect("created");

    let mut child = crate::support::spawn_suda(&addr.to_string(), "alice", &["--wait-secs", "600"]);
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"/watch carol\n/join dev\n")
        .await
        .expect("write");
    // Alice's `joined` reaches bob after her watch is in place (her requests are served in
    // order), so from here on both the room and the watch are live.
    match next_chat(&mut bob_events).await {
        Event::RoomEvent(event) => assert_eq!(event.kind, RoomEventKind::Joined),
        other => panic!("expected alice joining, got {other:?}"),
    }
    bob.room_chat("dev", "welcome").await.expect("sent");
    let (_carol, _carol_events) = log_in(addr, "carol").await;
    drop(stdin);

    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = String::new();
    let mut buf = [0_u8; 4096];
    while !(seen.contains("#dev <bob> welcome") && seen.contains("carol is online")) {
        let read = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(&mut stdout, &mut buf),
        )
        .await
        .expect("output in time")
        .expect("read");
        assert!(read > 0, "suda ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..read]));
    }
    drop(child);
    shutdown.cancel();
}
