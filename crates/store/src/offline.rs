//! Offline whispers: a mailbox per registered user for whispers sent while they were offline,
//! emptied at their next login.
//!
//! Whether the server stores them (`offline_whispers = store`) or answers `USER_NOT_FOUND`
//! (`reject`) is the server's choice; the store provides the mailbox. A mailbox is bounded (the
//! caller passes the cap), entries are deleted when taken, and a deleted account's mailbox goes
//! with it. The whisper also belongs in the history: the server appends it there as for any
//! accepted whisper.

use crate::accounts::fold;
use crate::db::with_pool;
use crate::error::{Error, Result};
use crate::history::without_nul;
use crate::store::Store;

/// A whisper waiting for its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PendingWhisper {
    /// The server's message id (see [`HistoryMessage`](crate::history::HistoryMessage)).
    pub message_id: i64,
    /// When the server accepted it, Unix milliseconds.
    pub sent_at_ms: i64,
    /// The sender's name as displayed.
    pub sender: String,
    /// The recipient's folded name.
    pub recipient: String,
    /// The text (U+0000 stored as U+FFFD).
    pub text: String,
}

type PendingRow = (i64, i64, String, String, String);

impl Store {
    /// Puts `whisper` in its recipient's mailbox, unless the mailbox already holds `max_pending`
    /// whispers.
    ///
    /// Errors: [`Error::NotFound`] if the recipient has no account; [`Error::MailboxFull`] at
    /// the cap. The cap is checked in the same statement as the insert, so on SQLite (one writer
    /// at a time) it is exact; on PostgreSQL concurrent senders may overshoot it by their number.
    /// Storing one message id twice keeps one copy.
    pub async fn store_offline_whisper(
        &self,
        whisper: PendingWhisper,
        max_pending: u32,
    ) -> Result<()> {
        self.run(move |db| async move {
            let recipient = fold(&whisper.recipient);
            let inserted = with_pool!(&db, |pool| {
                sqlx::query(
                    "INSERT INTO pending_whispers (recipient, message_id, sent_at_ms, sender, text) \
                     SELECT $1, $2, $3, $4, $5 \
                     WHERE (SELECT COUNT(*) FROM pending_whispers WHERE recipient = $1) < $6 \
                     ON CONFLICT (recipient, message_id) DO NOTHING",
                )
                .bind(&recipient)
                .bind(whisper.message_id)
                .bind(whisper.sent_at_ms)
                .bind(without_nul(&whisper.sender))
                .bind(without_nul(&whisper.text))
                .bind(i64::from(max_pending))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            });
            match inserted {
                Ok(1) => Ok(()),
                Ok(_) => {
                    // Nothing inserted: a duplicate id (fine) or a full mailbox (tell).
                    let (duplicate,): (bool,) = with_pool!(&db, |pool| {
                        sqlx::query_as(
                            "SELECT EXISTS (SELECT 1 FROM pending_whispers \
                             WHERE recipient = $1 AND message_id = $2)",
                        )
                        .bind(&recipient)
                        .bind(whisper.message_id)
                        .fetch_one(pool)
                        .await
                    })?;
                    if duplicate {
                        Ok(())
                    } else if has_account(&db, &recipient).await? {
                        Err(Error::MailboxFull)
                    } else {
                        Err(Error::NotFound)
                    }
                }
                Err(e) if Error::is_foreign_key_violation(&e) => Err(Error::NotFound),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Takes every whisper waiting for `recipient` (any case), oldest (lowest id) first, and
    /// deletes them in the same statement: a second call returns none of them again.
    pub async fn take_offline_whispers(&self, recipient: &str) -> Result<Vec<PendingWhisper>> {
        let recipient = fold(recipient);
        self.run(move |db| async move {
            let rows: Vec<PendingRow> = with_pool!(&db, |pool| {
                sqlx::query_as(
                    "DELETE FROM pending_whispers WHERE recipient = $1 \
                     RETURNING message_id, sent_at_ms, sender, recipient, text",
                )
                .bind(&recipient)
                .fetch_all(pool)
                .await
            })?;
            let mut whispers: Vec<PendingWhisper> = rows
                .into_iter()
                .map(
                    |(message_id, sent_at_ms, sender, recipient, text)| PendingWhisper {
                        message_id,
                        sent_at_ms,
                        sender,
                        recipient,
                        text,
                    },
                )
                .collect();
            // RETURNING promises no order.
            whispers.sort_by_key(|w| w.message_id);
            Ok(whispers)
        })
        .await
    }

    /// How many whispers wait for `recipient` (any case).
    pub async fn count_offline_whispers(&self, recipient: &str) -> Result<u64> {
        let recipient = fold(recipient);
        self.run(move |db| async move {
            let (n,): (i64,) = with_pool!(&db, |pool| {
                sqlx::query_as("SELECT COUNT(*) FROM pending_whispers WHERE recipient = $1")
                    .bind(&recipient)
                    .fetch_one(pool)
                    .await
            })?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

async fn has_account(db: &crate::db::Db, folded: &str) -> Result<bool> {
    let (exists,): (bool,) = with_pool!(db, |pool| {
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM accounts WHERE username_folded = $1)")
            .bind(folded)
            .fetch_one(pool)
            .await
    })?;
    Ok(exists)
}
