//! Encoding and decoding cost of the packets on the hot paths.
//!
//! ```sh
//! cargo bench -p suda-protocol --bench codec            # full run (about 30 s)
//! cargo bench -p suda-protocol --bench codec -- --test  # smoke run: each case once
//! ```
//!
//! Cases:
//! - `encode/broadcast_notify`, `encode/whisper_notify`: one notification with a 64-byte text
//!   and an 8-byte name (what `suda-bench` sends) into a buffer that already has room, as the
//!   server encodes into a per-read buffer.
//! - `decode/pipelined_50`: 50 `BROADCAST_REQ`s arriving in one read, taken off one buffer.
//! - `decode/partial`: the same stream arriving in 7-byte pieces, so most calls find an
//!   incomplete packet and return `Ok(None)`; measures what a split packet costs the decoder.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use suda_protocol::{DEFAULT_MAX_PACKET, Packet, WireStr, decode, encode};

/// Packets in one pipelined read: what a sender with a window of 50 or more hands the server.
const PIPELINED: usize = 50;
/// Bytes per piece in `decode/partial`: small and odd, so headers and bodies are split too.
const PIECE: usize = 7;

fn text() -> WireStr {
    WireStr::from_static("0000018c2f1e4a7b00000003 a chat message of sixty-four bytes.....")
}

fn notify(whisper: bool) -> Packet {
    let (message_id, sent_at_ms, from) =
        (42 << 10, 1_700_000_000_000, WireStr::from_static("b00042"));
    if whisper {
        Packet::WhisperNotify {
            message_id,
            sent_at_ms,
            from,
            text: text(),
        }
    } else {
        Packet::BroadcastNotify {
            message_id,
            sent_at_ms,
            from,
            text: text(),
        }
    }
}

fn pipelined_stream() -> BytesMut {
    let mut stream = BytesMut::new();
    for _ in 0..PIPELINED {
        encode(&Packet::BroadcastReq { text: text() }, &mut stream).expect("encodes");
    }
    stream
}

fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for (name, whisper) in [("broadcast_notify", false), ("whisper_notify", true)] {
        let packet = notify(whisper);
        let mut buf = BytesMut::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                // Cleared, not reallocated: the cost measured is the encoding, not the buffer.
                buf.clear();
                encode(black_box(&packet), &mut buf).expect("encodes");
                black_box(buf.len())
            })
        });
    }
    group.finish();
}

fn decoding(c: &mut Criterion) {
    let stream = pipelined_stream();
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(PIPELINED as u64));
    group.bench_function("pipelined_50", |b| {
        b.iter_batched_ref(
            || stream.clone(),
            |buf| {
                let mut n = 0;
                while let Some(packet) = decode(buf, DEFAULT_MAX_PACKET).expect("valid") {
                    black_box(packet);
                    n += 1;
                }
                assert_eq!(n, PIPELINED);
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("partial", |b| {
        b.iter_batched_ref(
            || (stream.clone(), BytesMut::with_capacity(stream.len())),
            |(source, buf)| {
                let mut n = 0;
                while !source.is_empty() {
                    let piece = source.split_to(PIECE.min(source.len()));
                    buf.extend_from_slice(&piece);
                    while let Some(packet) = decode(buf, DEFAULT_MAX_PACKET).expect("valid") {
                        black_box(packet);
                        n += 1;
                    }
                }
                assert_eq!(n, PIPELINED);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, encoding, decoding);
criterion_main!(benches);
