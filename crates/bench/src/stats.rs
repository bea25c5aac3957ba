//! What a run measured: live counters that connection tasks update, and the [`Report`] made
//! from them at the end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Notify;

/// Highest latency the histograms track, in nanoseconds (ten minutes); longer ones are clamped.
const MAX_TRACKED_NS: u64 = 600_000_000_000;
/// Latency histogram shards: each connection records into one, so tasks on different threads
/// rarely wait on the same lock, while memory stays independent of the connection count.
const SHARDS: usize = 16;

/// An empty latency histogram in nanoseconds, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("static histogram bounds are valid")
}

/// Counters shared by every connection task of a run.
pub(crate) struct Counters {
    pub(crate) connected: AtomicU64,
    pub(crate) connect_failed: AtomicU64,
    /// Connections that are ready and have not ended yet.
    pub(crate) open: AtomicU64,
    pub(crate) last_ready_ns: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) self_delivered: AtomicU64,
    pub(crate) last_activity_ns: AtomicU64,
    /// Publishers that will send nothing more: all acknowledged, or their connection died.
    pub(crate) publishers_finished: AtomicU64,
    pub(crate) expected: u64,
    /// Wakes the coordinator early: setup progressed, or the run may be complete.
    pub(crate) wake: Notify,
    errors: Mutex<BTreeMap<String, u64>>,
    latency: Vec<Mutex<Histogram<u64>>>,
    /// Connect-and-login latency, one sample per connection.
    pub(crate) login_latency: Mutex<Histogram<u64>>,
}

impl Counters {
    pub(crate) fn new(expected: u64) -> Self {
        Self {
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            open: AtomicU64::new(0),
            last_ready_ns: AtomicU64::new(0),
            published: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            self_delivered: AtomicU64::new(0),
            last_activity_ns: AtomicU64::new(0),
            publishers_finished: AtomicU64::new(0),
            expected,
            wake: Notify::new(),
            errors: Mutex::new(BTreeMap::new()),
            latency: (0..SHARDS).map(|_| Mutex::new(new_histogram())).collect(),
            login_latency: Mutex::new(new_histogram()),
        }
    }

    /// Tallies one error under `kind`; kinds are few, so a map under a lock is cheap enough.
    pub(crate) fn error(&self, kind: impl Into<String>) {
        self.error_n(kind, 1);
    }

    /// Counts `n` errors of one kind.
    pub(crate) fn error_n(&self, kind: impl Into<String>, n: u64) {
        if n == 0 {
            return;
        }
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *errors.entry(kind.into()).or_default() += n;
    }

    /// Records a batch of delivery latencies (nanoseconds) from connection `conn`.
    pub(crate) fn record_latencies(&self, conn: usize, samples: &[u64]) {
        if samples.is_empty() {
            return;
        }
        let mut histogram = self.latency[conn % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for &ns in samples {
            histogram.saturating_record(ns.max(1));
        }
    }

    /// Adds `count` deliveries that arrived at `now_ns`.
    pub(crate) fn delivered(&self, count: u64, now_ns: u64) {
        if count == 0 {
            return;
        }
        self.last_activity_ns.fetch_max(now_ns, Ordering::Relaxed);
        let before = self.delivered.fetch_add(count, Ordering::Relaxed);
        if before < self.expected && before + count >= self.expected {
            self.wake.notify_one();
        }
    }

    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every shard's latencies merged.
    pub(crate) fn latency(&self) -> Histogram<u64> {
        let mut merged = new_histogram();
        for shard in &self.latency {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds on both sides, so adding cannot fail.
            let _ = merged.add(&*shard);
        }
        merged
    }
}

/// Deliveries that were expected and did not arrive.
pub fn loss(expected: u64, delivered: u64) -> u64 {
    expected.saturating_sub(delivered)
}

/// Percentiles of one latency histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest sample.
    pub max_us: f64,
}

