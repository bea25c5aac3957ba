//! Hibernation: idle sessions without a task or a registration in tokio's reactor.
//!
//! Much of what an idle connection costs is not the session's own state but what keeps it
//! waiting: its parked tokio task (a 384-byte cell) and its socket's registration with tokio's
//! reactor (256 bytes, cache-line aligned). A logged-in session that has been quiet for
//! `hibernate_after` gives up both. Its state moves into its shard's session table, and its
//! socket into the worker's own `mio` poll, watched by a thread of the worker's own. Four
//! things wake it: bytes (or a hang-up) on the socket, anything queued to its outbox (a
//! delivery, an ejection, the shutdown), a connection resuming it, and its next deadline.
//! Waking gives it a task and a tokio registration again, so everything a session does is
//! still written as ordinary async code; hibernation only changes where it waits.
//!
//! Which sessions are quiet is decided once per `hibernate_after` by one sweep per worker, not
//! by a timer per session: a session marks itself busy whenever it wakes, and the sweep asks
//! the ones that stayed unmarked to hibernate. The same sweep wakes hibernating sessions whose
//! deadline (the idle timeout) has come, so a deadline fires at most one period late.
//!
//! A session that is woken soon after each hibernation (a delivery every 100 ms, say) would pay
//! a wake-up and another hibernation for every delivery, for memory saved only in between: at
//! one message a session every 100 ms that doubled the server's CPU per delivery. So each
//! session has a [`Patience`]: the quiet periods it must stay quiet before it is asked, one at
//! first, doubled by each hibernation that ends soon and halved by each that lasts.
//!
//! Unix only (a socket moves between the two polls by its file descriptor); elsewhere sessions
//! simply stay awake.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Keys of hibernating sessions that something woke, for their worker's hibernation task.
/// Filled from any thread: a resume may come from another worker.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    keys: Mutex<Vec<usize>>,
    notify: Notify,
    /// The poller thread failed: hibernating sessions are no longer watched.
    #[cfg(unix)]
    failed: std::sync::atomic::AtomicBool,
}

/// Most quiet periods a session must wait before it is asked to hibernate (1.28 s at the default
/// 20 ms).
const MAX_PATIENCE: u8 = 64;
/// A hibernation that ends within this many periods (640 ms at the default) cost more, in
/// wake-up work (four `epoll_ctl`s, a task), than the memory it saved was worth.
const SHORT_SLEEP: u8 = 32;

/// How long one session must be quiet before it is asked to hibernate, learnt from how long its
/// hibernations last; counted in sweeps, by its worker's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Patience {
    /// Quiet sweeps needed: 1 to [`MAX_PATIENCE`].
    needed: u8,
    /// Sweeps in a row the session was quiet while awake, or has slept while hibernating.
    sweeps: u8,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            needed: 1,
            sweeps: 0,
        }
    }
}

impl Patience {
    /// A sweep of an awake session, `busy` if it woke since the last one: whether to ask it to
    /// hibernate now.
    pub(crate) fn awake_sweep(&mut self, busy: bool) -> bool {
        self.sweeps = if busy {
            0
        } else {
            self.sweeps.saturating_add(1)
        };
        self.sweeps >= self.needed
    }

    /// The session hibernated.
    pub(crate) fn fell_asleep(&mut self) {
        self.sweeps = 0;
    }

    /// A sweep of the hibernating session.
    pub(crate) fn asleep_sweep(&mut self) {
        self.sweeps = self.sweeps.saturating_add(1);
    }

    /// The session woke: a short hibernation doubles the patience, a long one halves it.
    pub(crate) fn woke(&mut self) {
        self.needed = if self.sweeps < SHORT_SLEEP {
            self.needed.saturating_mul(2).min(MAX_PATIENCE)
        } else {
            (self.needed / 2).max(1)
        };
        self.sweeps = 0;
    }
}

impl Wakeups {
    /// Wakes the hibernating session `key`.
    pub(crate) fn wake(&self, key: usize) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key);
        self.notify.notify_one();
    }

    /// Wakes every session in `keys`, emptying it.
    #[cfg(unix)]
    fn wake_many(&self, keys: &mut Vec<usize>) {
        if keys.is_empty() {
            return;
        }
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .append(keys);
        self.notify.notify_one();
    }

    /// The keys woken since the last call.
    fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.keys.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Wakes one hibernating session, by its key among its shard's sessions, from any thread: the
/// waker a resume's channel holds while the session it resumes hibernates.
#[derive(Debug)]
pub(crate) struct ParkedWake {
    key: usize,
    wakeups: Arc<Wakeups>,
}

