//! Message history: what is stored of each accepted message, and the history query.
//!
//! Messages normally reach the database through the
//! [`HistoryWriter`](crate::writer::HistoryWriter), which batches them;
//! [`Store::append_history`] is the direct path (one transaction per call) that it uses.
//!
//! Every message belongs to one *conversation*, the key the query looks up (`conversation`
//! column, indexed with `message_id`): `global` for broadcasts, `w:<a>:<b>` for the whispers
//! between the folded names `a <= b` (in either direction), and `r:<room>` for rooms. A
//! whisper query therefore returns exactly the messages between the two users it names, never
//! a third user's.

use std::borrow::Cow;

use crate::accounts::fold;
use crate::db::{Db, with_pool};
use crate::error::{Error, Result};
use crate::store::Store;

/// Largest number of messages one [`Store::history`] call returns.
pub const MAX_HISTORY_LIMIT: u32 = 100;

/// The kind of a stored message (`kind` column: 1 broadcast, 2 whisper, 3 room message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// To everyone (`kind = 1`).
    Broadcast,
    /// To one user (`kind = 2`).
    Whisper,
    /// To a room's members (`kind = 3`).
    Room,
}

impl MessageKind {
    /// The value of the `kind` column.
    pub fn code(self) -> i16 {
        match self {
            MessageKind::Broadcast => 1,
            MessageKind::Whisper => 2,
            MessageKind::Room => 3,
        }
    }

    fn from_code(code: i16) -> Option<MessageKind> {
        match code {
            1 => Some(MessageKind::Broadcast),
            2 => Some(MessageKind::Whisper),
            3 => Some(MessageKind::Room),
            _ => None,
        }
    }
}

/// Who a message was for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target {
    /// Everyone: a broadcast.
    Broadcast,
    /// One user: a whisper.
    Whisper {
        /// The recipient's folded name (folded again when stored, so any case works).
        recipient: String,
    },
    /// A room's members.
    Room {
        /// The room's folded name (folded again when stored).
        room: String,
    },
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HistoryMessage {
    /// The server's message id. The server's `u64` ids fit in 63 bits, so they are stored as
    /// `i64` unchanged; the id is the primary key, and storing one id twice keeps the first.
    pub message_id: i64,
    /// When the server accepted the message, Unix milliseconds.
    pub sent_at_ms: i64,
    /// The sender's name as displayed (as typed at login).
    pub sender: String,
    /// Who the message was for.
    pub target: Target,
    /// The text. PostgreSQL `text` cannot hold U+0000, so both backends store it as U+FFFD.
    pub text: String,
}

impl HistoryMessage {
    /// A broadcast.
    pub fn broadcast(
        message_id: i64,
        sent_at_ms: i64,
        sender: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        HistoryMessage {
            message_id,
            sent_at_ms,
            sender: sender.into(),
            target: Target::Broadcast,
            text: text.into(),
        }
    }

    /// A whisper from `sender` to `recipient` (any case; stored folded).
    pub fn whisper(
        message_id: i64,
        sent_at_ms: i64,
        sender: impl Into<String>,
        recipient: &str,
        text: impl Into<String>,
    ) -> Self {
        HistoryMessage {
            message_id,
            sent_at_ms,
            sender: sender.into(),
            target: Target::Whisper {
                recipient: fold(recipient),
            },
            text: text.into(),
        }
    }

