use std::time::Duration;

use suda_store::history::{Channel, HistoryMessage};
use suda_store::writer::{Durability, HistoryWriter, TryAppendError, WriteError, WriterConfig};

use crate::TestDb;

fn broadcast(id: i64) -> HistoryMessage {
    HistoryMessage::broadcast(id, id, "writer", format!("message {id}"))
}

/// Long enough that no batch is committed by the timer during a test: commits happen only
/// because a batch is full, or on flush / close.
const NEVER: Duration = Duration::from_secs(3600);

pub(crate) async fn strict_ticket_means_committed(db: TestDb) {
    let store = db.open().await;
    let writer = HistoryWriter::spawn(&store, WriterConfig::new(Durability::Strict));

    // One message: once its ticket resolves, another pool (a "restarted server") sees it.
    let ticket = writer.append(broadcast(1)).await.unwrap();
    ticket.await.unwrap();
    let observer = db.open().await;
    let seen = observer.history(Channel::Global, None, 10).await.unwrap();
    assert_eq!(seen, [broadcast(1)]);

    // Many concurrent senders: every resolved ticket's message is visible.
    let tasks: Vec<_> = (2..=201)
        .map(|id| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.append(broadcast(id)).await.unwrap().await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(observer.count_messages().await.unwrap(), 201);
    let stats = writer.stats();
    assert_eq!(stats.committed, 201);
    assert!(stats.commits >= 2 && stats.commits <= 201, "{stats:?}");
    assert_eq!(stats.failed, 0);
    writer.close().await;
}

pub(crate) async fn batched_close_writes_everything(db: TestDb) {
    let store = db.open().await;
    let config = WriterConfig {
        max_delay: NEVER,
        max_batch: 64,
        ..WriterConfig::new(Durability::Batched)
    };
    let writer = HistoryWriter::spawn(&store, config);
    for id in 1..=500 {
        // Batched: the ticket is ready at once.
        writer.append(broadcast(id)).await.unwrap().await.unwrap();
    }
    writer.close().await;
    assert_eq!(writer.stats().committed, 500);

    let reopened = db.open().await;
    assert_eq!(reopened.count_messages().await.unwrap(), 500);
    let newest = reopened.history(Channel::Global, None, 2).await.unwrap();
    assert_eq!(newest, [broadcast(499), broadcast(500)]);
}

pub(crate) async fn flush_commits_what_came_before(db: TestDb) {
    let store = db.open().await;
    let config = WriterConfig {
        max_delay: NEVER,
        ..WriterConfig::new(Durability::Batched)
    };
    let writer = HistoryWriter::spawn(&store, config);
    let other_handle = writer.clone();
    for id in 1..=10 {
        writer.append(broadcast(id)).await.unwrap().await.unwrap();
    }
    // A flush through another handle covers what every handle appended before it.
    other_handle.flush().await.unwrap();
    assert_eq!(db.open().await.count_messages().await.unwrap(), 10);
    assert_eq!(writer.stats().commits, 1);
    // Nothing pending: a flush is a no-op commit.
    writer.flush().await.unwrap();
    assert_eq!(writer.stats().commits, 1);
    writer.close().await;
}

pub(crate) async fn batches_by_count(db: TestDb) {
    let store = db.open().await;
    let config = WriterConfig {
        max_delay: NEVER,
        max_batch: 100,
        ..WriterConfig::new(Durability::Batched)
    };
    let writer = HistoryWriter::spawn(&store, config);
    for id in 1..=300 {
        writer.append(broadcast(id)).await.unwrap().await.unwrap();
    }
    writer.flush().await.unwrap();
    // The timer never fired: three full batches, three commits.
    let stats = writer.stats();
    assert_eq!((stats.committed, stats.commits), (300, 3), "{stats:?}");
    assert_eq!(store.count_messages().await.unwrap(), 300);
    writer.close().await;
}

pub(crate) async fn closed_writer_refuses(db: TestDb) {
    let store = db.open().await;
    let writer = HistoryWriter::spawn(&store, WriterConfig::new(Durability::Strict));
    writer.append(broadcast(1)).await.unwrap().await.unwrap();
    let clone = writer.clone();
    writer.close().await;
    clone.close().await; // Closing twice just waits.
    assert!(matches!(
        clone.append(broadcast(2)).await,
        Err(WriteError::Closed)
    ));
    match clone.try_append(broadcast(3)) {
        Err(TryAppendError::Closed(message)) => assert_eq!(message, broadcast(3)),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(matches!(clone.flush().await, Err(WriteError::Closed)));
    assert_eq!(store.count_messages().await.unwrap(), 1);
}
