//! The versioned schema migrations, embedded in the binary and applied by
//! [`Store::open`](crate::Store::open).
//!
//! Each version has one SQL file per backend under `migrations/{sqlite,postgres}/`; both
//! backends always have the same versions (a unit test checks it). sqlx records applied versions
//! with a checksum in `_sqlx_migrations`: a database migrated by a newer suda, or a migration
//! file edited after it was applied, is refused at start-up ([`Error::Migration`]).
//!
//! Migrations are append-only: never edit or renumber one that has been released. The next
//! `SCHEMA.md` describes every version.
//!
//! [`Error::Migration`]: crate::Error::Migration

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use sqlx::error::BoxDynError;

use crate::db::with_pool;
use crate::error::Result;
use crate::store::Store;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// One schema version, in each backend's SQL dialect.
// A build with one backend reads one of the two texts.
#[cfg_attr(not(all(feature = "sqlite", feature = "postgres")), allow(dead_code))]
struct Version {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every version, oldest first.
const VERSIONS: &[Version] = &[
    Version {
        version: 1,
        description: "accounts",
        sqlite: include_str!("../migrations/sqlite/0001_accounts.sql"),
        postgres: include_str!("../migrations/postgres/0001_accounts.sql"),
    },
    Version {
        version: 2,
        description: "messages",
        sqlite: include_str!("../migrations/sqlite/0002_messages.sql"),
        postgres: include_str!("../migrations/postgres/0002_messages.sql"),
    },
    Version {
        version: 3,
        description: "pending whispers",
        sqlite: include_str!("../migrations/sqlite/0003_pending_whispers.sql"),
        postgres: include_str!("../migrations/postgres/0003_pending_whispers.sql"),
    },
    Version {
        version: 4,
        description: "rooms",
        sqlite: include_str!("../migrations/sqlite/0004_rooms.sql"),
        postgres: include_str!("../migrations/postgres/0004_rooms.sql"),
    },
    Version {
        version: 5,
        description: "bans",
        sqlite: include_str!("../migrations/sqlite/0005_bans.sql"),
        postgres: include_str!("../migrations/postgres/0005_bans.sql"),
    },
];

/// The newest schema version this build knows.
pub const LATEST_VERSION: i64 = 5;

/// Which dialect to take from [`VERSIONS`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    #[cfg(feature = "sqlite")]
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

/// The embedded migrations of one dialect, as a sqlx [`MigrationSource`].
#[derive(Debug)]
struct Embedded(Dialect);

impl MigrationSource<'static> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 'static>> {
        let migrations = VERSIONS
            .iter()
            .map(|v| {
                let sql = match self.0 {
                    #[cfg(feature = "sqlite")]
                    Dialect::Sqlite => v.sqlite,
                    #[cfg(feature = "postgres")]
                    Dialect::Postgres => v.postgres,
                };
                Migration::new(
                    v.version,
                    Cow::Borrowed(v.description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect();
        Box::pin(std::future::ready(Ok(migrations)))
    }
}

/// The migrator for `dialect`.
pub(crate) async fn migrator(dialect: Dialect) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(dialect)).await
}

impl Store {
    /// The newest schema version applied to the database ([`LATEST_VERSION`] after a successful
    /// [`Store::open`]).
    pub async fn schema_version(&self) -> Result<i64> {
        self.run(|db| async move {
            let (version,): (Option<i64>,) = with_pool!(&db, |pool| {
                sqlx::query_as("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                    .fetch_one(pool)
                    .await
            })?;
            Ok(version.unwrap_or(0))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_dense_and_both_dialects_exist() {
        for (i, v) in VERSIONS.iter().enumerate() {
            assert_eq!(v.version, i as i64 + 1, "versions are 1, 2, 3, …");
            assert!(!v.sqlite.trim().is_empty() && !v.postgres.trim().is_empty());
        }
        assert_eq!(VERSIONS.last().map(|v| v.version), Some(LATEST_VERSION));
    }
}
