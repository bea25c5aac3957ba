//! Session resume: tokens, detached sessions, and the replay log.
//!
//! A session that asked for a token (`SESSION_TOKEN_REQ`) is *resumable*: when its connection
//! drops without a `LOGOUT_REQ`, it stays registered (its name reserved, deliveries recorded)
//! for the grace period, waiting for a `RESUME_REQ` with its token. The resuming connection may
//! arrive on any worker; it is handed, socket and all, to the worker that owns the session, so a
//! session still lives its whole life on one shard.
//!
//! Replay is positional: the replay log holds what was delivered to the session, in delivery
//! order, and a resume replays what follows the last message the client saw. Message ids of
//! different senders need not arrive in increasing order, so "everything with a larger id" would
//! lose messages; "everything after that one" does not.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use suda_protocol::{HEADER_LEN, Packet};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::server::{ConnectionGuard, ReaderGuard};
use crate::session::SessionId;

/// A new random resume token: 128 bits as 32 lowercase hex characters.
pub(crate) fn new_token() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)?;
    let mut token = String::with_capacity(32);
    for byte in raw {
        // Writing to a String cannot fail.
        let _ = write!(token, "{byte:02x}");
    }
    Ok(token)
}

/// A connection handed to a session that resumes on it, from whichever worker accepted it.
#[derive(Debug)]
pub(crate) struct Attach {
    pub(crate) stream: std::net::TcpStream,
    pub(crate) tls: Option<Box<rustls::ServerConnection>>,
    /// Bytes the client sent after its `RESUME_REQ`, not yet handled.
    pub(crate) pipelined: BytesMut,
    /// Bytes queued on the accepting worker (responses to requests before the resume) that must
    /// reach the client before anything else.
    pub(crate) unsent: Vec<Bytes>,
    pub(crate) last_message_id: u64,
    pub(crate) peer: std::net::SocketAddr,
    pub(crate) guard: ConnectionGuard,
    pub(crate) reader: ReaderGuard,
}

/// Where a resumable session can be reached.
#[derive(Debug)]
struct TokenEntry {
    session_id: SessionId,
    user: Box<str>,
    attach: mpsc::Sender<Box<Attach>>,
}

/// Every live token, server-wide.
#[derive(Debug, Default)]
pub(crate) struct ResumeRegistry {
    tokens: DashMap<Box<str>, TokenEntry>,
    detached: AtomicUsize,
    /// Detached sessions, with the token that ends them early (a login that proves the
    /// identity takes the name over).
    evictions: DashMap<SessionId, CancellationToken>,
}

/// Why a resume was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResumeRefusal {
    /// Unknown token, or the token of another user.
    InvalidToken,
    /// The session is busy taking another resume.
    Busy,
}

impl ResumeRegistry {
    /// Registers `token` for a session of `user` (folded).
    pub(crate) fn insert(
        &self,
        token: &str,
        session_id: SessionId,
        user: &str,
        attach: mpsc::Sender<Box<Attach>>,
    ) {
        self.tokens.insert(
            token.into(),
            TokenEntry {
                session_id,
                user: user.into(),
                attach,
            },
        );
    }

    /// Forgets `token`.
    pub(crate) fn remove(&self, token: &str) {
        self.tokens.remove(token);
    }

    /// Whether `token` is live and belongs to `user` (folded).
    pub(crate) fn knows(&self, token: &str, user: &str) -> bool {
        self.tokens
            .get(token)
            .is_some_and(|entry| *entry.user == *user && !entry.attach.is_closed())
    }