    /// A message from `sender` to the members of `room` (any case; stored folded).
    pub fn room(
        message_id: i64,
        sent_at_ms: i64,
        sender: impl Into<String>,
        room: &str,
        text: impl Into<String>,
    ) -> Self {
        HistoryMessage {
            message_id,
            sent_at_ms,
            sender: sender.into(),
            target: Target::Room { room: fold(room) },
            text: text.into(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> MessageKind {
        match self.target {
            Target::Broadcast => MessageKind::Broadcast,
            Target::Whisper { .. } => MessageKind::Whisper,
            Target::Room { .. } => MessageKind::Room,
        }
    }

    /// The recipient's folded name, for a whisper.
    pub fn recipient(&self) -> Option<&str> {
        match &self.target {
            Target::Whisper { recipient } => Some(recipient),
            Target::Broadcast | Target::Room { .. } => None,
        }
    }

    /// The room's folded name, for a room message.
    pub fn room_name(&self) -> Option<&str> {
        match &self.target {
            Target::Room { room } => Some(room),
            Target::Broadcast | Target::Whisper { .. } => None,
        }
    }

    /// The conversation key (see the module documentation).
    fn conversation(&self) -> String {
        match &self.target {
            Target::Broadcast => GLOBAL.to_owned(),
            Target::Whisper { recipient } => whisper_conversation(&self.sender, recipient),
            Target::Room { room } => room_conversation(room),
        }
    }
}

/// Which conversation to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channel<'a> {
    /// All broadcasts.
    Global,
    /// The whispers between `me` and `peer`, both directions (any case). `me == peer` gives the
    /// whispers a user sent to themself.
    Whisper {
        /// The user asking.
        me: &'a str,
        /// The other user.
        peer: &'a str,
    },
    /// The messages of a room.
    Room {
        /// The room (any case).
        room: &'a str,
    },
}

impl Channel<'_> {
    fn conversation(&self) -> String {
        match self {
            Channel::Global => GLOBAL.to_owned(),
            Channel::Whisper { me, peer } => whisper_conversation(me, peer),
            Channel::Room { room } => room_conversation(room),
        }
    }
}

const GLOBAL: &str = "global";

/// `w:<a>:<b>` for the folded names `a <= b`. Names cannot contain `:`, so keys are unambiguous.
fn whisper_conversation(one: &str, other: &str) -> String {
    let (one, other) = (fold(one), fold(other));
    let (low, high) = if one <= other {
        (one, other)
    } else {
        (other, one)
    };
    format!("w:{low}:{high}")
}

/// `r:<room>` for the folded room name. Room names cannot contain `:` either.
fn room_conversation(room: &str) -> String {
    format!("r:{}", fold(room))
}

/// `text` with U+0000 replaced by U+FFFD (PostgreSQL `text` refuses NUL; one bad message must
/// not fail the batch it is in).
pub(crate) fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

type MessageRow = (
    i64,
    i64,
    i16,
    String,
    Option<String>,
    Option<String>,
    String,
);

fn message(
    (message_id, sent_at_ms, kind, sender, recipient, channel, text): MessageRow,
) -> Result<HistoryMessage> {
    let target = match (MessageKind::from_code(kind), recipient, channel) {
        (Some(MessageKind::Broadcast), _, _) => Target::Broadcast,
        (Some(MessageKind::Whisper), Some(recipient), _) => Target::Whisper { recipient },
        (Some(MessageKind::Room), _, Some(room)) => Target::Room { room },
        _ => {
            return Err(Error::Database(sqlx::Error::Decode(
                format!("message {message_id} has kind {kind}, which this version cannot read")
                    .into(),
            )));
        }
    };
    Ok(HistoryMessage {
        message_id,
        sent_at_ms,
        sender,
        target,
        text,
    })
}

impl Store {
    /// Up to `limit` (at most [`MAX_HISTORY_LIMIT`]) messages of `channel` with ids below
    /// `before` (all, if `None`): the newest such messages, returned **oldest first**. To page
    /// back, pass the first (oldest) id of a page as the next `before`.
    pub async fn history(
        &self,
        channel: Channel<'_>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<HistoryMessage>> {
        let conversation = channel.conversation();
        let before = before.unwrap_or(i64::MAX);
        let limit = i64::from(limit.min(MAX_HISTORY_LIMIT));
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.run(move |db| async move {
            let rows: Vec<MessageRow> = with_pool!(&db, |pool| {
                sqlx::query_as(
                    "SELECT message_id, sent_at_ms, kind, sender, recipient, channel, text FROM messages \
                     WHERE conversation = $1 AND message_id < $2 \
                     ORDER BY message_id DESC LIMIT $3",
                )
                .bind(&conversation)
                .bind(before)
                .bind(limit)
                .fetch_all(pool)
                .await
            })?;
            rows.into_iter().rev().map(message).collect()
        })
        .await
    }

