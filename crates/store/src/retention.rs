//! Retention: pruning the history by age and by count, for the server to call periodically.
//!
//! Deletion goes in chunks of [`PRUNE_CHUNK`] rows, one short transaction each, so that a large
//! prune never holds SQLite's single write lock for long: the history writer's commits
//! interleave with it. Times are passed in (Unix ms), never read from the clock here.

use std::time::Duration;

use crate::db::{Db, with_pool};
use crate::error::Result;
use crate::store::Store;

/// Rows deleted per statement (and transaction) when pruning.
pub const PRUNE_CHUNK: i64 = 5_000;

/// What to keep. `None` keeps everything in that respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Delete messages (and pending offline whispers) older than this.
    pub max_age: Option<Duration>,
    /// Keep at most this many messages in total: the newest, by message id. (One global cap,
    /// not one per conversation.)
    pub max_messages: Option<u64>,
}

/// How much one [`Store::apply_retention`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Messages removed for their age.
    pub messages_by_age: u64,
    /// Messages removed by the count cap.
    pub messages_by_count: u64,
    /// Pending offline whispers removed for their age.
    pub pending_by_age: u64,
}

impl Store {
    /// Applies `retention` as of `now_ms` (Unix ms): first the age limit, then the count cap.
    pub async fn apply_retention(&self, retention: Retention, now_ms: i64) -> Result<Pruned> {
        let mut pruned = Pruned::default();
        if let Some(max_age) = retention.max_age {
            let age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
            let cutoff = now_ms.saturating_sub(age_ms);
            pruned.messages_by_age = self.prune_messages_before(cutoff).await?;
            pruned.pending_by_age = self.prune_offline_whispers_before(cutoff).await?;
        }
        if let Some(keep) = retention.max_messages {
            pruned.messages_by_count = self.prune_messages_to(keep).await?;
        }
        Ok(pruned)
    }

    /// Deletes the messages sent before `cutoff_ms` (Unix ms); returns how many.
    pub async fn prune_messages_before(&self, cutoff_ms: i64) -> Result<u64> {
        self.run(move |db| async move {
            delete_in_chunks(&db, |db| async move {
                with_pool!(&db, |pool| {
                    sqlx::query(
                        "DELETE FROM messages WHERE message_id IN \
                         (SELECT message_id FROM messages WHERE sent_at_ms < $1 LIMIT $2)",
                    )
                    .bind(cutoff_ms)
                    .bind(PRUNE_CHUNK)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
                })
            })
            .await
        })
        .await
    }

    /// Deletes all but the newest `keep` messages (by id); returns how many.
    pub async fn prune_messages_to(&self, keep: u64) -> Result<u64> {
        let offset = i64::try_from(keep).unwrap_or(i64::MAX);
        self.run(move |db| async move {
            // The newest message that goes: everything at or below it is deleted. Messages
            // appended meanwhile are newer, so they do not change the answer.
            let newest_doomed: Option<(i64,)> = with_pool!(&db, |pool| {
                sqlx::query_as(
                    "SELECT message_id FROM messages ORDER BY message_id DESC LIMIT 1 OFFSET $1",
                )
                .bind(offset)
                .fetch_optional(pool)
                .await
            })?;
            let Some((newest_doomed,)) = newest_doomed else {
                return Ok(0);
            };
            delete_in_chunks(&db, |db| async move {
                with_pool!(&db, |pool| {
                    sqlx::query(
                        "DELETE FROM messages WHERE message_id IN \
                         (SELECT message_id FROM messages WHERE message_id <= $1 \
                          ORDER BY message_id LIMIT $2)",
                    )
                    .bind(newest_doomed)
                    .bind(PRUNE_CHUNK)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
                })
            })
            .await
        })
        .await
    }

    /// Deletes the pending offline whispers sent before `cutoff_ms`; returns how many.
    pub async fn prune_offline_whispers_before(&self, cutoff_ms: i64) -> Result<u64> {
        self.run(move |db| async move {
            let n = with_pool!(&db, |pool| {
                sqlx::query("DELETE FROM pending_whispers WHERE sent_at_ms < $1")
                    .bind(cutoff_ms)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(n)
        })
        .await
    }

    /// How many messages the history holds.
    pub async fn count_messages(&self) -> Result<u64> {
        self.run(|db| async move {
            let (n,): (i64,) = with_pool!(&db, |pool| {
                sqlx::query_as("SELECT COUNT(*) FROM messages")
                    .fetch_one(pool)
                    .await
            })?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

/// Runs `chunk` until it deletes fewer than [`PRUNE_CHUNK`] rows; returns the total.
async fn delete_in_chunks<F, Fut>(db: &Db, chunk: F) -> Result<u64>
where
    F: Fn(Db) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    loop {
        let n = chunk(db.clone()).await?;
        total += n;
        if n < PRUNE_CHUNK as u64 {
            return Ok(total);
        }
    }
}
