//! Counters of what the server has done, readable while it runs.
//!
//! Plain relaxed atomics: they are statistics, not synchronisation. Per-delivery work is counted
//! once per fan-out, not once per recipient, so counting stays off the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

/// Running totals since the server started.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_refused_busy: AtomicU64,
    pub(crate) connections_refused_per_ip: AtomicU64,
    pub(crate) connections_open: AtomicU64,
    pub(crate) logins: AtomicU64,
    pub(crate) logins_refused: AtomicU64,
    pub(crate) broadcasts: AtomicU64,
    pub(crate) whispers: AtomicU64,
    pub(crate) deliveries: AtomicU64,
    pub(crate) slow_consumer_disconnects: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) flood_disconnects: AtomicU64,
}

/// A copy of [`Stats`] at one moment.
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
    /// Packets queued to recipients (one broadcast to N others counts N).
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
}

impl Stats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connections_accepted: get(&self.connections_accepted),
            connections_refused_busy: get(&self.connections_refused_busy),
            connections_refused_per_ip: get(&self.connections_refused_per_ip),
            connections_open: get(&self.connections_open),
            logins: get(&self.logins),
            logins_refused: get(&self.logins_refused),
            broadcasts: get(&self.broadcasts),
            whispers: get(&self.whispers),
            deliveries: get(&self.deliveries),
            slow_consumer_disconnects: get(&self.slow_consumer_disconnects),
            protocol_errors: get(&self.protocol_errors),
            timeouts: get(&self.timeouts),
            rate_limited: get(&self.rate_limited),
            flood_disconnects: get(&self.flood_disconnects),
        }
    }
}

/// Adds `n` to a counter.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
