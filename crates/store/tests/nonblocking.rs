//! The storage API suits the server's single-threaded worker runtimes: its handles and futures
//! are `Send`, and a stalled database parks only the task that waits for it.

use std::time::Duration;

use sqlx::Connection;
use suda_store::history::{Channel, HistoryMessage};
use suda_store::password::Hasher;
use suda_store::writer::{Durability, HistoryWriter, WriterConfig};
use suda_store::{Store, StoreConfig};

#[test]
fn handles_and_futures_are_send() {
    fn handle<T: Send + Sync + Clone + 'static>() {}
    handle::<Store>();
    handle::<HistoryWriter>();
    handle::<Hasher>();

    // Never polled: this only has to compile.
    #[allow(dead_code)]
    fn futures(store: &Store, writer: &HistoryWriter, hasher: &Hasher) {
        fn send<T: Send>(_: T) {}
        send(store.account("x"));
        send(store.history(Channel::Global, None, 10));
        send(writer.append(HistoryMessage::broadcast(1, 1, "a", "b")));
        send(writer.flush());
        send(hasher.verify_user(b"pw", None));
        send(Store::open(StoreConfig::sqlite_in("/nonexistent")));
    }
}

#[tokio::test] // A current-thread runtime, like a server worker.
async fn a_locked_database_parks_only_the_waiting_task() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::sqlite_in(dir.path());
    let store = Store::open(config.clone()).await.unwrap();
    let writer = HistoryWriter::spawn(&store, WriterConfig::new(Durability::Strict));

    // Another connection takes SQLite's write lock and keeps it.
    let suda_store::config::Backend::Sqlite { path } = &config.backend else {
        unreachable!()
    };
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();

    // The commit cannot happen while the lock is held: the ticket stays pending…
    let mut ticket = writer
        .append(HistoryMessage::broadcast(1, 1, "a", "stalled"))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut ticket)
            .await
            .is_err()
    );
    // …while this thread goes on running other tasks, and reads still work (WAL readers do not
    // wait for the writer).
    assert_eq!(tokio::spawn(async { 6 * 7 }).await.unwrap(), 42);
    assert_eq!(store.count_messages().await.unwrap(), 0);
    assert!(
        tokio::time::timeout(Duration::ZERO, &mut ticket)
            .await
            .is_err()
    );

    // Release the lock: the batch commits and the ticket resolves.
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut blocker)
        .await
        .unwrap();
    ticket.await.unwrap();
    assert_eq!(store.count_messages().await.unwrap(), 1);
    writer.close().await;
}
