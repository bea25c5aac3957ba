//! Heap allocations the server makes per delivered message, over real loopback sockets.
//!
//! ```sh
//! cargo bench -p suda-bench --bench allocations   # full: 1000 clients, 3 repetitions (~1 min)
//! cargo test -p suda-bench --bench allocations    # smoke: 20 clients, once (the harness only)
//! ```
//!
//! The real server library runs in this process on 2 worker shards (`Server::bind` / `run`, the
//! server's defaults with the chat rate limits and storage off, as in docs/PERFORMANCE.md), and
//! the `suda-bench` engine drives its `fanout` and `whisper` scenarios against it through
//! loopback TCP. A counting global allocator forwards every call to the system allocator and
//! counts it, unless the calling thread is marked as the load generator's.
//!
//! - **Whose allocations.** The driver's main thread and every thread of the load generator's
//!   runtime (`on_thread_start`) mark themselves; everything else — the server's thread running
//!   `Server::run` and the worker threads it starts — is counted. The load generator's own
//!   allocations are therefore excluded exactly, not estimated.
//! - **Which allocations.** A run counts everything from binding the server to its return from
//!   `run` after shutdown, so it includes one-off costs: thread and runtime start-up, 1,000
//!   connections and logins, goodbyes. To leave only the cost that grows with traffic, each
//!   scenario runs twice, with M and with 2M messages per sender, and the figure is the
//!   difference: `(allocs(2M) − allocs(M)) / (deliveries(2M) − deliveries(M))`. The one-off
//!   costs are the same in both runs and cancel.
//! - **What counts as an allocation.** Calls to `alloc` / `alloc_zeroed` and, apart, `realloc`
//!   (a growing buffer); bytes are those requested (for `realloc`, the growth). Frees are not
//!   counted.
//!
//! The figures depend on batching: a read that holds 50 broadcasts costs about what a read with
//! one does, so a run where the server keeps up (small batches) allocates more per message than
//! one where it falls behind. That is why the result is a median of repetitions, with its range.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use suda_bench::{BenchConfig, Report, Scenario, Target, Traffic};
use suda_server::config::StoreKind;
use suda_server::{Config, Server};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// The counting allocator. The only unsafe code in the crate: `GlobalAlloc` is an unsafe trait.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};

    static ALLOCS: AtomicU64 = AtomicU64::new(0);
    static REALLOCS: AtomicU64 = AtomicU64::new(0);
    static BYTES: AtomicU64 = AtomicU64::new(0);

    thread_local! {
        // `const`, `Copy` and without a destructor: reading it never allocates, so the
        // allocator can consult it without recursing into itself.
        static IGNORED: Cell<bool> = const { Cell::new(false) };
    }

    /// Allocations made on this thread from now on are not counted.
    pub(crate) fn ignore_this_thread() {
        IGNORED.with(|ignored| ignored.set(true));
    }

    /// Counted so far.
    #[derive(Debug, Clone, Copy, Default)]
    pub(crate) struct Counts {
        pub(crate) allocs: u64,
        pub(crate) reallocs: u64,
        pub(crate) bytes: u64,
    }

    impl Counts {
        pub(crate) fn now() -> Self {
            Self {
                allocs: ALLOCS.load(Ordering::Relaxed),
                reallocs: REALLOCS.load(Ordering::Relaxed),
                bytes: BYTES.load(Ordering::Relaxed),
            }
        }

        pub(crate) fn since(self, earlier: Self) -> Self {
            Self {
                allocs: self.allocs - earlier.allocs,
                reallocs: self.reallocs - earlier.reallocs,
                bytes: self.bytes - earlier.bytes,
            }
        }
    }

    fn counted() -> bool {
        // A thread being torn down may have lost its thread-locals; it is not the server's.
        IGNORED.try_with(|ignored| !ignored.get()).unwrap_or(false)
    }

    fn count(counter: &AtomicU64, bytes: usize) {
        if counted() {
            counter.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Forwards to the system allocator, counting calls from threads that are not ignored.
    pub(crate) struct Counting;

    // SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
    // `GlobalAlloc` contract; the counting beside it only touches atomics and a thread-local
    // that never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count(&ALLOCS, layout.size());
            // SAFETY: the caller's guarantees for `layout` are passed on as they are.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count(&ALLOCS, layout.size());
            // SAFETY: as for `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System` through this allocator, with this `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count(&REALLOCS, new_size.saturating_sub(layout.size()));
            // SAFETY: `ptr` came from `System` through this allocator, with this `layout`.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

use counting::Counts;

/// What one run against a fresh server measured.
struct Run {
    counts: Counts,
    report: Report,
    /// Deliveries the server counted (its own figure; the bench's must agree).
    server_deliveries: u64,
}

/// Starts a server on its own (counted) thread, runs `scenario` against it, stops it.
fn run_once(generator: &tokio::runtime::Runtime, scenario: Scenario) -> Run {
    let before = Counts::now();
    let (addr_tx, addr_rx) = mpsc::channel::<(SocketAddr, suda_server::StatsHandle)>();
    let shutdown = CancellationToken::new();
    let server_shutdown = shutdown.clone();
    let server = std::thread::spawn(move || {
        // As the binary does: the workers run on threads of their own; this runtime only waits.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        runtime.block_on(async move {
            let config = Config {
                listen: "127.0.0.1:0".parse().expect("addr"),
                workers: 2,
                max_connections: 20_000,
                idle_timeout: Duration::from_secs(600),
                message_rate: 0.0,
                byte_rate: 0.0,
                store: StoreKind::None,
                // Per message, not per quiet spell: with hibernation on, how many sessions
                // sleep and wake around a run (each wake-up makes a task, a registration and
                // its boxes) depends on timing, and the difference between runs of different
                // lengths came out negative.
                hibernate_after: Duration::ZERO,
                ..Config::default()
            };
            let server = Server::bind(config).expect("bind");
            let addr = server.local_addr().expect("addr");
            addr_tx.send((addr, server.stats())).expect("driver waits");
            server
                .run(server_shutdown)
                .await
                .expect("server runs cleanly");
        });
    });
    let (addr, stats) = addr_rx.recv().expect("server started");
    let config = BenchConfig {
        timeout: Duration::from_secs(120),
        ..BenchConfig::new(Target::Suda(addr), scenario)
    };
    let report = generator
        .block_on(suda_bench::run(&config))
        .expect("bench runs");
    let server_deliveries = stats.snapshot().deliveries;
    shutdown.cancel();
    server.join().expect("server thread");
    Run {
        counts: Counts::now().since(before),
        report,
        server_deliveries,
    }
}