impl LatencySummary {
    /// Summarises a histogram of nanoseconds.
    pub fn from_histogram(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Self {
            count: histogram.len(),
            mean_us: histogram.mean() / 1_000.0,
            p50_us: us(histogram.value_at_quantile(0.50)),
            p90_us: us(histogram.value_at_quantile(0.90)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
        }
    }
}

/// Throughput in one 100 ms slice of the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimelinePoint {
    /// End of the slice, seconds since the measured phase began.
    pub t_secs: f64,
    /// Deliveries per second within the slice.
    pub deliveries_per_sec: f64,
}

/// What the server process used, read from `/proc`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerUsage {
    /// The server's process id.
    pub pid: u32,
    /// User plus system CPU time during the measured phase.
    pub cpu_secs: Option<f64>,
    /// `cpu_secs` per million deliveries, the cost figure to compare servers by.
    pub cpu_secs_per_million_deliveries: Option<f64>,
    /// Resident memory before the clients connected.
    pub rss_before_bytes: Option<u64>,
    /// Resident memory once they all had connected.
    pub rss_after_bytes: Option<u64>,
    /// `(rss_after - rss_before) / connections`, connect scenario only.
    pub rss_bytes_per_connection: Option<f64>,
    /// `cpu_secs` per session opened, in milliseconds: the cost of a login (`connect` and
    /// `login` scenarios).
    pub cpu_ms_per_login: Option<f64>,
}

/// The `login` scenario's setup: registering the accounts its clients log in to. Timed apart
/// from the logins, and only what this run created says anything about registration speed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct AccountSetup {
    /// Accounts this run registered.
    pub created: u64,
    /// Accounts that were there already (an earlier run registered them).
    pub existing: u64,
    /// Registrations that failed; their clients' logins fail too.
    pub failed: u64,
    /// Seconds the registrations took.
    pub secs: f64,
}

impl AccountSetup {
    /// Accounts created per second.
    pub fn registrations_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.created as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// How busy the machine was with other work during the measured phase.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MachineLoad {
    /// CPU seconds the machine had: elapsed time × cores.
    pub capacity_cpu_secs: f64,
    /// CPU seconds used by processes other than the server (when its pid was given) and the
    /// bench. A large share means the figures were disturbed by other work.
    pub other_cpu_secs: f64,
}

impl MachineLoad {
    /// Whether other work took enough of the machine to distort the run (over 10%). Runs too
    /// short for the 10 ms tick of `/proc/stat` to say anything are not judged.
    pub fn disturbed(&self) -> bool {
        self.capacity_cpu_secs >= 0.2 && self.other_cpu_secs / self.capacity_cpu_secs > 0.1
    }
}