    /// Up to `limit` messages that the user `user` (any case) received, or would have received
    /// had they been online, with ids in `ids`, **lowest id first**: broadcasts not sent by them,
    /// whispers to them (from anyone, themself included), and messages of the rooms `rooms`
    /// (room names, folded here as the `r:<room>` keys are) not sent by them. Whispers they
    /// sent are not included: they are not delivered to their sender.
    ///
    /// This is what a resume needs to fill a gap its in-memory replay log no longer covers. The
    /// scan is the primary key's id range, so a narrow range is cheap whatever the table's size.
    /// Rows of a kind this version cannot read (a newer server's) are left out rather than failing
    /// the whole answer; a caller that expected them sees them missing.
    pub async fn received(
        &self,
        user: &str,
        rooms: &[String],
        ids: std::ops::RangeInclusive<i64>,
        limit: u32,
    ) -> Result<Vec<HistoryMessage>> {
        let user = fold(user);
        let rooms: Vec<String> = rooms
            .iter()
            .map(|room| format!("r:{}", fold(room)))
            .collect();
        let (first, last) = ids.into_inner();
        if limit == 0 || first > last {
            return Ok(Vec::new());
        }
        let sql = received_query(rooms.len());
        self.run(move |db| async move {
            let rows: Vec<MessageRow> = with_pool!(&db, |pool| {
                let mut query = sqlx::query_as(&sql)
                    .bind(first)
                    .bind(last)
                    .bind(&user)
                    .bind(i64::from(limit));
                for room in &rooms {
                    query = query.bind(room);
                }
                query.fetch_all(pool).await
            })?;
            Ok(rows
                .into_iter()
                .filter_map(|row| message(row).ok())
                .collect())
        })
        .await
    }

