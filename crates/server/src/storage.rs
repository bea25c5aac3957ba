//! The server's use of `suda-store`: opening it from the config, the history writer, password
//! hashing, and the retention task.

use std::sync::Arc;
use std::time::Duration;

use suda_store::password::Hasher;
use suda_store::retention::Retention;
use suda_store::writer::{Durability as WriterDurability, HistoryWriter, WriterConfig};
use suda_store::{Store, StoreConfig};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, Durability, StoreKind};
use crate::ids::unix_time_ms;

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Passwords: 8 to 128 bytes. Short ones fall to guessing; the upper bound keeps one hash cheap
/// enough that a flood of huge passwords cannot be used to burn CPU.
pub(crate) const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Most offline whispers kept per recipient.
pub(crate) const MAX_PENDING_WHISPERS: u32 = 1000;

/// The store and what the server runs on top of it.
#[derive(Debug)]
pub(crate) struct Storage {
    pub(crate) store: Store,
    pub(crate) writer: HistoryWriter,
    pub(crate) hasher: Hasher,
}

impl Storage {
    /// Opens the store the config names (creating an SQLite data directory on first start), or
    /// `None` for `store = none`.
    pub(crate) async fn open(config: &Config) -> Result<Option<Arc<Storage>>, suda_store::Error> {
        let store_config = match config.store {
            StoreKind::None => return Ok(None),
            StoreKind::Sqlite => StoreConfig::sqlite_in(&config.data_dir),
            StoreKind::Postgres => {
                StoreConfig::postgres(config.database_url.clone().unwrap_or_default())
            }
        };
        let store = Store::open(store_config).await?;
        let durability = match config.durability {
            Durability::Strict => WriterDurability::Strict,
            Durability::Batched => WriterDurability::Batched,
        };
        let writer = HistoryWriter::spawn(&store, WriterConfig::new(durability));
        info!(backend = store.backend_name(), ?durability, "store open");
        Ok(Some(Arc::new(Storage {
            store,
            writer,
            hasher: Hasher::with_defaults(),
        })))
    }

    /// Writes everything still queued and closes the store.
    pub(crate) async fn close(&self) {
        self.writer.close().await;
        self.store.close().await;
    }

    /// Prunes the history by the configured age and count, every minute, until `shutdown`.
    pub(crate) async fn run_retention(
        self: Arc<Self>,
        days: u32,
        messages: u64,
        shutdown: CancellationToken,
    ) {
        let retention = Retention {
            max_age: (days > 0).then(|| Duration::from_secs(u64::from(days) * 86_400)),
            max_messages: (messages > 0).then_some(messages),
        };
        if retention.max_age.is_none() && retention.max_messages.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(RETENTION_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now_ms = i64::try_from(unix_time_ms()).unwrap_or(i64::MAX);
            match self.store.apply_retention(retention, now_ms).await {
                Ok(pruned) => info!(?pruned, "retention applied"),
                Err(err) => warn!(%err, "retention failed"),
            }
        }
    }
}