impl std::task::Wake for ParkedWake {
    fn wake(self: Arc<Self>) {
        self.wakeups.wake(self.key);
    }
}

#[cfg(unix)]
pub(crate) use self::poller::{Hibernation, run};

#[cfg(test)]
mod tests {
    use super::*;

    /// Sweeps until the session is asked, counting them.
    fn quiet_sweeps_until_asked(patience: &mut Patience) -> u8 {
        (1..=u8::MAX)
            .find(|_| patience.awake_sweep(false))
            .expect("asked at last")
    }

    fn sleep(patience: &mut Patience, sweeps: u8) {
        patience.fell_asleep();
        for _ in 0..sweeps {
            patience.asleep_sweep();
        }
        patience.woke();
    }

    #[test]
    fn a_new_session_is_asked_after_one_quiet_sweep_and_activity_restarts_the_count() {
        let mut patience = Patience::default();
        assert!(!patience.awake_sweep(true));
        assert!(patience.awake_sweep(false));
        let mut patience = Patience::default();
        sleep(&mut patience, 1);
        assert!(!patience.awake_sweep(false));
        assert!(!patience.awake_sweep(true), "busy: counting starts over");
        assert!(!patience.awake_sweep(false));
        assert!(patience.awake_sweep(false));
    }

    #[test]
    fn short_hibernations_double_the_patience_up_to_its_limit_and_long_ones_halve_it() {
        let mut patience = Patience::default();
        let mut asked_after = Vec::new();
        for _ in 0..8 {
            asked_after.push(quiet_sweeps_until_asked(&mut patience));
            sleep(&mut patience, SHORT_SLEEP - 1);
        }
        assert_eq!(asked_after, [1, 2, 4, 8, 16, 32, 64, 64]);
        sleep(&mut patience, SHORT_SLEEP);
        assert_eq!(quiet_sweeps_until_asked(&mut patience), 32);
        // A sleep longer than the counter holds counts as long.
        for _ in 0..10 {
            sleep(&mut patience, u8::MAX);
        }
        assert_eq!(patience, Patience::default());
    }
}

#[cfg(unix)]
mod poller {
    use std::cell::{Cell, RefCell};
    use std::os::fd::AsRawFd;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::thread::JoinHandle;
    use std::time::Duration;

    use mio::unix::SourceFd;
    use tokio::time::{Instant, MissedTickBehavior};
    use tracing::{debug, warn};

    use super::{ParkedWake, Wakeups};
    use crate::shard::Shard;

    /// Readiness events taken from the poll per call.
    const EVENTS_PER_POLL: usize = 256;
    /// The token of the waker that stops the poller thread; session keys never reach it.
    const STOP: mio::Token = mio::Token(usize::MAX);

    /// One worker's hibernation: where its hibernating sessions' sockets are watched.
    ///
    /// The poll is waited on by a thread of its own, which hands the keys of sessions whose
    /// socket became ready to the worker's hibernation task (see [`run`]). Tokio could watch
    /// the poll's descriptor itself, but only through `unsafe` registration; a thread that
    /// sleeps in `epoll_wait` and wakes only for hibernating sessions costs nothing per message.
    #[derive(Debug)]
    pub(crate) struct Hibernation {
        registry: mio::Registry,
        wakeups: Arc<Wakeups>,
        /// How long a session must be quiet to hibernate; also the sweep's period.
        pub(crate) after: Duration,
        /// False once the hibernation task has ended: from then on sessions stay awake.
        open: Cell<bool>,
        stop: mio::Waker,
        poller: RefCell<Option<JoinHandle<()>>>,
    }

    impl Hibernation {
        /// Hibernation for one worker, with its poller thread running; `None` when `after` is
        /// zero (turned off) or the poll or thread cannot be made (then sessions stay awake).
        pub(crate) fn start(after: Duration, shard_index: usize) -> Option<Self> {
            if after.is_zero() {
                return None;
            }
            match Self::try_start(after, shard_index) {
                Ok(hibernation) => Some(hibernation),
                Err(err) => {
                    warn!(%err, "cannot start hibernation; sessions stay awake");
                    None
                }
            }
        }

