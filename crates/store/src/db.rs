//! The connection pool of one backend, and how it is opened and migrated.
//!
//! Queries are written once and compiled for each backend with [`with_pool!`]: both dialects take
//! `$1`-style parameters, so most SQL text is shared. Where the dialects differ (the batch insert
//! of the history writer) the code matches on [`Db`] itself.

#[cfg(feature = "sqlite")]
use std::time::Duration;

use crate::config::{Backend, StoreConfig};
#[cfg(feature = "postgres")]
use crate::error::redact_url;
use crate::error::{Error, Result};
use crate::migrations::{self, Dialect};

/// A pool of connections to one backend. Cloning is cheap (the pools are reference-counted).
#[derive(Debug, Clone)]
pub(crate) enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool (`&SqlitePool` or `&PgPool`), so one
/// piece of query code serves both backends.
macro_rules! with_pool {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            $crate::db::Db::Sqlite($pool) => $body,
            #[cfg(feature = "postgres")]
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

impl Db {
    /// Opens the pool described by `config` (creating the SQLite file and its directory if
    /// needed) and applies the migrations.
    pub(crate) async fn connect(config: &StoreConfig) -> Result<Db> {
        let target = config.target();
        let connect_error = |source| Error::Connect {
            target: target.clone(),
            source,
        };
        let (db, dialect) = match &config.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite { path } => {
                use sqlx::sqlite::{
                    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
                };
                prepare_data_dir(path)?;
                let synchronous = match config.sqlite_sync {
                    crate::config::SqliteSync::Full => SqliteSynchronous::Full,
                    crate::config::SqliteSync::Normal => SqliteSynchronous::Normal,
                };
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(synchronous)
                    .foreign_keys(true)
                    .busy_timeout(BUSY_TIMEOUT);
                let deadline = tokio::time::Instant::now() + config.connect_timeout;
                let pool = loop {
                    let opened = SqlitePoolOptions::new()
                        .max_connections(config.max_connections.max(1))
                        .acquire_timeout(config.connect_timeout)
                        .connect_with(options.clone())
                        .await;
                    match opened {
                        Ok(pool) => break pool,
                        // Two servers opening a new database at once race to switch it to WAL,
                        // and SQLite refuses the loser at once instead of waiting on the busy
                        // handler (waiting there could deadlock): try again shortly.
                        Err(err)
                            if is_sqlite_busy(&err) && tokio::time::Instant::now() < deadline =>
                        {
                            tokio::time::sleep(SQLITE_BUSY_RETRY).await;
                        }
                        Err(err) => return Err(connect_error(err)),
                    }
                };
                (Db::Sqlite(pool), Dialect::Sqlite)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres { url } => {
                use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
                let options: PgConnectOptions = url.parse().map_err(|e| Error::InvalidUrl {
                    url: redact_url(url),
                    reason: format!("{e}"),
                })?;
                let options = options.application_name("suda");
                // One direct connection first: a pool retries until its timeout and then
                // reports only "timed out", hiding "connection refused" or "database does not
                // exist".
                use sqlx::Connection;
                let probe = tokio::time::timeout(
                    config.connect_timeout,
                    sqlx::PgConnection::connect_with(&options),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(sqlx::Error::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", config.connect_timeout),
                    )))
                })
                .map_err(connect_error)?;
                let _ = probe.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections.max(1))
                    .acquire_timeout(config.connect_timeout)
                    .connect_lazy_with(options);
                (Db::Postgres(pool), Dialect::Postgres)
            }
        };
        let migrator = migrations::migrator(dialect)
            .await
            .map_err(Error::Migration)?;
        match &db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(pool) => {
                // sqlx takes no lock around SQLite migrations; two processes starting on one new
                // file would both apply version 1. One write transaction around the whole run
                // serialises them (the migrator's own transactions become savepoints in it).
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                // `run_direct` is `run` on a connection: sqlx keeps it public (hidden) because
                // `run(&mut connection)` cannot be proven `Send` ("`Acquire` is not general
                // enough"). Cargo.lock pins sqlx.
                migrator
                    .run_direct(&mut *tx)
                    .await
                    .map_err(Error::Migration)?;
                tx.commit().await?;
            }
            // PostgreSQL: the migrator holds an advisory lock while it runs.
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => migrator.run(pool).await.map_err(Error::Migration)?,
        }
        Ok(db)
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub(crate) async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// How long a SQLite statement waits for another connection's write lock before failing.
#[cfg(feature = "sqlite")]
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait before opening an SQLite database again that another process had locked.
#[cfg(feature = "sqlite")]
const SQLITE_BUSY_RETRY: Duration = Duration::from_millis(20);

/// Whether `err` is SQLite's "database is locked" (`SQLITE_BUSY`, or one of its extended codes).
#[cfg(feature = "sqlite")]
fn is_sqlite_busy(err: &sqlx::Error) -> bool {
    const SQLITE_BUSY: i32 = 5;
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_BUSY),
        _ => false,
    }
}

/// Creates the directory of the SQLite file `path` and checks that it is writable (SQLite's WAL
/// mode creates `-wal` and `-shm` files beside the database), so that a bad data directory gives
/// a clear [`Error::DataDir`] rather than SQLite's "unable to open database file".
#[cfg(feature = "sqlite")]
fn prepare_data_dir(path: &std::path::Path) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let dir_error = |source| Error::DataDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(dir_error)?;
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = dir.join(format!(".suda-write-test-{}-{n}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(dir_error)?;
    std::fs::remove_file(&probe).map_err(dir_error)?;
    Ok(())
}
