use suda_store::Store;
use suda_store::migrations::LATEST_VERSION;

use crate::TestDb;

pub(crate) async fn reopening_is_idempotent(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.schema_version().await.unwrap(), LATEST_VERSION);
    store.create_account("Keep", "hash", 1).await.unwrap();
    store.close().await;
    drop(store);

    // A restart: the migrations are recorded, nothing is applied twice, the data is there.
    for _ in 0..2 {
        let again = db.open().await;
        assert_eq!(again.schema_version().await.unwrap(), LATEST_VERSION);
        assert_eq!(again.count_accounts().await.unwrap(), 1);
        again.close().await;
    }
}

pub(crate) async fn concurrent_opens_migrate_once(db: TestDb) {
    // Two servers starting at once on a new database: both open, each version applied once.
    let (a, b) = tokio::join!(Store::open(db.config()), Store::open(db.config()));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.create_account("x", "h", 1).await.unwrap();
    assert!(b.account("X").await.unwrap().is_some());
    assert_eq!(b.schema_version().await.unwrap(), LATEST_VERSION);
}
