//! Counters and histograms of what the server does, readable while it runs.
//!
//! Each shard has its own [`ShardStats`], written only by its own thread, so counting costs an
//! uncontended relaxed add on a cache line no other core writes. Readers (tests, the metrics
//! endpoint) sum the shards. Per-delivery work is counted once per fan-out, not per recipient.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use suda_protocol::{PacketType, ResultCode};

/// Every packet type, in the order of the per-type counters.
pub(crate) const PACKET_TYPES: [PacketType; 11] = [
    PacketType::LoginReq,
    PacketType::LoginRes,
    PacketType::BroadcastReq,
    PacketType::BroadcastRes,
    PacketType::WhisperReq,
    PacketType::WhisperRes,
    PacketType::Ping,
    PacketType::Pong,
    PacketType::BroadcastNotify,
    PacketType::WhisperNotify,
    PacketType::ErrorNotify,
];

fn type_index(packet_type: PacketType) -> usize {
    PACKET_TYPES
        .iter()
        .position(|&t| t == packet_type)
        .unwrap_or(0)
}

/// Login results counted individually; any other code shares the last slot.
const LOGIN_RESULTS: usize = 11;

/// Why connections end, for the close-reason counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseKind {
    PeerClosed,
    Io,
    Tls,
    ProtocolError,
    LoginTimeout,
    IdleTimeout,
    PacketTimeout,
    WriteTimeout,
    SlowConsumer,
    Flooding,
    Shutdown,
    Logout,
    /// The connection went on to serve a resumed session.
    Resumed,
    /// A server operator kicked or banned the user.
    Moderated,
}

impl CloseKind {
    const ALL: [CloseKind; 14] = [
        Self::PeerClosed,
        Self::Io,
        Self::Tls,
        Self::ProtocolError,
        Self::LoginTimeout,
        Self::IdleTimeout,
        Self::PacketTimeout,
        Self::WriteTimeout,
        Self::SlowConsumer,
        Self::Flooding,
        Self::Shutdown,
        Self::Logout,
        Self::Resumed,
        Self::Moderated,
    ];

    /// The label value in metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::Io => "io_error",
            Self::Tls => "tls_error",
            Self::ProtocolError => "protocol_error",
            Self::LoginTimeout => "login_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::PacketTimeout => "packet_timeout",
            Self::WriteTimeout => "write_timeout",
            Self::SlowConsumer => "slow_consumer",
            Self::Flooding => "flooding",
            Self::Shutdown => "shutdown",
            Self::Logout => "logout",
            Self::Resumed => "resumed_elsewhere",
            Self::Moderated => "moderated",
        }
    }
}

/// A fixed-bucket histogram of relaxed atomics.
#[derive(Debug)]
pub(crate) struct Histogram {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records `value` (in the histogram's unit).
    pub(crate) fn observe(&self, value: f64) {
        let slot = self
            .bounds
            .iter()
            .position(|&bound| value <= bound)
            .unwrap_or(self.bounds.len());
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }
}

/// A histogram summed over shards: cumulative `(upper bound, count)` pairs, the sum, the count.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Cumulative counts per upper bound; the last bound is `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of observed values.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

fn merge<'a>(histograms: impl Iterator<Item = &'a Histogram>) -> HistogramSnapshot {
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let mut sum_micros = 0;
    for h in histograms {
        if buckets.is_empty() {
            buckets = h
                .bounds
                .iter()
                .copied()
                .chain([f64::INFINITY])
                .map(|b| (b, 0))
                .collect();
        }
        for (bucket, count) in buckets.iter_mut().zip(h.counts.iter()) {
            bucket.1 += count.load(Ordering::Relaxed);
        }
        sum_micros += h.sum_micros.load(Ordering::Relaxed);
    }
    let mut running = 0;
    for bucket in &mut buckets {
        running += bucket.1;
        bucket.1 = running;
    }
    HistogramSnapshot {
        buckets,
        sum: sum_micros as f64 / 1e6,
        count: running,
    }
}

/// Upper bounds of the send-queue histogram, in bytes.
const QUEUE_BYTES_BOUNDS: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];
/// Upper bounds of the in-server latency histogram, in seconds.
const DELAY_BOUNDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// One shard's counters.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct ShardStats {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused_busy: AtomicU64,
    pub(crate) connections_refused_per_ip: AtomicU64,
    pub(crate) connections_opened: AtomicU64,
    pub(crate) connections_closed: AtomicU64,
    logins: [AtomicU64; LOGIN_RESULTS],
    pub(crate) broadcasts: AtomicU64,
    pub(crate) whispers: AtomicU64,
    pub(crate) room_messages: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) resumes: AtomicU64,
    pub(crate) resume_gaps: AtomicU64,
    pub(crate) detaches: AtomicU64,
    pub(crate) detach_expiries: AtomicU64,
    /// Sessions that went to sleep (see [`crate::hibernate`]).
    pub(crate) hibernations: AtomicU64,
    /// Hibernating sessions woken.
    pub(crate) awakenings: AtomicU64,
    packets_in: [AtomicU64; PACKET_TYPES.len()],
    packets_out: [AtomicU64; PACKET_TYPES.len()],
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    closes: [AtomicU64; CloseKind::ALL.len()],
    /// Bytes waiting in a session's send queue when a flush starts.
    pub(crate) queue_bytes: Histogram,
    /// Seconds from a message's acceptance to the end of the write that sent it, sampled once
    /// per flush (the oldest message that flush completed).
    pub(crate) delivery_delay: Histogram,
}

