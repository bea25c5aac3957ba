//! Abuse limits: token buckets, per-address connection accounting, and login throttling.
//!
//! Everything here takes the current time as an argument, so the policies are tested without
//! sockets or sleeps.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use ipnet::IpNet;
use tokio::time::Instant;

/// A token bucket's settings: `per_second` tokens a second, holding at most `burst`. A rate of
/// zero means unlimited. Kept apart from the bucket's state because every session's bucket
/// of a kind has the same settings (from the config): stored once, not in each session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    per_second: f64,
    burst: f64,
}

impl Rate {
    pub(crate) fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }

    /// Whether this is no limit at all (a rate of zero).
    fn is_unlimited(self) -> bool {
        self.per_second == 0.0
    }
}

/// The state of a token bucket whose settings are a [`Rate`] held elsewhere: every method
/// takes it, and a bucket must always be used with the same one.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn new(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.last = now;
    }

    /// Takes `cost` tokens if there are that many.
    pub(crate) fn try_take(&mut self, rate: Rate, cost: f64, now: Instant) -> bool {
        if rate.is_unlimited() {
            return true;
        }
        self.refill(rate, now);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    /// Refills, then says how many tokens there are (unlimited: infinity).
    pub(crate) fn available(&mut self, rate: Rate, now: Instant) -> f64 {
        if rate.is_unlimited() {
            return f64::INFINITY;
        }
        self.refill(rate, now);
        self.tokens
    }

    /// Takes `cost` tokens that [`TokenBucket::available`] said were there.
    pub(crate) fn take(&mut self, rate: Rate, cost: f64) {
        if !rate.is_unlimited() {
            self.tokens -= cost;
        }
    }

    /// Whether the bucket would be full by `now`, i.e. it remembers nothing worth keeping.
    fn is_full(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        rate.is_unlimited() || self.tokens + elapsed * rate.per_second >= rate.burst
    }
}

/// The settings of a session's chat buckets, from the config: made once, for every session
/// and message.
pub(crate) struct ChatRates {
    pub(crate) messages: Rate,
    pub(crate) bytes: Rate,
    /// Refused requests before a flooding disconnect, forgiven at the message rate.
    pub(crate) strikes: Rate,
}

impl ChatRates {
    pub(crate) fn of(config: &crate::config::Config) -> Self {
        Self {
            messages: Rate::new(config.message_rate, config.message_burst),
            bytes: Rate::new(config.byte_rate, config.byte_burst),
            strikes: Rate::new(
                config.message_rate.max(1.0),
                f64::from(config.flood_strikes).max(1.0),
            ),
        }
    }
}

/// Why a connection was refused by its address's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpRefusal {
    /// Already `max_connections_per_ip` open from this address.
    TooMany,
    /// New connections arrive faster than `connection_rate_per_ip`.
    TooFast,
}

#[derive(Debug)]
struct IpEntry {
    open: u32,
    arrivals: TokenBucket,
}

/// Counts connections per address and paces new ones.
#[derive(Debug)]
pub(crate) struct IpLimits {
    max_open: u32,
    /// New connections an address may open per second, with a burst of twice that.
    arrivals: Rate,
    exempt: Vec<IpNet>,
    entries: DashMap<IpAddr, IpEntry>,
    admissions: AtomicU64,
}

/// How often (in admissions) forgotten addresses are swept from the table.
const SWEEP_EVERY: u64 = 1024;

impl IpLimits {
    pub(crate) fn new(max_open: u32, rate: f64, exempt: Vec<IpNet>) -> Self {
        Self {
            max_open,
            arrivals: Rate::new(rate, (rate * 2.0).max(1.0)),
            exempt,
            entries: DashMap::new(),
            admissions: AtomicU64::new(0),
        }
    }

