use std::sync::Arc;

use suda_store::Error;

use crate::TestDb;

pub(crate) async fn create_get_update_delete(db: TestDb) {
    let store = db.open().await;
    let alice = store
        .create_account("Alice", "hash-1", 1_700_000_000_000)
        .await
        .unwrap();
    assert_eq!(alice.username, "Alice");
    assert_eq!(alice.username_folded, "alice");
    assert_eq!(alice.password_hash, "hash-1");
    assert_eq!(alice.created_at_ms, 1_700_000_000_000);

    // Looked up case-insensitively; shown as typed.
    assert_eq!(store.account("ALICE").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.account("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(store.account("bob").await.unwrap(), None);

    // The folded name is the unique key.
    assert!(matches!(
        store.create_account("aLiCe", "other", 2).await,
        Err(Error::NameTaken)
    ));

    store.set_password_hash("alice", "hash-2").await.unwrap();
    let changed = store.account("Alice").await.unwrap().unwrap();
    assert_eq!(changed.password_hash, "hash-2");
    assert_eq!(changed.id, alice.id);
    assert!(matches!(
        store.set_password_hash("nobody", "x").await,
        Err(Error::NotFound)
    ));

    store.delete_account("ALICE").await.unwrap();
    assert_eq!(store.account("alice").await.unwrap(), None);
    assert!(matches!(
        store.delete_account("alice").await,
        Err(Error::NotFound)
    ));
    // The name is free again.
    store.create_account("alice", "hash-3", 3).await.unwrap();
    assert_eq!(store.count_accounts().await.unwrap(), 1);
}

pub(crate) async fn list_in_pages(db: TestDb) {
    let store = db.open().await;
    // Inserted out of order and in mixed case; listed by folded name.
    let mut names: Vec<String> = (0..25)
        .map(|i| format!("User{:02}", (i * 7) % 25))
        .collect();
    for name in &names {
        store.create_account(name, "h", 0).await.unwrap();
    }
    names.sort_by_key(|n| n.to_ascii_lowercase());

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list_accounts(after.as_deref(), 10).await.unwrap();
        pages += 1;
        seen.extend(page.iter().map(|a| a.username.clone()));
        if page.len() < 10 {
            break;
        }
        after = page.last().map(|a| a.username_folded.clone());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, names);
    assert!(store.list_accounts(None, 0).await.unwrap().is_empty());
}

pub(crate) async fn one_registration_wins_a_race(db: TestDb) {
    let store = db.open().await;
    const RACERS: usize = 16;
    let start = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let (store, start) = (store.clone(), Arc::clone(&start));
            // Different cases of one name, from concurrent tasks (each query runs on the
            // store's runtime and its own pooled connection).
            let name = if i % 2 == 0 { "Racer" } else { "rACER" };
            tokio::spawn(async move {
                start.wait().await;
                store
                    .create_account(name, &format!("hash-{i}"), i as i64)
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(account) => {
                won += 1;
                assert_eq!(account.username_folded, "racer");
            }
            Err(Error::NameTaken) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(won, 1, "exactly one registration wins");
    assert_eq!(store.count_accounts().await.unwrap(), 1);
}