/// Everything one run measured; printed as a summary or as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `suda`, `redis` or `nats`.
    pub target: &'static str,
    /// The server's address.
    pub address: String,
    /// `fanout`, `whisper`, `rooms`, `connect` or `login`.
    pub scenario: &'static str,
    /// Simulated clients (over all rooms).
    pub clients: usize,
    /// Rooms the clients are split into, 0 outside the rooms scenario.
    pub rooms: usize,
    /// Clients that publish (over all rooms).
    pub senders: usize,
    /// Messages each sender sends.
    pub messages_per_sender: u64,
    /// Bytes per message payload.
    pub size: usize,
    /// Messages a sender may have unacknowledged.
    pub window: u32,
    /// Aggregate target rate in messages per second, `None` for flat out.
    pub rate: Option<f64>,
    /// TCP connections the run opened (Redis publishers have their own).
    pub connections: u64,
    /// Connections that connected and opened their session.
    pub connected: u64,
    /// Connections that failed to.
    pub connect_errors: u64,
    /// Seconds from the first connect until the last session was open.
    pub connect_secs: f64,
    /// `connected / connect_secs`.
    pub logins_per_sec: f64,
    /// How the `login` scenario's accounts came to exist; `None` in other scenarios.
    pub accounts: Option<AccountSetup>,
    /// Seconds from the start of sending until the last delivery or acknowledgement.
    pub duration_secs: f64,
    /// Messages published.
    pub messages_sent: u64,
    /// Messages the server accepted.
    pub messages_acked: u64,
    /// Messages the server refused.
    pub messages_rejected: u64,
    /// Deliveries a perfect server would have made.
    pub expected_deliveries: u64,
    /// Deliveries that arrived, not counting a client's own messages.
    pub deliveries: u64,
    /// Messages a client received from itself (Redis), which are not counted as deliveries.
    pub self_deliveries: u64,
    /// `expected_deliveries - deliveries`.
    pub loss: u64,
    /// Deliveries per second over `duration_secs`.
    pub deliveries_per_sec: f64,
    /// Accepted messages per second over `duration_secs`.
    pub messages_per_sec: f64,
    /// What `latency` measures: `delivery` (send to receive) or `login` (connect to session).
    pub latency_of: &'static str,
    /// Latency percentiles.
    pub latency: LatencySummary,
    /// Errors of every kind, connect failures included.
    pub errors: u64,
    /// Errors by kind.
    pub error_kinds: BTreeMap<String, u64>,
    /// Whether `--timeout` cut the run short.
    pub timed_out: bool,
    /// Server resource use, when its pid was given.
    pub server: Option<ServerUsage>,
    /// CPU time this bench process used during the measured phase.
    pub bench_cpu_secs: Option<f64>,
    /// Other work on the machine during the measured phase.
    pub machine_load: Option<MachineLoad>,
    /// Throughput over time.
    pub timeline: Vec<TimelinePoint>,
    /// The full latency histogram in nanoseconds, for plots.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

impl Report {
    /// Whether the run counts as failed regardless of loss: any connection or request error.
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_histogram_in_microseconds() {
        let mut histogram = new_histogram();
        for us in 1..=1000u64 {
            histogram.record(us * 1_000).expect("in range");
        }
        let summary = LatencySummary::from_histogram(&histogram);
        assert_eq!(summary.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() / want < 0.002;
        assert!(close(summary.p50_us, 500.0), "{summary:?}");
        assert!(close(summary.p90_us, 900.0), "{summary:?}");
        assert!(close(summary.p99_us, 990.0), "{summary:?}");
        assert!(close(summary.p999_us, 999.0), "{summary:?}");
        assert!(close(summary.max_us, 1000.0), "{summary:?}");
        assert!(close(summary.mean_us, 500.5), "{summary:?}");
    }

    #[test]
    fn an_empty_histogram_summarises_to_zeros() {
        assert_eq!(
            LatencySummary::from_histogram(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn loss_is_what_did_not_arrive_and_never_negative() {
        assert_eq!(loss(1000, 1000), 0);
        assert_eq!(loss(1000, 990), 10);
        assert_eq!(loss(0, 0), 0);
        assert_eq!(loss(10, 12), 0);
    }

    #[test]
    fn shards_merge_and_out_of_range_samples_are_clamped() {
        let counters = Counters::new(10);
        counters.record_latencies(0, &[1_000, 2_000]);
        counters.record_latencies(5, &[0, u64::MAX]);
        let merged = counters.latency();
        assert_eq!(merged.len(), 4);
        assert!(merged.max() >= MAX_TRACKED_NS / 2);
        assert!(merged.min() <= 1);
    }

    #[test]
    fn completion_wakes_the_coordinator_once() {
        let counters = Counters::new(5);
        counters.delivered(3, 10);
        counters.delivered(2, 20);
        counters.delivered(1, 15);
        assert_eq!(counters.delivered.load(Ordering::Relaxed), 6);
        assert_eq!(counters.last_activity_ns.load(Ordering::Relaxed), 20);
        counters.error("x");
        counters.error("x");
        assert_eq!(counters.errors().get("x"), Some(&2));
    }
}
