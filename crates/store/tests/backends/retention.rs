use std::time::Duration;

use suda_store::history::{Channel, HistoryMessage};
use suda_store::offline::PendingWhisper;
use suda_store::retention::{PRUNE_CHUNK, Pruned, Retention};

use crate::TestDb;

const DAY_MS: i64 = 24 * 3600 * 1000;

pub(crate) async fn prune_by_age(db: TestDb) {
    let store = db.open().await;
    let now = 100 * DAY_MS;
    // One message per day, days 81..=100.
    let messages = (81..=100)
        .map(|day| HistoryMessage::broadcast(day, day * DAY_MS, "old", format!("day {day}")))
        .collect();
    store.append_history(messages).await.unwrap();
    store.create_account("bob", "h", 0).await.unwrap();
    for (id, day) in [(1, 85), (2, 95)] {
        let whisper = PendingWhisper {
            message_id: id,
            sent_at_ms: day * DAY_MS,
            sender: "x".into(),
            recipient: "bob".into(),
            text: "t".into(),
        };
        store.store_offline_whisper(whisper, 10).await.unwrap();
    }

    let ten_days = Retention {
        max_age: Some(Duration::from_secs(10 * 24 * 3600)),
        max_messages: None,
    };
    let pruned = store.apply_retention(ten_days, now).await.unwrap();
    // Cut-off: day 90. Days 81..=89 go; day 90 itself stays.
    assert_eq!(
        pruned,
        Pruned {
            messages_by_age: 9,
            messages_by_count: 0,
            pending_by_age: 1
        }
    );
    let left = store.history(Channel::Global, None, 100).await.unwrap();
    assert_eq!(left.first().map(|m| m.message_id), Some(90));
    assert_eq!(left.len(), 11);
    let pending = store.take_offline_whispers("bob").await.unwrap();
    assert_eq!(
        pending.iter().map(|w| w.message_id).collect::<Vec<_>>(),
        [2]
    );

    // Nothing more to do: a second run prunes nothing.
    assert_eq!(
        store.apply_retention(ten_days, now).await.unwrap(),
        Pruned::default()
    );
    // No limits: nothing is pruned.
    assert_eq!(
        store
            .apply_retention(Retention::default(), i64::MAX)
            .await
            .unwrap(),
        Pruned::default()
    );
}

pub(crate) async fn prune_by_count(db: TestDb) {
    let store = db.open().await;
    // More than two deletion chunks' worth, in broadcasts and whispers.
    let total = 2 * PRUNE_CHUNK + 1234;
    for chunk in (1..=total).collect::<Vec<_>>().chunks(4000) {
        let messages = chunk
            .iter()
            .map(|&id| {
                if id % 3 == 0 {
                    HistoryMessage::whisper(id, id, "a", "b", "w")
                } else {
                    HistoryMessage::broadcast(id, id, "a", "b")
                }
            })
            .collect();
        store.append_history(messages).await.unwrap();
    }
    assert_eq!(store.count_messages().await.unwrap(), total as u64);

    let keep_100 = Retention {
        max_age: None,
        max_messages: Some(100),
    };
    let pruned = store.apply_retention(keep_100, 0).await.unwrap();
    assert_eq!(pruned.messages_by_count, total as u64 - 100);
    assert_eq!(store.count_messages().await.unwrap(), 100);
    // The newest 100 ids are the ones kept.
    let global = store.history(Channel::Global, None, 100).await.unwrap();
    assert!(global.iter().all(|m| m.message_id > total - 100));
    let whispers = store
        .history(Channel::Whisper { me: "a", peer: "b" }, None, 100)
        .await
        .unwrap();
    assert_eq!(global.len() + whispers.len(), 100);

    // Under the cap: nothing to do. A cap of zero empties the history.
    assert_eq!(store.prune_messages_to(1000).await.unwrap(), 0);
    assert_eq!(store.prune_messages_to(0).await.unwrap(), 100);
    assert_eq!(store.count_messages().await.unwrap(), 0);
}
