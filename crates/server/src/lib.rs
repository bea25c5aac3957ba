//! The suda chat server.
//!
//! Modules, by concern:
//! - [`config`]: settings from defaults, file, environment and flags.
//! - [`server`]: [`Server`] — start the worker shards, run, shut down in two phases.
//! - `listener`: accepting connections within the connection limits.
//! - `limits`: token buckets, per-address connection limits, login throttling.
//! - `shard`: a worker thread's sessions, the fan-out of broadcasts and deliveries between shards.
//! - `session`: one client's state machine and the chat requests (login, broadcast, whisper).
//! - `connection`: the socket side of a session — reads, vectored flushes, polite close.
//! - `metrics`: the Prometheus endpoint.
//! - `outbox`: a session's ordered, byte-capped send queue.
//! - `hibernate`: quiet sessions giving up their task and reactor registration until woken.
//! - `resume`: resume tokens, detached sessions, the replay log.
//! - `rooms`: the room registry and each room's shared state (its fan-out is in `shard`).
//! - `presence`: away statuses and the watch lists behind presence events.
//! - `moderation`: bans and mutes in force, and the moderation log.
//! - `storage`: the store (`suda-store`), the history writer, password hashing, retention.
//! - [`directory`]: who is online and where (a trait; local today, cluster-wide later).
//! - [`auth`]: who may log in: `open`, `registered` (accounts in the store) or `token` (JWT).
//! - [`admin`]: the `suda-server user …` commands on the same store.
//! - [`ids`]: message and session ids unique across restarts and nodes.
//! - [`stats`]: counters readable while the server runs.
//! - [`tls`]: certificates for the TLS listener, reloadable while serving.
//! - `bench_api` (hidden): the fan-out enqueue path, for the criterion benchmarks in `benches/`.
//!
//! `docs/ARCHITECTURE.md` draws the path of a message through these modules.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
#[doc(hidden)]
pub mod bench_api;
pub mod config;
mod connection;
pub mod directory;
mod flush_gate;
mod hibernate;
pub mod ids;
mod limits;
mod listener;
mod metrics;
mod moderation;
mod outbox;
mod presence;
mod resume;
mod rooms;
pub mod server;
mod session;
mod shard;
pub mod stats;
mod storage;
pub mod tls;

pub use config::{Config, Settings};
pub use server::{Server, ServerError, StatsHandle, run};
pub use session::SessionId;