    /// Whether `ip` is in an exempt network (or no per-address limit is set).
    pub(crate) fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        (self.max_open == 0 && self.arrivals.is_unlimited())
            || self.exempt.iter().any(|net| net.contains(&ip))
    }

    /// Admits a connection from `ip`, or says why not. The guard gives the slot back.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Option<IpGuard>, IpRefusal> {
        if self.is_exempt(ip) {
            return Ok(None);
        }
        let ip = canonical(ip);
        if self.admissions.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.entries
                .retain(|_, entry| entry.open > 0 || !entry.arrivals.is_full(self.arrivals, now));
        }
        let rate = self.arrivals;
        let mut entry = self.entries.entry(ip).or_insert_with(|| IpEntry {
            open: 0,
            arrivals: TokenBucket::new(rate, now),
        });
        if self.max_open != 0 && entry.open >= self.max_open {
            return Err(IpRefusal::TooMany);
        }
        if !entry.arrivals.try_take(rate, 1.0, now) {
            return Err(IpRefusal::TooFast);
        }
        entry.open += 1;
        Ok(Some(IpGuard {
            limits: self.clone(),
            ip,
        }))
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.entries.len()
    }
}

/// One open connection counted against its address.
#[derive(Debug)]
pub(crate) struct IpGuard {
    limits: Arc<IpLimits>,
    ip: IpAddr,
}

impl Drop for IpGuard {
    fn drop(&mut self) {
        if let Some(mut entry) = self.limits.entries.get_mut(&self.ip) {
            entry.open = entry.open.saturating_sub(1);
        }
    }
}

/// An IPv4 address arriving on an IPv6 socket counts as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What a failed login is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ThrottleKey {
    /// The address the attempt came from.
    Ip(IpAddr),
    /// The account (folded username) the attempt was for.
    Account(Box<str>),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Growing delays for logins after failed attempts, per address and per account, so guessing
/// passwords is slow whether the attacker spreads over accounts or over addresses.
#[derive(Debug)]
pub(crate) struct LoginThrottle {
    base: Duration,
    max: Duration,
    failures: DashMap<ThrottleKey, Failures>,
    recorded: AtomicU64,
}

/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(600);

