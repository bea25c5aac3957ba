use suda_store::history::{Channel, HistoryMessage, MAX_HISTORY_LIMIT, MessageKind, Target};

use crate::TestDb;

fn ids(messages: &[HistoryMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.message_id).collect()
}

pub(crate) async fn global_history_is_broadcasts_oldest_first(db: TestDb) {
    let store = db.open().await;
    // Appended out of id order, and mixed with whispers.
    store
        .append_history(vec![
            HistoryMessage::broadcast(30, 3_000, "Carol", "third"),
            HistoryMessage::whisper(15, 1_500, "Alice", "bob", "psst"),
            HistoryMessage::broadcast(10, 1_000, "Alice", "first"),
            HistoryMessage::broadcast(20, 2_000, "Bob", "second"),
        ])
        .await
        .unwrap();
    let global = store.history(Channel::Global, None, 10).await.unwrap();
    assert_eq!(ids(&global), [10, 20, 30]);
    assert_eq!(
        global[0],
        HistoryMessage::broadcast(10, 1_000, "Alice", "first")
    );
    assert_eq!(global[0].kind(), MessageKind::Broadcast);
    assert_eq!(global[0].recipient(), None);
    assert!(global.iter().all(|m| m.target == Target::Broadcast));
}

pub(crate) async fn whispers_are_private_to_the_pair(db: TestDb) {
    let store = db.open().await;
    store
        .append_history(vec![
            HistoryMessage::whisper(1, 10, "Alice", "Bob", "a->b"),
            HistoryMessage::whisper(2, 20, "Bob", "alice", "b->a"),
            HistoryMessage::whisper(3, 30, "Carol", "alice", "c->a"),
            HistoryMessage::whisper(4, 40, "Carol", "bob", "c->b"),
            HistoryMessage::whisper(5, 50, "Alice", "alice", "a->a"),
            HistoryMessage::broadcast(6, 60, "Alice", "everyone"),
            HistoryMessage::whisper(7, 70, "ALICE", "BOB", "A->B"),
        ])
        .await
        .unwrap();
    let pair = |me, peer| {
        let store = store.clone();
        async move {
            ids(&store
                .history(Channel::Whisper { me, peer }, None, 100)
                .await
                .unwrap())
        }
    };
    // Both directions, any case; never Carol's whispers, never broadcasts.
    assert_eq!(pair("alice", "bob").await, [1, 2, 7]);
    assert_eq!(pair("Bob", "ALICE").await, [1, 2, 7]);
    assert_eq!(pair("carol", "alice").await, [3]);
    assert_eq!(pair("carol", "bob").await, [4]);
    assert_eq!(pair("alice", "alice").await, [5]);
    assert_eq!(pair("bob", "bob").await, Vec::<i64>::new());
    assert_eq!(pair("dave", "alice").await, Vec::<i64>::new());

    let whispers = store
        .history(
            Channel::Whisper {
                me: "bob",
                peer: "alice",
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        whispers[1],
        HistoryMessage::whisper(2, 20, "Bob", "alice", "b->a")
    );
    assert_eq!(whispers[0].recipient(), Some("bob"));
    assert_eq!(
        whispers[2].sender, "ALICE",
        "the display name is kept as sent"
    );
    assert_eq!(
        whispers[2].recipient(),
        Some("bob"),
        "the recipient is stored folded"
    );
}

pub(crate) async fn paging_with_before_and_limit(db: TestDb) {
    let store = db.open().await;
    let all: Vec<_> = (1..=250)
        .map(|i| HistoryMessage::broadcast(i, i * 1000, "pager", format!("message {i}")))
        .collect();
    store.append_history(all).await.unwrap();

    let newest = store.history(Channel::Global, None, 100).await.unwrap();
    assert_eq!(ids(&newest), (151..=250).collect::<Vec<_>>());
    let older = store
        .history(Channel::Global, Some(newest[0].message_id), 100)
        .await
        .unwrap();
    assert_eq!(ids(&older), (51..=150).collect::<Vec<_>>());
    let oldest = store
        .history(Channel::Global, Some(older[0].message_id), 100)
        .await
        .unwrap();
    assert_eq!(ids(&oldest), (1..=50).collect::<Vec<_>>());
    assert!(
        store
            .history(Channel::Global, Some(1), 100)
            .await
            .unwrap()
            .is_empty()
    );

    // The limit is capped, and zero asks for nothing.
    let capped = store.history(Channel::Global, None, 1000).await.unwrap();
    assert_eq!(capped.len(), MAX_HISTORY_LIMIT as usize);
    assert!(
        store
            .history(Channel::Global, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let three = store.history(Channel::Global, Some(100), 3).await.unwrap();
    assert_eq!(ids(&three), [97, 98, 99]);
}

pub(crate) async fn duplicates_and_nul_bytes(db: TestDb) {
    let store = db.open().await;
    store
        .append_history(vec![HistoryMessage::broadcast(1, 1, "a", "original")])
        .await
        .unwrap();
    // A retried batch: the id already stored is skipped, the new one goes in.
    store
        .append_history(vec![
            HistoryMessage::broadcast(1, 1, "a", "retry"),
            HistoryMessage::broadcast(2, 2, "a", "nul\0inside"),
        ])
        .await
        .unwrap();
    let stored = store.history(Channel::Global, None, 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].text, "original");
    assert_eq!(stored[1].text, "nul\u{FFFD}inside");
    // Unicode round-trips.
    store
        .append_history(vec![HistoryMessage::broadcast(
            3,
            3,
            "a",
            "수다 🦀 \u{1F600}",
        )])
        .await
        .unwrap();
    let last = store.history(Channel::Global, None, 1).await.unwrap();
    assert_eq!(last[0].text, "수다 🦀 \u{1F600}");
}

pub(crate) async fn what_a_user_received_in_an_id_range(db: TestDb) {
    let store = db.open().await;
    store
        .append_history(vec![
            HistoryMessage::broadcast(1, 10, "Bob", "before the range"),
            HistoryMessage::broadcast(2, 20, "Bob", "to everyone"),
            HistoryMessage::broadcast(3, 30, "ALICE", "alice's own broadcast"),
            HistoryMessage::whisper(4, 40, "Bob", "alice", "bob to alice"),
            HistoryMessage::whisper(5, 50, "Alice", "bob", "alice to bob"),
            HistoryMessage::whisper(6, 60, "Carol", "bob", "carol to bob"),
            HistoryMessage::whisper(7, 70, "alice", "ALICE", "alice to herself"),
            HistoryMessage::broadcast(9, 90, "Carol", "from carol"),
            HistoryMessage::broadcast(12, 120, "Carol", "after the range"),
        ])
        .await
        .unwrap();
    let received = |user: &'static str, first: i64, last: i64, limit: u32| {
        let store = store.clone();
        async move {
            ids(&store
                .received(user, &[], first..=last, limit)
                .await
                .unwrap())
        }
    };
    // Broadcasts by others, whispers to her (her own to herself too); not what she sent
    // (her broadcast, her whisper to bob), not a whisper between others; lowest id first.
    assert_eq!(received("Alice", 2, 11, 100).await, [2, 4, 7, 9]);
    assert_eq!(received("alice", 1, 12, 100).await, [1, 2, 4, 7, 9, 12]);
    assert_eq!(received("bob", 2, 11, 100).await, [3, 5, 6, 9]);
    assert_eq!(received("carol", 2, 11, 100).await, [2, 3]);
    // The limit keeps the lowest ids; an empty range or a zero limit asks for nothing.
    assert_eq!(received("alice", 2, 11, 2).await, [2, 4]);
    assert!(received("alice", 11, 2, 100).await.is_empty());
    assert!(received("alice", 2, 11, 0).await.is_empty());
    // Rows come back whole, with the sender as displayed and the recipient folded.
    let rows = store.received("ALICE", &[], 4..=7, 10).await.unwrap();
    assert_eq!(
        rows,
        [
            HistoryMessage::whisper(4, 40, "Bob", "alice", "bob to alice"),
            HistoryMessage::whisper(7, 70, "alice", "alice", "alice to herself"),
        ]
    );
    assert_eq!(rows[0].kind(), MessageKind::Whisper);

    // Room messages count for the rooms asked for, except the user's own.
    store
        .append_history(vec![
            HistoryMessage::room(8, 80, "Bob", "lobby", "in a room"),
            HistoryMessage::room(10, 100, "Carol", "other", "in a room"),
            HistoryMessage::room(11, 110, "ALICE", "LOBBY", "in a room"),
        ])
        .await
        .unwrap();
    let rooms = ["Lobby".to_owned(), "attic".to_owned()];
    let with_rooms = |first: i64, last: i64, limit: u32| {
        let store = store.clone();
        let rooms = rooms.clone();
        async move {
            ids(&store
                .received("alice", &rooms, first..=last, limit)
                .await
                .unwrap())
        }
    };
    assert_eq!(with_rooms(2, 12, 100).await, [2, 4, 7, 8, 9, 12]);
    assert_eq!(received("alice", 2, 12, 100).await, [2, 4, 7, 9, 12]);
    assert_eq!(with_rooms(2, 11, 4).await, [2, 4, 7, 8]);
    // A room she is not in, and her own lobby message, are not.
    assert_eq!(with_rooms(10, 12, 1).await, [12]);
}
