//! [`Store`]: the handle to the database, usable from any tokio runtime.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use crate::config::{Backend, StoreConfig};
use crate::db::Db;
use crate::error::{Error, Result};

/// The storage: accounts, message history, offline whispers and retention, on SQLite or
/// PostgreSQL. Cheap to clone (`Arc`); `Send + Sync`.
///
/// # Where the queries run
///
/// The store owns a small tokio runtime of its own (one thread by default,
/// [`StoreConfig::runtime_threads`]) and every query runs there; each `async` method hands its
/// work to that runtime and waits for the answer. So:
///
/// - the methods can be awaited from any runtime, including the server's single-threaded
///   worker runtimes, and a slow or unreachable database only ever parks the awaiting task:
///   the worker's thread keeps serving other sessions;
/// - connections (sockets registered with one runtime's I/O driver) never move between the
///   server's runtimes, and never depend on a busy worker to be polled;
/// - SQLite itself runs on sqlx's own thread per connection, never on a runtime thread.
///
/// Dropping the caller's future does not cancel the query: it runs to its end on the store's
/// runtime (so, for example, an account is created or not, never half).
///
/// Dropping the last clone shuts that runtime down without waiting. Call [`Store::close`] (after
/// [`HistoryWriter::close`](crate::writer::HistoryWriter::close)) for an orderly shutdown.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    handle: Handle,
    backend: Backend,
    /// Last field, so it is dropped after the pool.
    _runtime: RuntimeGuard,
}

/// Shuts the store's runtime down without blocking, which is allowed inside an async context
/// (dropping a `Runtime` there panics).
struct RuntimeGuard(Option<Runtime>);

impl Drop for RuntimeGuard {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store: starts its runtime, connects (creating the SQLite file and its directory
    /// on first start) and applies the migrations. May be awaited from any tokio runtime.
    ///
    /// Errors: [`Error::InvalidUrl`], [`Error::DataDir`], [`Error::Connect`] (unreachable server,
    /// wrong credentials, unopenable file: within [`StoreConfig::connect_timeout`]),
    /// [`Error::Migration`].
    pub async fn open(config: StoreConfig) -> Result<Store> {
        let guard = RuntimeGuard(Some(build_runtime(&config)?));
        let handle = guard
            .0
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or(Error::Closed)?;
        let connect_config = config.clone();
        let db = join(handle.spawn(async move { Db::connect(&connect_config).await })).await?;
        Ok(Store::assemble(db, handle, config.backend, guard))
    }

    /// [`Store::open`] for code outside any async context (for example `main` before the
    /// server's runtimes start). Panics if called from inside a tokio runtime.
    pub fn open_blocking(config: StoreConfig) -> Result<Store> {
        let runtime = build_runtime(&config)?;
        let db = runtime.block_on(Db::connect(&config))?;
        let handle = runtime.handle().clone();
        Ok(Store::assemble(
            db,
            handle,
            config.backend,
            RuntimeGuard(Some(runtime)),
        ))
    }

    fn assemble(db: Db, handle: Handle, backend: Backend, guard: RuntimeGuard) -> Store {
        Store {
            inner: Arc::new(Inner {
                db,
                handle,
                backend,
                _runtime: guard,
            }),
        }
    }

    /// The backend this store uses.
    pub fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    /// `"sqlite"` or `"postgres"`, for logs and metrics labels.
    pub fn backend_name(&self) -> &'static str {
        match self.inner.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite { .. } => "sqlite",
            #[cfg(feature = "postgres")]
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// Closes the pool: waits for connections in use to come back, then closes them all (SQLite
    /// checkpoints its WAL when the last connection closes). Queries after this fail.
    pub async fn close(&self) {
        // A closed store has nothing to close; ignore `Closed`.
        let _ = self
            .run(|db| async move {
                db.close().await;
                Ok(())
            })
            .await;
    }

    /// Runs `work` with the pool on the store's runtime and waits for its result.
    pub(crate) async fn run<T, F, Fut>(&self, work: F) -> Result<T>
    where
        F: FnOnce(Db) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        join(self.inner.handle.spawn(work(self.inner.db.clone()))).await
    }

    /// Spawns a long-lived task (the history writer) on the store's runtime.
    pub(crate) fn spawn<Fut>(&self, task: impl FnOnce(Db) -> Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        // Detached: the task ends by itself when its channel closes.
        drop(self.inner.handle.spawn(task(self.inner.db.clone())));
    }
}

/// Waits for a task on the store's runtime; a cancelled task means the runtime shut down, and a
/// panic is passed on to the caller.
async fn join<T>(task: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    match task.await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::Closed),
    }
}

fn build_runtime(config: &StoreConfig) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.runtime_threads.max(1))
        .thread_name("suda-store")
        .enable_all()
        .build()
        .map_err(|e| Error::Database(sqlx::Error::Io(e)))
}