    /// Hands `attach` to the session behind `token`, if it belongs to `user` (folded).
    pub(crate) fn attach(
        &self,
        token: &str,
        user: &str,
        attach: Box<Attach>,
    ) -> Result<SessionId, (ResumeRefusal, Box<Attach>)> {
        let Some(entry) = self.tokens.get(token) else {
            return Err((ResumeRefusal::InvalidToken, attach));
        };
        if *entry.user != *user {
            return Err((ResumeRefusal::InvalidToken, attach));
        }
        let session_id = entry.session_id;
        match entry.attach.try_send(attach) {
            Ok(()) => Ok(session_id),
            Err(mpsc::error::TrySendError::Full(attach)) => Err((ResumeRefusal::Busy, attach)),
            // The session ended a moment ago.
            Err(mpsc::error::TrySendError::Closed(attach)) => {
                Err((ResumeRefusal::InvalidToken, attach))
            }
        }
    }

    /// Reserves a detached slot for `session`, unless `max` are already detached; the token
    /// fires if a login takes the session over.
    pub(crate) fn try_detach(&self, session: SessionId, max: usize) -> Option<CancellationToken> {
        self.detached
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        let evict = CancellationToken::new();
        self.evictions.insert(session, evict.clone());
        Some(evict)
    }

    /// Gives `session`'s detached slot back.
    pub(crate) fn reattached_or_expired(&self, session: SessionId) {
        self.evictions.remove(&session);
        self.detached.fetch_sub(1, Ordering::AcqRel);
    }

    /// Ends `session` early if it is detached. True when it was.
    pub(crate) fn evict(&self, session: SessionId) -> bool {
        match self.evictions.get(&session) {
            Some(evict) => {
                evict.cancel();
                true
            }
            None => false,
        }
    }

    /// Sessions detached now.
    pub(crate) fn detached(&self) -> usize {
        self.detached.load(Ordering::Acquire)
    }
}

/// Notifications delivered to one session, in delivery order, bounded in count and bytes.
#[derive(Debug)]
pub(crate) struct ReplayLog {
    entries: VecDeque<Bytes>,
    messages: usize,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// Whether anything was ever evicted: then an unknown position is a gap.
    evicted: bool,
}

/// What a resume replays.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Replay {
    /// Whole notification packets, in order, sharing the log's buffers.
    pub(crate) packets: Vec<Bytes>,
    /// Whether messages the client missed are not in `packets`.
    pub(crate) gap: bool,
}

/// Splits a buffer of whole packets into one `Bytes` per packet, without copying.
fn split_packets(mut bytes: Bytes) -> impl Iterator<Item = Bytes> {
    std::iter::from_fn(move || {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let size = usize::from(u16::from_le_bytes([bytes[0], bytes[1]]));
        (size >= HEADER_LEN && size <= bytes.len()).then(|| bytes.split_to(size))
    })
}

/// The message id of a chat notification packet.
fn message_id(packet: &Bytes) -> Option<u64> {
    let mut buf = BytesMut::from(&packet[..]);
    match suda_protocol::decode(&mut buf, suda_protocol::MAX_PACKET_LIMIT) {
        Ok(Some(Packet::BroadcastNotify { message_id, .. }))
        | Ok(Some(Packet::WhisperNotify { message_id, .. }))
        | Ok(Some(Packet::RoomChatNotify { message_id, .. }))
        | Ok(Some(Packet::SystemNoticeNotify { message_id, .. }))
        | Ok(Some(Packet::RoomEventNotify {
            event_id: message_id,
            ..
        })) => Some(message_id),
        _ => None,
    }
}

