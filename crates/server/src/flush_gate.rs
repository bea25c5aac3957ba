//! Output held for one I/O cycle of its worker, so that one write carries more.
//!
//! A worker's runtime alternates between running ready tasks (at most 61 at a time) and polling
//! the reactor for I/O. A session woken because something was queued for it used to write at
//! once, carrying only what that one run of tasks had queued; under load, sessions whose input
//! was still waiting in the reactor queued it more a moment later, and it wrote again. Each
//! write is a trip through the TCP stack, and on a loopback or a LAN the peer's
//! acknowledgement comes back through it too. So a session holds its output until the worker
//! has polled the reactor once more and the tasks that poll readied have been queued ahead of
//! it: its write then carries what they add as well. In a burst of whispers that halved the
//! writes and raised throughput by 40% (docs/PERFORMANCE.md, *Output held for one I/O cycle*).
//! Counting cycles rather than time means nothing waits past the work already in hand.
//!
//! The cost is one run of tasks of latency, never a wait for I/O: while anything is held, the
//! worker's next poll of the reactor does not block (see [`before_park`]).
//!
//! The state is the worker thread's own (each worker runs one single-threaded runtime whose park
//! hooks call [`before_park`] and [`after_unpark`]); a thread whose runtime has no such hooks
//! never counts a cycle, and nothing is held there.

use std::cell::{Cell, RefCell};
use std::task::Waker;

thread_local! {
    static GATE: Gate = Gate::default();
}

#[derive(Default)]
struct Gate {
    /// I/O polls of this thread's runtime, counted 1 to 255 and round again; 0 until the first.
    cycle: Cell<u8>,
    /// Tasks holding output until the next cycle.
    held: RefCell<Vec<Waker>>,
    /// The list woken last time, kept empty for its capacity.
    spare: RefCell<Vec<Waker>>,
}

/// This worker's current cycle, 1 to 255; 0 on a thread whose runtime does not count cycles.
pub(crate) fn cycle() -> u8 {
    GATE.with(|gate| gate.cycle.get())
}

/// Holds the task of `waker` until the next cycle, when it is woken.
pub(crate) fn hold(waker: &Waker) {
    GATE.with(|gate| gate.held.borrow_mut().push(waker.clone()));
}

/// Runs just before the worker polls the reactor, which blocks when no task is ready: with
/// output held, it must not wait for I/O that may never come. Waking one held task makes the
/// poll return at once. That one task is then queued ahead of the sessions the poll readies,
/// not behind them: one session a cycle writes a little early.
pub(crate) fn before_park() {
    GATE.with(|gate| {
        if let Some(waker) = gate.held.borrow().first() {
            waker.wake_by_ref();
        }
    });
}

/// Runs just after the worker has polled the reactor and queued the tasks it readied: a new
/// cycle begins, and the held tasks are queued behind those.
pub(crate) fn after_unpark() {
    GATE.with(|gate| {
        gate.cycle.set(gate.cycle.get().checked_add(1).unwrap_or(1));
        if gate.held.borrow().is_empty() {
            return;
        }
        // Swapped out before waking: a waker may run code that holds again.
        let mut woken = std::mem::take(&mut *gate.spare.borrow_mut());
        std::mem::swap(&mut woken, &mut *gate.held.borrow_mut());
        for waker in woken.drain(..) {
            waker.wake();
        }
        *gate.spare.borrow_mut() = woken;
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    fn woken(count: &Count) -> usize {
        count.0.load(Ordering::Relaxed)
    }

    #[test]
    fn a_thread_without_the_hooks_counts_no_cycle() {
        std::thread::spawn(|| assert_eq!(cycle(), 0))
            .join()
            .unwrap();
    }

    #[test]
    fn held_tasks_wake_when_the_next_cycle_begins() {
        std::thread::spawn(|| {
            after_unpark();
            let first = cycle();
            let (a, a_waker) = counter();
            let (b, b_waker) = counter();
            hold(&a_waker);
            hold(&b_waker);
            assert_eq!((woken(&a), woken(&b)), (0, 0), "held, not woken");
            after_unpark();
            assert_ne!(cycle(), first);
            assert_eq!((woken(&a), woken(&b)), (1, 1));
            after_unpark();
            assert_eq!((woken(&a), woken(&b)), (1, 1), "woken once, then let go");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_reactor_is_not_left_to_block_while_anything_is_held() {
        std::thread::spawn(|| {
            before_park();
            let (a, a_waker) = counter();
            let (b, b_waker) = counter();
            hold(&a_waker);
            hold(&b_waker);
            before_park();
            assert_eq!(
                woken(&a) + woken(&b),
                1,
                "one task woken, so the park returns"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn cycles_go_round_without_zero() {
        std::thread::spawn(|| {
            let mut seen = Vec::new();
            for _ in 0..600 {
                after_unpark();
                seen.push(cycle());
            }
            assert!(!seen.contains(&0));
            assert!(seen.windows(2).all(|pair| pair[0] != pair[1]));
        })
        .join()
        .unwrap();
    }
}
