use suda_store::Error;
use suda_store::offline::PendingWhisper;

use crate::TestDb;

fn whisper(id: i64, from: &str, to: &str) -> PendingWhisper {
    PendingWhisper {
        message_id: id,
        sent_at_ms: id * 10,
        sender: from.into(),
        recipient: to.into(),
        text: format!("whisper {id}"),
    }
}

pub(crate) async fn taken_in_order_then_gone(db: TestDb) {
    let store = db.open().await;
    store.create_account("Bob", "h", 0).await.unwrap();
    store.create_account("carol", "h", 0).await.unwrap();
    // Stored out of id order, to names in any case.
    for (id, from, to) in [
        (30, "Alice", "bob"),
        (10, "Alice", "BOB"),
        (20, "Dave", "Bob"),
    ] {
        store
            .store_offline_whisper(whisper(id, from, to), 100)
            .await
            .unwrap();
    }
    store
        .store_offline_whisper(whisper(15, "Alice", "carol"), 100)
        .await
        .unwrap();
    assert_eq!(store.count_offline_whispers("bob").await.unwrap(), 3);

    let taken = store.take_offline_whispers("BOB").await.unwrap();
    let ids: Vec<i64> = taken.iter().map(|w| w.message_id).collect();
    assert_eq!(ids, [10, 20, 30]);
    assert_eq!(taken[1].sender, "Dave");
    assert_eq!(taken[1].recipient, "bob");
    assert_eq!(taken[1].text, "whisper 20");
    assert_eq!(taken[1].sent_at_ms, 200);
    // Taken means deleted; Carol's mailbox is untouched.
    assert!(store.take_offline_whispers("bob").await.unwrap().is_empty());
    assert_eq!(store.count_offline_whispers("bob").await.unwrap(), 0);
    assert_eq!(store.count_offline_whispers("carol").await.unwrap(), 1);
}

pub(crate) async fn unknown_full_duplicate_and_deleted(db: TestDb) {
    let store = db.open().await;
    assert!(matches!(
        store
            .store_offline_whisper(whisper(1, "a", "ghost"), 10)
            .await,
        Err(Error::NotFound)
    ));

    store.create_account("bob", "h", 0).await.unwrap();
    store
        .store_offline_whisper(whisper(1, "a", "bob"), 2)
        .await
        .unwrap();
    store
        .store_offline_whisper(whisper(2, "a", "bob"), 2)
        .await
        .unwrap();
    assert!(matches!(
        store.store_offline_whisper(whisper(3, "a", "bob"), 2).await,
        Err(Error::MailboxFull)
    ));
    // The same message again (a retry) is not an error and not a second copy.
    store
        .store_offline_whisper(whisper(2, "a", "bob"), 2)
        .await
        .unwrap();
    assert_eq!(store.count_offline_whispers("bob").await.unwrap(), 2);

    // The mailbox goes with the account.
    store.delete_account("bob").await.unwrap();
    store.create_account("bob", "h", 1).await.unwrap();
    assert!(store.take_offline_whispers("bob").await.unwrap().is_empty());
}
