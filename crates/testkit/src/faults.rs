//! What the controls of a [`FaultProxy`](crate::FaultProxy) change, shared by the handle and the
//! forwarding tasks, and what they count.
//!
//! Settings and counters live in `watch` channels: a forwarding task reads the settings for each
//! chunk and can wait for one to change (a resume after a pause), and a test can wait for a
//! counter to reach a value instead of sleeping. The cut-after budgets sit behind a mutex that
//! is only ever held to subtract, never across an `.await`.

use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// Which way bytes travel through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client that connected to the proxy, to the upstream server.
    ClientToServer,
    /// From the upstream server back to the client.
    ServerToClient,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Self::ClientToServer => 0,
            Self::ServerToClient => 1,
        }
    }
}

/// How the proxy ends a connection it cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CutStyle {
    /// Close both sockets normally: each peer reads every byte forwarded before the cut, then
    /// end of stream. The default, and the one that makes byte-exact cuts observable.
    #[default]
    Close,
    /// Reset both sockets (`SO_LINGER` 0, so the kernel sends RST): a peer sees "connection reset"
    /// and may lose bytes it had not read yet, as when a network path really breaks.
    Reset,
}

/// What a [`FaultProxy`](crate::FaultProxy) has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted from clients, including refused ones.
    pub accepted: u64,
    /// Connections closed at once because the proxy was refusing
    /// ([`set_refusing`](crate::FaultProxy::set_refusing)).
    pub refused: u64,
    /// Connections for which the upstream server could not be reached; they were closed.
    pub upstream_failures: u64,
    /// Connections being forwarded now.
    pub active: u64,
    /// Connections the proxy cut ([`cut_all`](crate::FaultProxy::cut_all),
    /// [`cut_after_bytes`](crate::FaultProxy::cut_after_bytes)).
    pub cuts: u64,
    /// Bytes forwarded from clients to the server.
    pub client_to_server: u64,
    /// Bytes forwarded from the server to clients.
    pub server_to_client: u64,
}

impl ProxyStats {
    /// Bytes forwarded in `direction`.
    pub fn bytes(&self, direction: Direction) -> u64 {
        match direction {
            Direction::ClientToServer => self.client_to_server,
            Direction::ServerToClient => self.server_to_client,
        }
    }

    fn add_bytes(&mut self, direction: Direction, n: u64) {
        match direction {
            Direction::ClientToServer => self.client_to_server += n,
            Direction::ServerToClient => self.server_to_client += n,
        }
    }
}

/// The settings the controls change.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where new connections are forwarded.
    pub(crate) upstream: SocketAddr,
    /// Latency added to every chunk.
    pub(crate) delay: Duration,
    /// Bytes per second per connection and direction; `None` for no limit.
    pub(crate) throttle: Option<u64>,
    /// Nothing is forwarded while set.
    pub(crate) paused: bool,
    /// New connections are closed at once while set.
    pub(crate) refusing: bool,
    /// How cut connections end.
    pub(crate) cut_style: CutStyle,
}

/// What the handle and the tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: watch::Sender<Settings>,
    pub(crate) stats: watch::Sender<ProxyStats>,
    /// Bumped by `cut_all`; every connection open at that moment ends when it changes.
    pub(crate) cut_all: watch::Sender<u64>,
    /// Bytes each direction may still forward before the connection carrying the last of them
    /// is cut; `None` when no cut is armed.
    budgets: Mutex<[Option<u64>; 2]>,
}

impl Shared {
    pub(crate) fn new(upstream: SocketAddr) -> Self {
        Self {
            settings: watch::Sender::new(Settings {
                upstream,
                delay: Duration::ZERO,
                throttle: None,
                paused: false,
                refusing: false,
                cut_style: CutStyle::Close,
            }),
            stats: watch::Sender::new(ProxyStats::default()),
            cut_all: watch::Sender::new(0),
            budgets: Mutex::new([None, None]),
        }
    }

    /// Arms a cut after `n` more bytes in `direction`, replacing any armed before.
    pub(crate) fn arm_cut(&self, direction: Direction, n: u64) {
        self.lock_budgets()[direction.index()] = Some(n);
    }

    /// Of `len` bytes about to be forwarded in `direction`, how many may go, and whether the
    /// connection must be cut right after them (which disarms the cut).
    pub(crate) fn take_budget(&self, direction: Direction, len: usize) -> (usize, bool) {
        let mut budgets = self.lock_budgets();
        let slot = &mut budgets[direction.index()];
        let Some(left) = *slot else {
            return (len, false);
        };
        let len_u64 = u64::try_from(len).unwrap_or(u64::MAX);
        if len_u64 < left {
            *slot = Some(left - len_u64);
            return (len, false);
        }
        *slot = None;
        // `left <= len`, so it fits in a usize.
        (usize::try_from(left).unwrap_or(len), true)
    }

    /// Counts `n` bytes forwarded in `direction`.
    pub(crate) fn count_bytes(&self, direction: Direction, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.stats
            .send_modify(|stats| stats.add_bytes(direction, n));
    }

    /// Changes the counters, waking whoever waits on them.
    pub(crate) fn count(&self, change: impl FnOnce(&mut ProxyStats)) {
        self.stats.send_modify(change);
    }

    fn lock_budgets(&self) -> std::sync::MutexGuard<'_, [Option<u64>; 2]> {
        // Nothing can panic while the lock is held, so poisoning would not mean broken data.
        self.budgets.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_lets_exactly_n_bytes_through_then_cuts_once() {
        let shared = Shared::new(SocketAddr::from(([127, 0, 0, 1], 1)));
        assert_eq!(
            shared.take_budget(Direction::ClientToServer, 100),
            (100, false)
        );
        shared.arm_cut(Direction::ServerToClient, 10);
        // The other direction is not affected.
        assert_eq!(
            shared.take_budget(Direction::ClientToServer, 100),
            (100, false)
        );
        assert_eq!(shared.take_budget(Direction::ServerToClient, 4), (4, false));
        assert_eq!(shared.take_budget(Direction::ServerToClient, 9), (6, true));
        // Disarmed after it fired.
        assert_eq!(shared.take_budget(Direction::ServerToClient, 9), (9, false));
        // Exactly the budget: all of it goes, then the cut.
        shared.arm_cut(Direction::ServerToClient, 3);
        assert_eq!(shared.take_budget(Direction::ServerToClient, 3), (3, true));
        shared.arm_cut(Direction::ServerToClient, 0);
        assert_eq!(shared.take_budget(Direction::ServerToClient, 5), (0, true));
    }
}
