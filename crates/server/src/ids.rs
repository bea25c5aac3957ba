//! Ids that stay unique across restarts and, later, across the nodes of a cluster.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bits of an id that name the node that made it.
pub const NODE_BITS: u32 = 10;
/// Largest valid node id.
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;
/// Bits of the counter below the millisecond timestamp: ids per millisecond before the counter
/// borrows from the next millisecond.
const SEQUENCE_BITS: u32 = 12;

/// Makes ids of the form `(counter << 10) | node_id`, where `counter` starts at the Unix time in
/// milliseconds shifted left by 12 and only ever increases.
///
/// Every id is larger than the one before it in this process, and larger than any id made before
/// a restart as long as the clock has not gone back by more than the ids borrowed from the future
/// (4,096 per millisecond); the node bits keep nodes of one cluster apart without coordination.
/// Ids fit in 63 bits, so they are also valid signed 64-bit integers for SQL databases.
#[derive(Debug)]
pub struct IdGenerator {
    node_id: u64,
    last_counter: AtomicU64,
}

impl IdGenerator {
    /// A generator for `node_id`, which must be at most [`MAX_NODE_ID`].
    pub fn new(node_id: u16) -> Self {
        assert!(
            node_id <= MAX_NODE_ID,
            "node id {node_id} above {MAX_NODE_ID}"
        );
        Self {
            node_id: u64::from(node_id),
            last_counter: AtomicU64::new(0),
        }
    }

    /// The next id, given the current Unix time in milliseconds.
    pub fn next_at(&self, now_ms: u64) -> u64 {
        let floor = now_ms << SEQUENCE_BITS;
        let mut last = self.last_counter.load(Ordering::Relaxed);
        loop {
            let counter = floor.max(last + 1);
            match self.last_counter.compare_exchange_weak(
                last,
                counter,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (counter << NODE_BITS) | self.node_id,
                Err(actual) => last = actual,
            }
        }
    }

    /// The next id, read against the system clock.
    pub fn next(&self) -> u64 {
        self.next_at(unix_time_ms())
    }
}

/// The current Unix time in milliseconds (0 if the clock is before 1970).
pub fn unix_time_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The Unix time in milliseconds for many messages in a row, from one system clock read per
/// millisecond: every chat message is stamped with it, and a clock read per message showed in
/// profiles. The clock is read once, and its millisecond stands for every instant until the next
/// millisecond begins; an instant outside that window reads the clock again. One per worker
/// (not `Sync`).
#[derive(Debug)]
pub(crate) struct WallClock {
    /// When the clock was read, until when its millisecond holds, and the millisecond.
    cached: Cell<(Instant, Instant, u64)>,
}

impl Default for WallClock {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            cached: Cell::new((now, now, 0)),
        }
    }
}

impl WallClock {
    /// The Unix time in milliseconds at `at`, an instant that has passed.
    pub(crate) fn ms_at(&self, at: Instant) -> u64 {
        let (from, until, ms) = self.cached.get();
        if from <= at && at < until {
            return ms;
        }
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let ms = u64::try_from(wall.as_millis()).unwrap_or(u64::MAX);
        let into_ms = Duration::from_nanos(u64::from(wall.subsec_nanos() % 1_000_000));
        self.cached
            .set((now, now + (Duration::from_millis(1) - into_ms), ms));
        ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_gives_the_millisecond_of_the_instant() {
        let clock = WallClock::default();
        for _ in 0..200_000 {
            let before = unix_time_ms();
            let stamped = clock.ms_at(Instant::now());
            let after = unix_time_ms();
            assert!(
                before <= stamped && stamped <= after,
                "{before} <= {stamped} <= {after}"
            );
        }
    }

    #[test]
    fn ids_increase_even_when_the_clock_stands_still_or_goes_back() {
        let ids = IdGenerator::new(3);
        let a = ids.next_at(1_000);
        let b = ids.next_at(1_000);
        let c = ids.next_at(900);
        let d = ids.next_at(2_000);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        for id in [a, b, c, d] {
            assert_eq!(id & u64::from(MAX_NODE_ID), 3);
        }
        assert_eq!(d >> (NODE_BITS + SEQUENCE_BITS), 2_000);
    }

    #[test]
    fn nodes_never_collide() {
        let one = IdGenerator::new(1);
        let two = IdGenerator::new(2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(one.next_at(5)));
            assert!(seen.insert(two.next_at(5)));
        }
    }

    #[test]
    fn ids_from_many_threads_are_unique() {
        let ids = std::sync::Arc::new(IdGenerator::new(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..10_000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn ids_fit_a_signed_64_bit_column() {
        let ids = IdGenerator::new(MAX_NODE_ID);
        assert!(i64::try_from(ids.next()).is_ok());
    }
}
