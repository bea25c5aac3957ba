//! `suda-bench`, the load generator of suda's performance work.
//!
//! It opens thousands of client connections from one process, speaks the wire protocol directly
//! (through `suda-protocol`, never a high-level client, so the generator stays cheap per
//! connection), and measures deliveries per second, one-way latency, loss, and the server's CPU
//! time per delivery. The same scenarios run against Redis pub/sub and NATS for comparison.
//!
//! Modules:
//! - [`config`]: what to run: [`Target`], [`Scenario`], [`BenchConfig`].
//! - [`payload`]: the send timestamp and sender index every message carries.
//! - `wire`: the `Wire` trait and its three speakers: `suda`, `redis` (RESP) and `nats`.
//! - `connection`: one connection as a task: open, publish within the window, count arrivals.
//! - `coordinator`: plans connections, starts all senders at once, decides when the run is over,
//!   builds the [`Report`].
//! - [`stats`]: shared counters, latency histograms, and the [`Report`].
//! - [`probe`]: CPU time and resident memory of a process from `/proc`.
//! - [`net`]: client sockets spread over loopback source addresses; the open-file limit.
//! - [`output`] and [`plot`]: the summary text and the SVG plot.
//! - `progress`: the progress bar.

#![warn(missing_docs)]

pub mod config;
mod connection;
mod coordinator;
pub mod net;
pub mod output;
pub mod payload;
pub mod plot;
pub mod probe;
mod progress;
pub mod stats;
mod wire;

pub use config::{BenchConfig, Scenario, Target, Traffic};
pub use stats::Report;

/// Why a run could not be made at all (failures during a run are counted in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The settings make no sense.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server process given with `--server-pid` cannot be read.
    #[error("cannot read /proc/{pid} of the server process")]
    Probe {
        /// The pid given.
        pid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plot could not be written.
    #[error("cannot draw the plot: {0}")]
    Plot(String),
}

/// Runs one benchmark and reports what it measured.
///
/// Connection failures, refused messages and disconnects do not make this fail: they are
/// counted in the report, which always comes back once the run ends or hits its timeout.
pub async fn run(config: &BenchConfig) -> Result<Report, BenchError> {
    config.validate()?;
    match config.target {
        Target::Suda(_) => coordinator::run::<wire::suda::Suda>(config).await,
        Target::Redis(_) => coordinator::run::<wire::redis::Redis>(config).await,
        Target::Nats(_) => coordinator::run::<wire::nats::Nats>(config).await,
    }
}