/// From the difference between a run with twice the messages and one with M.
#[derive(Debug, Clone, Copy)]
struct Marginal {
    allocs_per_delivery: f64,
    /// Per message a sender had accepted: a broadcast's cost is shared by its recipients.
    allocs_per_message: f64,
    reallocs_per_message: f64,
    bytes_per_message: f64,
    /// All counted allocations of the larger run over its deliveries (one-off costs included).
    gross_allocs_per_delivery: f64,
}

fn marginal(small: &Run, large: &Run) -> Marginal {
    let deliveries = (large.server_deliveries - small.server_deliveries) as f64;
    let messages = (large.report.messages_acked - small.report.messages_acked) as f64;
    let diff = |f: fn(&Counts) -> u64| f(&large.counts) as f64 - f(&small.counts) as f64;
    Marginal {
        allocs_per_delivery: diff(|c| c.allocs) / deliveries,
        allocs_per_message: diff(|c| c.allocs) / messages,
        reallocs_per_message: diff(|c| c.reallocs) / messages,
        bytes_per_message: diff(|c| c.bytes) / messages,
        gross_allocs_per_delivery: large.counts.allocs as f64 / large.server_deliveries as f64,
    }
}

fn check(run: &Run) {
    let report = &run.report;
    assert!(
        !report.has_errors() && report.loss == 0,
        "a run with errors or loss measures something else: {} errors, {} lost",
        report.errors,
        report.loss
    );
    assert_eq!(
        run.server_deliveries, report.deliveries,
        "the server and the bench disagree on deliveries"
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    counting::ignore_this_thread();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then a smoke run only,
    // which checks the harness, not the figures (the convention criterion follows too).
    let full = std::env::args().any(|arg| arg == "--bench");
    let (clients, senders, repetitions) = if full { (1000, 10, 3) } else { (20, 2, 1) };
    let fanout_messages = if full { 1000 } else { 5 };
    let whisper_messages = if full { 25 } else { 5 };
    suda_bench::net::raise_fd_limit().expect("open-file limit");
    let generator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(counting::ignore_this_thread)
        .enable_all()
        .build()
        .expect("load generator runtime");

    let traffic = |messages: u64| Traffic {
        clients,
        senders,
        messages,
        ..Traffic::FANOUT_DEFAULT
    };
    type Make = fn(Traffic) -> Scenario;
    let cases: [(&str, Make, u64); 2] = [
        ("fanout", Scenario::Fanout, fanout_messages),
        ("whisper", Scenario::Whisper, whisper_messages),
    ];
    println!(
        "server-side heap allocations per delivered message \
         ({clients} clients, {senders} fan-out senders, 2 worker shards, median of {repetitions})"
    );
    println!(
        "{:<8} {:>10} {:>11} {:>10} {:>10} {:>10} {:>10}  allocs/message of each repetition",
        "scenario", "messages", "deliveries", "allocs/msg", "reallocs", "bytes/msg", "allocs/dlv",
    );
    for (name, make, messages) in cases {
        let mut samples = Vec::new();
        let (mut sent, mut deliveries) = (0, 0);
        for _ in 0..repetitions {
            let small = run_once(&generator, make(traffic(messages)));
            let large = run_once(&generator, make(traffic(messages * 2)));
            check(&small);
            check(&large);
            sent = large.report.messages_acked - small.report.messages_acked;
            deliveries = large.server_deliveries - small.server_deliveries;
            samples.push(marginal(&small, &large));
        }
        let each: Vec<String> = samples
            .iter()
            .map(|s| format!("{:.3}", s.allocs_per_message))
            .collect();
        let pick = |f: fn(&Marginal) -> f64| median(samples.iter().map(f).collect());
        println!(
            "{:<8} {:>10} {:>11} {:>10.3} {:>10.3} {:>10.1} {:>10.5}  {}",
            name,
            sent,
            deliveries,
            pick(|s| s.allocs_per_message),
            pick(|s| s.reallocs_per_message),
            pick(|s| s.bytes_per_message),
            pick(|s| s.allocs_per_delivery),
            each.join(" ")
        );
        println!(
            "{:<8} gross (one-off costs included): {:.5} allocs per delivery",
            "",
            pick(|s| s.gross_allocs_per_delivery)
        );
    }
    generator.shutdown_background();
}