impl Default for ShardStats {
    fn default() -> Self {
        Self {
            connections_accepted: AtomicU64::new(0),
            connections_refused_busy: AtomicU64::new(0),
            connections_refused_per_ip: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            logins: Default::default(),
            broadcasts: AtomicU64::new(0),
            whispers: AtomicU64::new(0),
            room_messages: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            resume_gaps: AtomicU64::new(0),
            detaches: AtomicU64::new(0),
            detach_expiries: AtomicU64::new(0),
            hibernations: AtomicU64::new(0),
            awakenings: AtomicU64::new(0),
            packets_in: Default::default(),
            packets_out: Default::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            closes: Default::default(),
            queue_bytes: Histogram::new(QUEUE_BYTES_BOUNDS),
            delivery_delay: Histogram::new(DELAY_BOUNDS),
        }
    }
}

impl ShardStats {
    pub(crate) fn packet_in(&self, packet_type: PacketType) {
        bump(&self.packets_in[type_index(packet_type)], 1);
    }

    pub(crate) fn packets_out(&self, packet_type: PacketType, n: u64) {
        bump(&self.packets_out[type_index(packet_type)], n);
    }

    pub(crate) fn login(&self, result: ResultCode) {
        let slot = usize::from(result.0).min(LOGIN_RESULTS - 1);
        bump(&self.logins[slot], 1);
    }

    pub(crate) fn closed(&self, kind: CloseKind) {
        let slot = CloseKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        bump(&self.closes[slot], 1);
    }

    pub(crate) fn delay(&self, delay: Duration) {
        self.delivery_delay.observe(delay.as_secs_f64());
    }
}

/// Adds `n` to a counter of the calling thread's own shard.
///
/// A shard's counters are written by its thread alone (other threads only read them, for
/// metrics), so a plain load and store does what a locked read-modify-write would at a fraction
/// of its cost; several of these run per message. A counter that another thread may also write
/// goes through [`bump_shared`], always.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Adds `n` to a counter that threads other than its shard's may write too (a connection's
/// guard is dropped on whichever worker the connection ended, after a resume moved it).
pub(crate) fn bump_shared(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Every shard's counters, read together.
#[derive(Debug, Clone)]
pub(crate) struct AllStats(pub(crate) Arc<[Arc<ShardStats>]>);

/// Running totals since the server started, summed over shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections accepted and served.
    pub connections_accepted: u64,
    /// Connections turned away at the connection limit.
    pub connections_refused_busy: u64,
    /// Connections turned away by a per-address limit.
    pub connections_refused_per_ip: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Successful logins.
    pub logins: u64,
    /// Refused logins.
    pub logins_refused: u64,
    /// Broadcasts accepted.
    pub broadcasts: u64,
    /// Whispers accepted.
    pub whispers: u64,
    /// Room messages accepted.
    pub room_messages: u64,
    /// Chat packets queued to recipients (one broadcast to N others counts N).
    pub deliveries: u64,
    /// Sessions cut off because their send queue passed its limit.
    pub slow_consumer_disconnects: u64,
    /// Connections closed for breaking the protocol.
    pub protocol_errors: u64,
    /// Connections closed by the login, idle, packet or write deadline.
    pub timeouts: u64,
    /// Requests answered `RATE_LIMITED`.
    pub rate_limited: u64,
    /// Sessions disconnected for flooding.
    pub flood_disconnects: u64,
    /// Sessions resumed.
    pub resumes: u64,
    /// Of those, resumed with a gap.
    pub resume_gaps: u64,
    /// Sessions that lost their connection and waited to be resumed.
    pub detaches: u64,
    /// Detached sessions whose grace period ran out.
    pub detach_expiries: u64,
    /// Times a quiet session hibernated (gave up its task until woken).
    pub hibernations: u64,
    /// Sessions hibernating now.
    pub hibernating: u64,
    /// Bytes read from clients (after TLS decryption).
    pub bytes_in: u64,
    /// Bytes written to clients (TLS: ciphertext).
    pub bytes_out: u64,
}

impl AllStats {
    fn sum(&self, field: impl Fn(&ShardStats) -> &AtomicU64) -> u64 {
        self.0
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .sum()
    }