impl ReplayLog {
    pub(crate) fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            messages: 0,
            bytes: 0,
            max_messages,
            max_bytes,
            evicted: false,
        }
    }

    /// Records `count` notification packets delivered together in `packets`.
    pub(crate) fn record(&mut self, packets: &Bytes, count: u32) {
        self.entries.push_back(packets.clone());
        self.messages += count as usize;
        self.bytes += packets.len();
        while (self.messages > self.max_messages || self.bytes > self.max_bytes)
            && self.entries.len() > 1
        {
            if let Some(oldest) = self.entries.pop_front() {
                self.bytes -= oldest.len();
                self.messages -= split_packets(oldest).count();
                self.evicted = true;
            }
        }
    }

    /// What follows the message `last_message_id` (0: the client saw nothing), at most `max`
    /// packets. A position the log no longer holds, or more than `max` to replay, is a gap: the
    /// newest packets that fit are replayed and the answer says so.
    pub(crate) fn replay_after(&self, last_message_id: u64, max: usize) -> Replay {
        let all: Vec<Bytes> = self
            .entries
            .iter()
            .flat_map(|entry| split_packets(entry.clone()))
            .collect();
        let (start, mut gap) = if last_message_id == 0 {
            (0, self.evicted)
        } else {
            match all
                .iter()
                .rposition(|p| message_id(p) == Some(last_message_id))
            {
                Some(position) => (position + 1, false),
                None => (0, true),
            }
        };
        let mut packets = all[start..].to_vec();
        if packets.len() > max {
            packets.drain(..packets.len() - max);
            gap = true;
        }
        Replay { packets, gap }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(id: u64) -> Bytes {
        let mut buf = BytesMut::new();
        suda_protocol::encode(
            &Packet::BroadcastNotify {
                message_id: id,
                sent_at_ms: 0,
                from: "a".into(),
                text: "x".into(),
            },
            &mut buf,
        )
        .expect("encodes");
        buf.freeze()
    }

    fn batch(ids: &[u64]) -> Bytes {
        let mut buf = BytesMut::new();
        for &id in ids {
            buf.extend_from_slice(&notify(id));
        }
        buf.freeze()
    }

    fn ids(replay: &Replay) -> Vec<u64> {
        replay
            .packets
            .iter()
            .map(|p| message_id(p).expect("notification"))
            .collect()
    }

    #[test]
    fn tokens_are_128_random_bits_in_hex() {
        let a = new_token().expect("random");
        let b = new_token().expect("random");
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn replay_is_positional_not_by_id_order() {
        let mut log = ReplayLog::new(100, 1 << 20);
        // Two senders: ids arrive out of numeric order.
        log.record(&batch(&[10, 11, 12]), 3);
        log.record(&notify(5), 1);
        log.record(&batch(&[13]), 1);
        assert_eq!(ids(&log.replay_after(11, 100)), [12, 5, 13]);
        assert!(!log.replay_after(11, 100).gap);
        assert_eq!(ids(&log.replay_after(5, 100)), [13]);
        assert_eq!(ids(&log.replay_after(0, 100)), [10, 11, 12, 5, 13]);
        assert_eq!(ids(&log.replay_after(13, 100)), Vec::<u64>::new());
    }

    #[test]
    fn an_unknown_or_evicted_position_is_a_gap() {
        let mut log = ReplayLog::new(3, 1 << 20);
        for id in 1..=5 {
            log.record(&notify(id), 1);
        }
        let replay = log.replay_after(1, 100);
        assert!(replay.gap);
        assert_eq!(ids(&replay), [3, 4, 5]);
        assert!(log.replay_after(0, 100).gap, "evicted messages are missed");
        assert!(!log.replay_after(4, 100).gap);
        assert!(log.replay_after(999, 100).gap, "a position never delivered");
    }

    #[test]
    fn more_than_the_replay_limit_is_a_gap_with_the_newest_replayed() {
        let mut log = ReplayLog::new(100, 1 << 20);
        log.record(&batch(&[1, 2, 3, 4, 5]), 5);
        let replay = log.replay_after(1, 2);
        assert!(replay.gap);
        assert_eq!(ids(&replay), [4, 5]);
        assert!(!log.replay_after(3, 2).gap);
    }

    #[test]
    fn the_log_is_bounded_in_bytes() {
        let one = notify(1).len();
        let mut log = ReplayLog::new(1000, one * 3);
        for id in 1..=10 {
            log.record(&notify(id), 1);
        }
        assert!(log.bytes <= one * 3);
        assert_eq!(ids(&log.replay_after(8, 100)), [9, 10]);
    }
}
