//! The storage test suite, written once and run against both backends: every test below is a
//! function taking a [`TestDb`], instantiated by `backend_tests!` once for SQLite (a file in a
//! temporary directory) and once for PostgreSQL (a fresh database in the throwaway server of
//! `suda_store::testing::TempPostgres`).
//!
//! The PostgreSQL half fails, with a message naming `scripts/postgres.sh`, when PostgreSQL is
//! not installed; `SUDA_SKIP_POSTGRES=1` skips it explicitly.

mod accounts;
mod history;
mod migrations;
mod moderation;
mod offline;
mod retention;
mod rooms;
mod writer;

use suda_store::testing::{TempPostgres, skip_postgres};
use suda_store::{Store, StoreConfig};

/// One test's database. It can be opened several times, at once or one after the other, to
/// check what another connection (or a restarted server) sees.
pub(crate) struct TestDb {
    config: StoreConfig,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        TestDb {
            config: StoreConfig::sqlite_in(dir.path().join("data")),
            _dir: Some(dir),
        }
    }

    /// `None` when `SUDA_SKIP_POSTGRES=1`; panics when PostgreSQL cannot be started.
    async fn postgres() -> Option<TestDb> {
        if skip_postgres() {
            eprintln!("SUDA_SKIP_POSTGRES=1: skipping this PostgreSQL test");
            return None;
        }
        let server = match TempPostgres::shared() {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        };
        let url = server
            .create_database()
            .await
            .expect("creating a test database");
        Some(TestDb {
            config: StoreConfig::postgres(url),
            _dir: None,
        })
    }

    /// Opens (and migrates) the database.
    pub(crate) async fn open(&self) -> Store {
        Store::open(self.config.clone())
            .await
            .expect("open the store")
    }

    /// The configuration, to open it differently.
    pub(crate) fn config(&self) -> StoreConfig {
        self.config.clone()
    }
}

/// `backend_tests!(module::test, …)`: a `#[tokio::test]` per backend for each `async fn
/// test(db: TestDb)`. The tests run on a current-thread runtime, as the server's workers do.
macro_rules! backend_tests {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    crate::$module::$test(crate::TestDb::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(db) = crate::TestDb::postgres().await {
                        crate::$module::$test(db).await;
                    }
                }
            )*
        }
    };
}

backend_tests!(
    migrations::reopening_is_idempotent,
    migrations::concurrent_opens_migrate_once,
    accounts::create_get_update_delete,
    accounts::list_in_pages,
    accounts::one_registration_wins_a_race,
    history::global_history_is_broadcasts_oldest_first,
    history::whispers_are_private_to_the_pair,
    history::paging_with_before_and_limit,
    history::duplicates_and_nul_bytes,
    history::what_a_user_received_in_an_id_range,
    writer::strict_ticket_means_committed,
    writer::batched_close_writes_everything,
    writer::flush_commits_what_came_before,
    writer::batches_by_count,
    writer::closed_writer_refuses,
    offline::taken_in_order_then_gone,
    offline::unknown_full_duplicate_and_deleted,
    retention::prune_by_age,
    retention::prune_by_count,
    rooms::rooms_are_stored_with_their_roles,
    rooms::room_history_is_per_room,
    moderation::sanctions_persist_until_lifted_or_expired,
    moderation::the_moderation_log_keeps_every_action,
);
