//! Fan-out enqueue: one broadcast queued to 1,000 sessions of a shard.
//!
//! ```sh
//! cargo bench -p suda-server --bench fanout            # full run (about 15 s)
//! cargo bench -p suda-server --bench fanout -- --test  # smoke run: each case once
//! ```
//!
//! What is timed is the loop a shard runs for a local fan-out (`Member::deliver`, which pushes a
//! `Bytes` handle to the shared packets onto each session's outbox), reached through the hidden
//! `suda_server::bench_api`. No socket is involved: emptying the outboxes between iterations is
//! not timed. Cases:
//!
//! - `1000_sessions/1_packet`: one `BROADCAST_NOTIFY` (64-byte text).
//! - `1000_sessions/50_packets`: 50 of them in one buffer, as when a sender's read held 50
//!   broadcasts; the push is the same, so the cost per delivered message is 50 times lower.
//!
//! Throughput is reported in deliveries (packets × recipients).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use suda_protocol::{Packet, WireStr, encode};
use suda_server::bench_api::{Broadcast, Recipients};

/// Sessions on the shard, the sender among them.
const SESSIONS: usize = 1000;
/// The server's default per-session queue limit.
const QUEUE_LIMIT: usize = 1 << 20;

fn packets(count: u32) -> Broadcast {
    let mut buf = BytesMut::new();
    for i in 0..count {
        let notify = Packet::BroadcastNotify {
            message_id: u64::from(i),
            sent_at_ms: 1_700_000_000_000,
            from: WireStr::from_static("b00001"),
            text: WireStr::from_static(
                "0000018c2f1e4a7b00000003 a chat message of sixty-four bytes.....",
            ),
        };
        encode(&notify, &mut buf).expect("encodes");
    }
    Broadcast::new(buf.freeze(), count)
}

fn fanout(c: &mut Criterion) {
    let recipients = Recipients::new(SESSIONS, QUEUE_LIMIT);
    let mut group = c.benchmark_group("fanout");
    for (name, count) in [
        ("1000_sessions/1_packet", 1u32),
        ("1000_sessions/50_packets", 50),
    ] {
        let broadcast = packets(count);
        group.throughput(Throughput::Elements(
            u64::from(count) * (SESSIONS as u64 - 1),
        ));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let delivered = recipients.deliver(black_box(&broadcast), 1);
                    timed += started.elapsed();
                    assert_eq!(delivered, SESSIONS - 1);
                    // Untimed: a socket would take these; the queue must not reach its limit.
                    black_box(recipients.drain());
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