    fn closes(&self, kind: CloseKind) -> u64 {
        let slot = CloseKind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        self.sum(|s| &s.closes[slot])
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let logins: u64 = self.sum(|s| &s.logins[0]);
        let attempts: u64 = (0..LOGIN_RESULTS).map(|i| self.sum(|s| &s.logins[i])).sum();
        StatsSnapshot {
            connections_accepted: self.sum(|s| &s.connections_accepted),
            connections_refused_busy: self.sum(|s| &s.connections_refused_busy),
            connections_refused_per_ip: self.sum(|s| &s.connections_refused_per_ip),
            connections_open: self
                .sum(|s| &s.connections_opened)
                .saturating_sub(self.sum(|s| &s.connections_closed)),
            logins,
            logins_refused: attempts - logins,
            broadcasts: self.sum(|s| &s.broadcasts),
            whispers: self.sum(|s| &s.whispers),
            room_messages: self.sum(|s| &s.room_messages),
            deliveries: self.sum(|s| &s.deliveries),
            slow_consumer_disconnects: self.closes(CloseKind::SlowConsumer),
            protocol_errors: self.closes(CloseKind::ProtocolError),
            timeouts: self.closes(CloseKind::LoginTimeout)
                + self.closes(CloseKind::IdleTimeout)
                + self.closes(CloseKind::PacketTimeout)
                + self.closes(CloseKind::WriteTimeout),
            rate_limited: self.sum(|s| &s.rate_limited),
            flood_disconnects: self.closes(CloseKind::Flooding),
            resumes: self.sum(|s| &s.resumes),
            resume_gaps: self.sum(|s| &s.resume_gaps),
            detaches: self.sum(|s| &s.detaches),
            detach_expiries: self.sum(|s| &s.detach_expiries),
            hibernations: self.sum(|s| &s.hibernations),
            hibernating: self
                .sum(|s| &s.hibernations)
                .saturating_sub(self.sum(|s| &s.awakenings)),
            bytes_in: self.sum(|s| &s.bytes_in),
            bytes_out: self.sum(|s| &s.bytes_out),
        }
    }

    /// Packets in and out by type: `(type, in, out)`.
    pub(crate) fn packets(&self) -> Vec<(PacketType, u64, u64)> {
        PACKET_TYPES
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                (
                    t,
                    self.sum(|s| &s.packets_in[i]),
                    self.sum(|s| &s.packets_out[i]),
                )
            })
            .collect()
    }

    /// Login attempts by result: `(result name, count)`.
    pub(crate) fn logins(&self) -> Vec<(String, u64)> {
        (0..LOGIN_RESULTS)
            .map(|i| {
                let name = if i == LOGIN_RESULTS - 1 {
                    "OTHER".to_owned()
                } else {
                    ResultCode(i as u8)
                        .name()
                        .map_or_else(|| format!("{i}"), str::to_owned)
                };
                (name, self.sum(|s| &s.logins[i]))
            })
            .collect()
    }

    /// Connections closed by reason: `(label, count)`.
    pub(crate) fn closes_by_reason(&self) -> Vec<(&'static str, u64)> {
        CloseKind::ALL
            .iter()
            .map(|&k| (k.label(), self.closes(k)))
            .collect()
    }

    pub(crate) fn queue_bytes(&self) -> HistogramSnapshot {
        merge(self.0.iter().map(|s| &s.queue_bytes))
    }

    pub(crate) fn delivery_delay(&self) -> HistogramSnapshot {
        merge(self.0.iter().map(|s| &s.delivery_delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_merge_cumulatively_across_shards() {
        let a = Arc::new(ShardStats::default());
        let b = Arc::new(ShardStats::default());
        a.queue_bytes.observe(100.0);
        a.queue_bytes.observe(5000.0);
        b.queue_bytes.observe(10_000_000.0);
        let all = AllStats(vec![a, b].into());
        let h = all.queue_bytes();
        assert_eq!(h.count, 3);
        assert_eq!(h.buckets[0], (256.0, 1));
        assert_eq!(h.buckets[3], (16384.0, 2));
        assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 3)));
        assert!((h.sum - 10_005_100.0).abs() < 1.0);
    }

    #[test]
    fn snapshot_derives_totals_from_reasons_and_results() {
        let s = Arc::new(ShardStats::default());
        s.login(ResultCode::OK);
        s.login(ResultCode::NAME_IN_USE);
        s.login(ResultCode(200));
        s.closed(CloseKind::IdleTimeout);
        s.closed(CloseKind::PacketTimeout);
        s.closed(CloseKind::SlowConsumer);
        let all = AllStats(vec![s].into());
        let snap = all.snapshot();
        assert_eq!((snap.logins, snap.logins_refused), (1, 2));
        assert_eq!(snap.timeouts, 2);
        assert_eq!(snap.slow_consumer_disconnects, 1);
        let logins = all.logins();
        assert_eq!(logins[9], ("NAME_IN_USE".to_owned(), 1));
        assert_eq!(logins[10], ("OTHER".to_owned(), 1));
    }
}
