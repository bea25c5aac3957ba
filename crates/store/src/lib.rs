//! suda's storage layer: accounts, message history and offline whispers, on embedded SQLite
//! (the default: one file in the data directory, WAL mode) or PostgreSQL, behind one API.
//!
//! Everything goes through [`Store`], which runs every query on a small tokio runtime of its
//! own, so the server's single-threaded worker runtimes only ever *await* storage work and a
//! slow database never stalls message fan-out. Database access is sqlx's async API without
//! compile-time-checked macros (no database is needed to build); the schema comes from versioned
//! migrations embedded in the binary and applied by [`Store::open`]. The schema is described in
//! `SCHEMA.md`.
//!
//! Modules:
//!
//! - [`config`]: [`StoreConfig`]: which backend (SQLite file in a data directory, or a
//!   `postgres://` URL), pool size, timeouts.
//! - [`store`]: [`Store`]: opening (connect + migrate), the store's own runtime, closing.
//! - [`accounts`]: register (unique case-insensitively: [`Error::NameTaken`]), look up by
//!   name, change the password hash, delete, list in pages.
//! - [`password`]: Argon2id hashing and verification (PHC strings), and
//!   [`Hasher`](password::Hasher), which runs them on the blocking pool under a concurrency
//!   limit and gives unknown users a dummy verification.
//! - [`history`]: the stored form of broadcasts and whispers, and the history query
//!   (global, or the whispers between two users; paged by message id, oldest first), and
//!   what one user received in a range of message ids (to fill a session resume).
//! - [`writer`]: [`HistoryWriter`](writer::HistoryWriter): group commit of the history from a
//!   bounded queue, with strict (resolve after commit) or batched durability.
//! - [`offline`]: the mailbox of whispers for offline registered users.
//! - [`retention`]: pruning the history by age and by count.
//! - [`rooms`]: persistent rooms and the roles users hold in them.
//! - [`moderation`]: bans, mutes and the moderation log.
//! - [`migrations`]: the embedded, versioned schema migrations.
//! - [`error`]: [`Error`], the variants the server matches on.
//! - `testing` (feature `testing`): `TempPostgres`, a throwaway PostgreSQL server for tests.
//!
//! Cargo features: `sqlite` and `postgres` (both default) select the backends; `testing` adds
//! the test support.

#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!("suda-store needs at least one of the features `sqlite` and `postgres`");

mod db;

pub mod accounts;
pub mod config;
pub mod error;
pub mod history;
pub mod migrations;
pub mod moderation;
pub mod offline;
pub mod password;
pub mod retention;
pub mod rooms;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod writer;

pub use config::StoreConfig;
pub use error::{Error, Result};
pub use store::Store;