impl LoginThrottle {
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: DashMap::new(),
            recorded: AtomicU64::new(0),
        }
    }

    /// How long to wait before judging a login attempt for these keys.
    pub(crate) fn delay(&self, keys: &[ThrottleKey], now: Instant) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        keys.iter()
            .filter_map(|key| self.failures.get(key).map(|f| *f))
            .filter(|f| now.saturating_duration_since(f.last) < FAILURE_MEMORY)
            .map(|f| {
                let doublings = f.count.saturating_sub(1).min(16);
                self.base.saturating_mul(1 << doublings).min(self.max)
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Records a failed attempt against every key.
    pub(crate) fn failed(&self, keys: &[ThrottleKey], now: Instant) {
        if self.base.is_zero() {
            return;
        }
        if self.recorded.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.failures
                .retain(|_, f| now.saturating_duration_since(f.last) < FAILURE_MEMORY);
        }
        for key in keys {
            let mut entry = self.failures.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.saturating_duration_since(entry.last) >= FAILURE_MEMORY {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
        }
    }

    /// Forgets an account's failures after it logged in.
    pub(crate) fn succeeded(&self, account: &ThrottleKey) {
        self.failures.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let rate = Rate::new(10.0, 5.0);
        let mut bucket = TokenBucket::new(rate, t0);
        for _ in 0..5 {
            assert!(bucket.try_take(rate, 1.0, t0));
        }
        assert!(!bucket.try_take(rate, 1.0, t0));
        assert!(!bucket.try_take(rate, 1.0, t0 + ms(50)));
        assert!(bucket.try_take(rate, 1.0, t0 + ms(100)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert!(bucket.try_take(rate, 1.0, later));
        }
        assert!(!bucket.try_take(rate, 1.0, later));
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let t0 = Instant::now();
        let rate = Rate::new(0.0, 0.0);
        let mut bucket = TokenBucket::new(rate, t0);
        assert!((0..10_000).all(|_| bucket.try_take(rate, 100.0, t0)));
    }

    #[test]
    fn connections_per_address_are_capped_and_released() {
        let limits = Arc::new(IpLimits::new(2, 0.0, vec![]));
        let t0 = Instant::now();
        let ip: IpAddr = "10.1.2.3".parse().expect("ip");
        let a = limits.admit(ip, t0).expect("first");
        let _b = limits.admit(ip, t0).expect("second");
        assert_eq!(limits.admit(ip, t0).err(), Some(IpRefusal::TooMany));
        let other: IpAddr = "10.1.2.4".parse().expect("ip");
        assert!(
            limits.admit(other, t0).is_ok(),
            "other addresses are not affected"
        );
        drop(a);
        assert!(limits.admit(ip, t0).is_ok());
    }

    #[test]
    fn new_connections_are_paced_per_address() {
        let limits = Arc::new(IpLimits::new(0, 5.0, vec![]));
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let guards: Vec<_> = (0..10)
            .map(|_| limits.admit(ip, t0).expect("burst"))
            .collect();
        assert_eq!(limits.admit(ip, t0).err(), Some(IpRefusal::TooFast));
        drop(guards);
        // Closing does not give the arrivals back; time does.
        assert_eq!(limits.admit(ip, t0).err(), Some(IpRefusal::TooFast));
        assert!(limits.admit(ip, t0 + ms(200)).is_ok());
    }

    #[test]
    fn exempt_networks_and_mapped_addresses() {
        let exempt = vec!["127.0.0.0/8".parse().expect("net")];
        let limits = Arc::new(IpLimits::new(1, 1.0, exempt));
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(matches!(
                limits.admit("127.0.0.9".parse().expect("ip"), t0),
                Ok(None)
            ));
        }
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert!(matches!(limits.admit(mapped, t0), Ok(None)));
        let v6: IpAddr = "2001:db8::1".parse().expect("ip");
        let _g = limits.admit(v6, t0).expect("first");
        assert_eq!(limits.admit(v6, t0).err(), Some(IpRefusal::TooMany));
    }

    #[test]
    fn forgotten_addresses_are_swept() {
        let limits = Arc::new(IpLimits::new(0, 100.0, vec![]));
        let t0 = Instant::now();
        for i in 0..SWEEP_EVERY - 1 {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            drop(limits.admit(ip, t0).expect("admitted"));
        }
        let later = t0 + Duration::from_secs(10);
        drop(limits.admit("10.9.9.9".parse().expect("ip"), later));
        assert!(limits.tracked() <= 2, "tracked {}", limits.tracked());
    }

    #[test]
    fn login_delays_grow_per_key_and_reset_on_success() {
        let throttle = LoginThrottle::new(ms(100), ms(1000));
        let t0 = Instant::now();
        let ip = ThrottleKey::Ip("192.0.2.7".parse().expect("ip"));
        let account = ThrottleKey::Account("alice".into());
        let keys = [ip.clone(), account.clone()];
        assert_eq!(throttle.delay(&keys, t0), Duration::ZERO);
        let mut delays = Vec::new();
        for _ in 0..6 {
            throttle.failed(&keys, t0);
            delays.push(throttle.delay(&keys, t0));
        }
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000].map(ms));
        // Another account from the same address is still slowed by the address.
        let other = [ip.clone(), ThrottleKey::Account("bob".into())];
        assert_eq!(throttle.delay(&other, t0), ms(1000));
        // Success clears the account, not the address.
        throttle.succeeded(&account);
        assert_eq!(
            throttle.delay(std::slice::from_ref(&account), t0),
            Duration::ZERO
        );
        assert_eq!(throttle.delay(std::slice::from_ref(&ip), t0), ms(1000));
        // And failures are forgotten in time.
        assert_eq!(throttle.delay(&[ip], t0 + FAILURE_MEMORY), Duration::ZERO);
    }
}
