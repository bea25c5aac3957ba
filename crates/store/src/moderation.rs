//! Server-wide sanctions (user bans, IP bans, mutes) and the moderation log.
//!
//! The server keeps the sanctions in force in memory and checks them there at login and on every
//! message; the store makes them survive a restart. The log is append-only: who did what to
//! whom, and why.

use crate::accounts::found;
use crate::db::with_pool;
use crate::error::Result;
use crate::history::without_nul;
use crate::store::Store;

/// What a sanction forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanctionKind {
    /// A username may not log in.
    UserBan,
    /// An IP address may not log in.
    IpBan,
    /// A username may not send messages.
    Mute,
}

impl SanctionKind {
    fn code(self) -> i16 {
        match self {
            SanctionKind::UserBan => 1,
            SanctionKind::IpBan => 2,
            SanctionKind::Mute => 3,
        }
    }

    fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(SanctionKind::UserBan),
            2 => Some(SanctionKind::IpBan),
            3 => Some(SanctionKind::Mute),
            _ => None,
        }
    }
}

/// A ban or mute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanction {
    /// What it forbids.
    pub kind: SanctionKind,
    /// A folded username, or an IP address in canonical text form.
    pub target: String,
    /// When it ends, Unix ms; `None` until lifted.
    pub expires_at_ms: Option<i64>,
    /// Why, as the operator gave it.
    pub reason: String,
    /// The operator.
    pub actor: String,
    /// When it was imposed, Unix ms.
    pub created_at_ms: i64,
}

/// One entry of the moderation log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationEntry {
    /// When, Unix ms.
    pub at_ms: i64,
    /// Who acted.
    pub actor: String,
    /// What they did (`kick`, `ban`, `room-kick`, …).
    pub action: String,
    /// Whom (a username or an address).
    pub target: String,
    /// In which room, for room moderation.
    pub room: Option<String>,
    /// Why.
    pub reason: String,
}

type SanctionRow = (i16, String, Option<i64>, String, String, i64);

impl Store {
    /// Stores `sanction`, replacing one of the same kind and target.
    pub async fn put_sanction(&self, sanction: &Sanction) -> Result<()> {
        let s = sanction.clone();
        self.run(move |db| async move {
            with_pool!(&db, |pool| {
                sqlx::query(
                    "INSERT INTO bans (kind, target, expires_at_ms, reason, actor, created_at_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kind, target) DO UPDATE SET \
                     expires_at_ms = excluded.expires_at_ms, reason = excluded.reason, \
                     actor = excluded.actor, created_at_ms = excluded.created_at_ms",
                )
                .bind(s.kind.code())
                .bind(&s.target)
                .bind(s.expires_at_ms)
                .bind(without_nul(&s.reason))
                .bind(&s.actor)
                .bind(s.created_at_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
            Ok(())
        })
        .await
    }

    /// Lifts the sanction of `kind` on `target`. [`Error::NotFound`] if there is none.
    pub async fn remove_sanction(&self, kind: SanctionKind, target: &str) -> Result<()> {
        let target = target.to_owned();
        self.run(move |db| async move {
            let done = with_pool!(&db, |pool| {
                sqlx::query("DELETE FROM bans WHERE kind = $1 AND target = $2")
                    .bind(kind.code())
                    .bind(&target)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            found(done)
        })
        .await
    }

    /// Every sanction still in force at `now_ms`; expired ones are deleted on the way.
    pub async fn load_sanctions(&self, now_ms: i64) -> Result<Vec<Sanction>> {
        self.run(move |db| async move {
            with_pool!(&db, |pool| {
                sqlx::query(
                    "DELETE FROM bans WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= $1",
                )
                .bind(now_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
            let rows: Vec<SanctionRow> = with_pool!(&db, |pool| {
                sqlx::query_as(
                    "SELECT kind, target, expires_at_ms, reason, actor, created_at_ms FROM bans \
                     ORDER BY kind, target",
                )
                .fetch_all(pool)
                .await
            })?;
            Ok(rows
                .into_iter()
                .filter_map(
                    |(kind, target, expires_at_ms, reason, actor, created_at_ms)| {
                        Some(Sanction {
                            kind: SanctionKind::from_code(kind)?,
                            target,
                            expires_at_ms,
                            reason,
                            actor,
                            created_at_ms,
                        })
                    },
                )
                .collect())
        })
        .await
    }

    /// Appends `entry` to the moderation log.
    pub async fn log_moderation(&self, entry: &ModerationEntry) -> Result<()> {
        let e = entry.clone();
        self.run(move |db| async move {
            with_pool!(&db, |pool| {
                sqlx::query(
                    "INSERT INTO moderation_log (at_ms, actor, action, target, room, reason) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(e.at_ms)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(e.room.as_deref())
                .bind(without_nul(&e.reason))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
            Ok(())
        })
        .await
    }

    /// The newest `limit` moderation log entries, newest first.
    pub async fn moderation_log(&self, limit: u32) -> Result<Vec<ModerationEntry>> {
        self.run(move |db| async move {
            let rows: Vec<(i64, String, String, String, Option<String>, String)> =
                with_pool!(&db, |pool| {
                    sqlx::query_as(
                        "SELECT at_ms, actor, action, target, room, reason FROM moderation_log \
                         ORDER BY id DESC LIMIT $1",
                    )
                    .bind(i64::from(limit))
                    .fetch_all(pool)
                    .await
                })?;
            Ok(rows
                .into_iter()
                .map(
                    |(at_ms, actor, action, target, room, reason)| ModerationEntry {
                        at_ms,
                        actor,
                        action,
                        target,
                        room,
                        reason,
                    },
                )
                .collect())
        })
        .await
    }
}
