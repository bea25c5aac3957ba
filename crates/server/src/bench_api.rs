//! Entry points for the server's own benchmarks (`benches/`); not an API.
//!
//! The fan-out enqueue path (`Member::deliver` → `Outbox::push_shared`) is crate-private, and a
//! criterion benchmark is another crate. This module exposes the least that such a benchmark
//! needs to drive that path for many sessions without sockets or a runtime. It is hidden from
//! the documentation and changes with the internals whenever they change.

use std::io;
use std::rc::Rc;

use bytes::Bytes;
use suda_protocol::PacketType;
use tokio::time::Instant;

use crate::SessionId;
use crate::outbox::Pushed;
use crate::shard::{Fanout, Member};

/// Encoded `BROADCAST_NOTIFY` packets on their way to recipients, as a shard hands them on.
#[derive(Debug, Clone)]
pub struct Broadcast(Fanout);

impl Broadcast {
    /// `count` packets, back to back in `packets`.
    pub fn new(packets: Bytes, count: u32) -> Self {
        Self(Fanout::new(
            packets,
            count,
            PacketType::BroadcastNotify,
            Instant::now(),
        ))
    }
}

/// Logged-in sessions as one shard sees them, with nothing behind them but their outboxes.
#[derive(Debug)]
pub struct Recipients {
    members: Vec<Rc<Member>>,
}

impl Recipients {
    /// `count` sessions with ids `1..=count`, each with an outbox that holds `queue_limit` bytes.
    pub fn new(count: usize, queue_limit: usize) -> Self {
        let members = (1..=count as u64)
            .map(|id| Member::new(SessionId(id), queue_limit))
            .collect();
        Self { members }
    }

    /// Queues `broadcast` to every session except `exclude`, the loop `Shard` runs for a local
    /// fan-out. Returns how many sessions queued it.
    pub fn deliver(&self, broadcast: &Broadcast, exclude: u64) -> usize {
        let exclude = SessionId(exclude);
        let mut delivered = 0;
        for member in &self.members {
            if member.id != exclude && member.deliver(&broadcast.0) == Pushed::Queued {
                delivered += 1;
            }
        }
        delivered
    }

    /// Empties every outbox as a socket that takes everything at once would. Returns the bytes.
    pub fn drain(&self) -> usize {
        let mut total = 0;
        for member in &self.members {
            let written = member
                .outbox
                .borrow_mut()
                .flush_into(|slices| Ok::<_, io::Error>(slices.iter().map(|s| s.len()).sum()));
            total += written.unwrap_or(0);
        }
        total
    }
}
