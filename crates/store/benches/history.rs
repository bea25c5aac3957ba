//! Throughput of the history writer (group commit) on SQLite and PostgreSQL.
//!
//! ```sh
//! cargo bench -p suda-store --bench history            # full run (about a minute)
//! cargo bench -p suda-store --bench history -- --test  # smoke run: each case once
//! ```
//!
//! SQLite is a file in a temporary directory (WAL, `synchronous = FULL`, the defaults);
//! PostgreSQL is a throwaway server (`TempPostgres`, `fsync = on`) on the same disk. Each
//! iteration stores [`MESSAGES`] messages; criterion reports messages per second, and each case
//! prints its commits per second and messages per commit. Cases:
//!
//! - `strict/sessions`: [`SESSIONS`] tasks, each appending and then awaiting its ticket before
//!   its next message (a session that answers `BROADCAST_RES` after the commit).
//! - `strict/pipelined`: one task appends all the messages, then awaits every ticket.
//! - `batched`: one task appends all the messages, then flushes.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use suda_store::history::HistoryMessage;
use suda_store::testing::{TempPostgres, skip_postgres};
use suda_store::writer::{Durability, HistoryWriter, WriterConfig};
use suda_store::{Store, StoreConfig};

/// Messages per iteration.
const MESSAGES: usize = 10_000;
/// Concurrent sessions in `strict/sessions`.
const SESSIONS: usize = 64;

static NEXT_ID: AtomicI64 = AtomicI64::new(1);

fn message() -> HistoryMessage {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    HistoryMessage::broadcast(
        id,
        1_700_000_000_000 + id,
        "benchmark",
        "a chat message of a typical length, some sixty bytes or so.",
    )
}

#[derive(Clone, Copy)]
enum Case {
    StrictSessions,
    StrictPipelined,
    Batched,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::StrictSessions => "strict/sessions",
            Case::StrictPipelined => "strict/pipelined",
            Case::Batched => "batched",
        }
    }

    fn durability(self) -> Durability {
        match self {
            Case::StrictSessions | Case::StrictPipelined => Durability::Strict,
            Case::Batched => Durability::Batched,
        }
    }
}

/// Stores [`MESSAGES`] messages through `writer` as `case` says.
async fn run(case: Case, writer: &HistoryWriter) {
    match case {
        Case::StrictSessions => {
            let tasks: Vec<_> = (0..SESSIONS)
                .map(|_| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        for _ in 0..MESSAGES / SESSIONS {
                            writer.append(message()).await.unwrap().await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        }
        Case::StrictPipelined => {
            let mut tickets = Vec::with_capacity(MESSAGES);
            for _ in 0..MESSAGES {
                tickets.push(writer.append(message()).await.unwrap());
            }
            for ticket in tickets {
                ticket.await.unwrap();
            }
        }
        Case::Batched => {
            for _ in 0..MESSAGES {
                let _ready = writer.append(message()).await.unwrap();
            }
            writer.flush().await.unwrap();
        }
    }
}

fn bench_backend(c: &mut Criterion, backend: &str, config: StoreConfig) {
    // The sessions' runtime: single-threaded, like a server worker. The store runs its
    // queries on its own runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(Store::open(config)).unwrap();
    let mut group = c.benchmark_group(format!("history_writer/{backend}"));
    group.throughput(Throughput::Elements(MESSAGES as u64));
    for case in [Case::StrictSessions, Case::StrictPipelined, Case::Batched] {
        let writer = HistoryWriter::spawn(&store, WriterConfig::new(case.durability()));
        let mut elapsed = Duration::ZERO;
        group.bench_function(case.name(), |b| {
            b.iter_custom(|iterations| {
                let start = Instant::now();
                for _ in 0..iterations {
                    runtime.block_on(run(case, &writer));
                }
                let took = start.elapsed();
                elapsed += took;
                took
            })
        });
        let stats = writer.stats();
        let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
        println!(
            "history_writer/{backend}/{}: {:.0} messages/s, {:.0} commits/s, {:.1} messages/commit",
            case.name(),
            stats.committed as f64 / seconds,
            stats.commits as f64 / seconds,
            stats.committed as f64 / stats.commits.max(1) as f64,
        );
        runtime.block_on(writer.close());
    }
    group.finish();
    runtime.block_on(store.close());
}

fn history_writer(c: &mut Criterion) {
    let sqlite_dir = tempfile::tempdir().unwrap();
    bench_backend(c, "sqlite", StoreConfig::sqlite_in(sqlite_dir.path()));

    if skip_postgres() {
        eprintln!("SUDA_SKIP_POSTGRES=1: skipping the PostgreSQL benchmarks");
        return;
    }
    let server = TempPostgres::start().unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = runtime.block_on(server.create_database()).unwrap();
    bench_backend(c, "postgres", StoreConfig::postgres(url));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = history_writer
}
criterion_main!(benches);