    /// Stores `messages` in one transaction, bypassing the
    /// [`HistoryWriter`](crate::writer::HistoryWriter). Ids already stored are skipped, so a
    /// retried call stores nothing twice.
    pub async fn append_history(&self, messages: Vec<HistoryMessage>) -> Result<()> {
        self.run(move |db| async move { insert(&db, &messages).await })
            .await
    }
}

/// The query of [`Store::received`] for `rooms` room keys (parameters `$5` on). Senders are
/// compared folded: `sender` holds the name as displayed. Usernames are ASCII, so `lower` is
/// the same fold on both backends.
fn received_query(rooms: usize) -> String {
    let room_clause = if rooms == 0 {
        String::new()
    } else {
        let keys: Vec<String> = (5..5 + rooms).map(|n| format!("${n}")).collect();
        format!(
            " OR (conversation IN ({}) AND lower(sender) <> $3)",
            keys.join(", ")
        )
    };
    format!(
        "SELECT message_id, sent_at_ms, kind, sender, recipient, channel, text FROM messages \
         WHERE message_id BETWEEN $1 AND $2 \
         AND ((conversation = '{GLOBAL}' AND lower(sender) <> $3) \
              OR (kind = 2 AND recipient = $3){room_clause}) \
         ORDER BY message_id LIMIT $4"
    )
}

/// Inserts `messages` in one transaction (one statement on PostgreSQL).
pub(crate) async fn insert(db: &Db, messages: &[HistoryMessage]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    match db {
        #[cfg(feature = "sqlite")]
        Db::Sqlite(pool) => {
            // Multi-row INSERTs in one transaction. Every statement is a round trip to the
            // connection's worker thread, so rows go in chunks; the chunk sizes are fixed (the
            // largest that fits, then smaller) so only a handful of statement texts exist and
            // all stay in the statement cache.
            let mut tx = pool.begin().await?;
            let mut rest = messages;
            while !rest.is_empty() {
                let size = SQLITE_CHUNKS
                    .iter()
                    .copied()
                    .find(|&size| size <= rest.len())
                    .unwrap_or(1);
                let (chunk, tail) = rest.split_at(size);
                let mut query = sqlx::query(sqlite_insert(size));
                for m in chunk {
                    query = query
                        .bind(m.message_id)
                        .bind(m.sent_at_ms)
                        .bind(m.kind().code())
                        .bind(without_nul(&m.sender).into_owned())
                        .bind(m.recipient().map(|r| without_nul(&fold(r)).into_owned()))
                        .bind(m.room_name().map(fold))
                        .bind(m.conversation())
                        .bind(without_nul(&m.text).into_owned());
                }
                query.execute(&mut *tx).await?;
                rest = tail;
            }
            tx.commit().await?;
        }
        #[cfg(feature = "postgres")]
        Db::Postgres(pool) => {
            // One statement and one round trip for the whole batch: the columns go as arrays.
            let n = messages.len();
            let mut ids = Vec::with_capacity(n);
            let mut sent = Vec::with_capacity(n);
            let mut kinds = Vec::with_capacity(n);
            let mut senders = Vec::with_capacity(n);
            let mut recipients = Vec::with_capacity(n);
            let mut channels = Vec::with_capacity(n);
            let mut conversations = Vec::with_capacity(n);
            let mut texts = Vec::with_capacity(n);
            for m in messages {
                ids.push(m.message_id);
                sent.push(m.sent_at_ms);
                kinds.push(m.kind().code());
                senders.push(without_nul(&m.sender).into_owned());
                recipients.push(m.recipient().map(|r| without_nul(&fold(r)).into_owned()));
                channels.push(m.room_name().map(fold));
                conversations.push(m.conversation());
                texts.push(without_nul(&m.text).into_owned());
            }
            sqlx::query(
                "INSERT INTO messages \
                 (message_id, sent_at_ms, kind, sender, recipient, channel, conversation, text) \
                 SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::smallint[], $4::text[], \
                                      $5::text[], $6::text[], $7::text[], $8::text[]) \
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(ids)
            .bind(sent)
            .bind(kinds)
            .bind(senders)
            .bind(recipients)
            .bind(channels)
            .bind(conversations)
            .bind(texts)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

/// Rows per INSERT statement on SQLite, largest first (7 parameters a row; SQLite allows
/// 32766).
#[cfg(feature = "sqlite")]
const SQLITE_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

/// The SQLite INSERT of `rows` rows (one of [`SQLITE_CHUNKS`]), built once.
#[cfg(feature = "sqlite")]
fn sqlite_insert(rows: usize) -> &'static str {
    use std::sync::OnceLock;
    static TEXTS: [OnceLock<String>; SQLITE_CHUNKS.len()] = [const { OnceLock::new() }; 5];
    let slot = SQLITE_CHUNKS.iter().position(|&n| n == rows).unwrap_or(0);
    TEXTS[slot].get_or_init(|| {
        let rows = SQLITE_CHUNKS[slot];
        // Anonymous `?` parameters: SQLite looks a named one (`$1`) up by walking a list, and
        // sqlx asks for every parameter's name, which made wide statements quadratic.
        let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; rows].join(", ");
        format!(
            "INSERT INTO messages \
             (message_id, sent_at_ms, kind, sender, recipient, channel, conversation, text) \
             VALUES {values} ON CONFLICT (message_id) DO NOTHING"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations() {
        assert_eq!(whisper_conversation("Bob", "alice"), "w:alice:bob");
        assert_eq!(whisper_conversation("alice", "BOB"), "w:alice:bob");
        assert_eq!(whisper_conversation("x", "x"), "w:x:x");
        let m = HistoryMessage::whisper(1, 2, "Carol", "DAVE", "hi");
        assert_eq!(m.recipient(), Some("dave"));
        assert_eq!(m.conversation(), "w:carol:dave");
        assert_eq!(
            Channel::Whisper {
                me: "dave",
                peer: "carol"
            }
            .conversation(),
            m.conversation()
        );
        assert_eq!(
            HistoryMessage::broadcast(1, 2, "a", "b").conversation(),
            "global"
        );
    }

    #[test]
    fn nul_is_replaced() {
        assert_eq!(without_nul("a\0b"), "a\u{FFFD}b");
        assert!(matches!(without_nul("plain"), Cow::Borrowed("plain")));
    }
}