        fn try_start(after: Duration, shard_index: usize) -> std::io::Result<Self> {
            let poll = mio::Poll::new()?;
            let registry = poll.registry().try_clone()?;
            let stop = mio::Waker::new(poll.registry(), STOP)?;
            let wakeups = Arc::new(Wakeups::default());
            let poller = std::thread::Builder::new()
                .name(format!("suda-hibernate-{shard_index}"))
                .spawn({
                    let wakeups = wakeups.clone();
                    move || watch(poll, &wakeups)
                })?;
            Ok(Self {
                registry,
                wakeups,
                after,
                open: Cell::new(true),
                stop,
                poller: RefCell::new(Some(poller)),
            })
        }

        /// Whether sessions may hibernate now.
        pub(crate) fn is_open(&self) -> bool {
            self.open.get()
        }

        /// Watches `socket` of the session `key` for readability while it hibernates.
        pub(crate) fn watch(
            &self,
            socket: &std::net::TcpStream,
            key: usize,
        ) -> std::io::Result<()> {
            self.registry.register(
                &mut SourceFd(&socket.as_raw_fd()),
                mio::Token(key),
                mio::Interest::READABLE,
            )
        }

        /// Stops watching `socket`, before it goes back to tokio's reactor.
        pub(crate) fn unwatch(&self, socket: &std::net::TcpStream) {
            // Cannot fail for a socket registered by `watch`; and if it did, the only cost is
            // a spurious wake-up, which waking tolerates.
            let _ = self.registry.deregister(&mut SourceFd(&socket.as_raw_fd()));
        }

        /// What wakes the session `key` from another thread while it hibernates.
        pub(crate) fn wake_for(&self, key: usize) -> ParkedWake {
            ParkedWake {
                key,
                wakeups: self.wakeups.clone(),
            }
        }

        /// Where a hibernating session's outbox reports it woken (with the session's key).
        pub(crate) fn wakeups(&self) -> &Arc<Wakeups> {
            &self.wakeups
        }

        /// Closes hibernation and stops the poller thread.
        fn close(&self) {
            self.open.set(false);
            if let Some(poller) = self.poller.borrow_mut().take() {
                // If the waker cannot be written the thread has already failed and left.
                let _ = self.stop.wake();
                let _ = poller.join();
            }
        }
    }

    impl Drop for Hibernation {
        fn drop(&mut self) {
            self.close();
        }
    }

    /// The poller thread: hands on the keys of sessions whose socket became ready, until
    /// stopped. A failed poll is reported, so that the worker wakes every session.
    fn watch(mut poll: mio::Poll, wakeups: &Wakeups) {
        let mut events = mio::Events::with_capacity(EVENTS_PER_POLL);
        let mut keys = Vec::new();
        loop {
            if let Err(err) = poll.poll(&mut events, None) {
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                warn!(%err, "hibernation poll failed");
                wakeups.failed.store(true, Ordering::Release);
                wakeups.notify.notify_one();
                return;
            }
            let mut stopping = false;
            for event in &events {
                match event.token() {
                    STOP => stopping = true,
                    mio::Token(key) => keys.push(key),
                }
            }
            wakeups.wake_many(&mut keys);
            if stopping {
                return;
            }
        }
    }

    /// The worker's hibernation task: wakes hibernating sessions when their socket, their
    /// outbox or a resume calls for it, and sweeps the sessions once per period (see the
    /// module documentation). Ends once the server shuts down and no session hibernates.
    pub(crate) async fn run(shard: Rc<Shard>) {
        let Some(hibernation) = shard.hibernation.as_ref() else {
            return;
        };
        let wakeups = &hibernation.wakeups;
        let mut sweep = tokio::time::interval(hibernation.after);
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let shutdown = shard.shared.shutdown.clone();
        let mut stopping = false;
        loop {
            tokio::select! {
                biased;
                () = wakeups.notify.notified() => {
                    if wakeups.failed.load(Ordering::Acquire) {
                        // Sessions can no longer be watched: wake every one, hibernate no more.
                        hibernation.close();
                        for key in shard.hibernating_keys() {
                            crate::session::wake_hibernating(&shard, key);
                        }
                        return;
                    }
                    for key in wakeups.take() {
                        crate::session::wake_hibernating(&shard, key);
                    }
                }
                _ = sweep.tick() => {
                    for key in shard.sweep_for_hibernation(Instant::now()) {
                        crate::session::wake_hibernating(&shard, key);
                    }
                }
                () = shutdown.cancelled(), if !stopping => stopping = true,
            }
            // A shutdown wakes every session through its outbox (`Shard::shut_down_sessions`);
            // none hibernates after it, so this ends once the last has woken.
            if stopping && shard.hibernating() == 0 {
                debug!(shard = shard.index, "hibernation stopped");
                hibernation.close();
                return;
            }
        }
    }
}
