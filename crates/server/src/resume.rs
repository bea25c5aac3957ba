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
//!
//! When the server keeps history, the log also remembers the message ids of the packets it
//! evicted (up to `max_replay` + 1 of them, 8 bytes each), in delivery order. A resume from a
//! position older than the log then knows *exactly* which messages followed it and in what
//! order, and the session fetches those by id from history (`session::backfill`): no guessing
//! from id ranges, which interleave across senders and workers.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use suda_protocol::{HEADER_LEN, Packet, PacketType};
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
///
/// Packets are numbered by *delivery position*: 0 is the first delivered since the log began.
#[derive(Debug)]
pub(crate) struct ReplayLog {
    entries: VecDeque<Bytes>,
    messages: usize,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// Packets evicted so far, which is also the position of the oldest packet in `entries`.
    start: u64,
    /// The message ids of the newest evicted packets, in delivery order, ending at `start`
    /// (0 for a packet without one). Kept only when history can replay them.
    evicted_ids: VecDeque<u64>,
    /// Most ids `evicted_ids` keeps: `max_replay` + 1 (the client's position and what may follow
    /// it) with storage, 0 without.
    keep_evicted: usize,
    /// While a resume waits for history: the most packets the log keeps (see
    /// [`ReplayLog::hold`]).
    held: Option<usize>,
    /// The position the log starts from: the [`delivery_mark`] of what the session was
    /// delivered before it asked for a token (0: nothing). A client that names it has missed
    /// nothing from before the log; one that names anything older has, and gets a gap.
    origin: u64,
}

/// The [`delivery_mark`] of notifications without a message id (presence, moderation): no client
/// can name one as its position, so a resume from before the log after one is always a gap.
pub(crate) const UNNAMED: u64 = u64::MAX;

/// What a client that has read all of `packets` (whole packets, back to back) names as its
/// position: the message id of the last one, or [`UNNAMED`] if it has none. Walks the headers
/// only.
pub(crate) fn delivery_mark(packets: &[u8]) -> u64 {
    let mut rest = packets;
    let mut last = rest;
    while rest.len() >= HEADER_LEN {
        let size = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        if size < HEADER_LEN || size > rest.len() {
            break;
        }
        last = rest;
        rest = &rest[size..];
    }
    message_id(last).unwrap_or(UNNAMED)
}

/// What a resume replays.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Replay {
    /// Whole notification packets, in order, sharing the log's buffers.
    pub(crate) packets: Vec<Bytes>,
    /// Whether messages the client missed are not in `packets`.
    pub(crate) gap: bool,
}

/// A replay as far as the log and the history fetched so far allow.
#[derive(Debug)]
pub(crate) struct Planned {
    pub(crate) replay: Replay,
    /// Evicted messages the replay needs from history and that are not in the packets handed
    /// in yet: fetching them may turn the gap into a complete replay. Empty when history cannot
    /// help (no gap, or a gap for another reason).
    pub(crate) missing: Vec<u64>,
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

/// The message id of a chat notification packet, read from its fixed place right after the
/// header (no decoding: this runs for every evicted packet). `None` for packets without one.
pub(crate) fn message_id(packet: &[u8]) -> Option<u64> {
    let raw_type = u16::from_le_bytes([*packet.get(2)?, *packet.get(3)?]);
    match PacketType::from_u16(raw_type)? {
        // Room events share the message id sequence, so a client may resume after one; history
        // holds none of them (nor system notices), so an evicted one makes a gap.
        PacketType::BroadcastNotify
        | PacketType::WhisperNotify
        | PacketType::RoomChatNotify
        | PacketType::RoomEventNotify
        | PacketType::SystemNoticeNotify => {
            let id = packet.get(HEADER_LEN..HEADER_LEN + 8)?;
            Some(u64::from_le_bytes(id.try_into().ok()?))
        }
        _ => None,
    }
}

/// [`delivery_mark`] of one notification, before it is encoded.
pub(crate) fn notification_mark(packet: &Packet) -> u64 {
    match *packet {
        Packet::BroadcastNotify { message_id, .. }
        | Packet::WhisperNotify { message_id, .. }
        | Packet::RoomChatNotify { message_id, .. }
        | Packet::SystemNoticeNotify { message_id, .. } => message_id,
        Packet::RoomEventNotify { event_id, .. } => event_id,
        _ => UNNAMED,
    }
}

impl ReplayLog {
    /// A log of at most `max_messages` packets and `max_bytes` bytes that remembers the ids of
    /// up to `keep_evicted` evicted packets.
    pub(crate) fn new(max_messages: usize, max_bytes: usize, keep_evicted: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            messages: 0,
            bytes: 0,
            max_messages,
            max_bytes,
            start: 0,
            evicted_ids: VecDeque::new(),
            keep_evicted,
            held: None,
            origin: 0,
        }
    }

    /// The log of a session that was delivered packets before it, the last of them marked
    /// `origin` (see [`delivery_mark`]; 0 when nothing was delivered).
    pub(crate) fn starting_after(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }

    /// Records `count` notification packets delivered together in `packets`.
    pub(crate) fn record(&mut self, packets: &Bytes, count: u32) {
        self.entries.push_back(packets.clone());
        self.messages += count as usize;
        self.bytes += packets.len();
        if let Some(max) = self.held {
            if self.messages <= max && self.bytes <= self.max_bytes.saturating_mul(2) {
                return;
            }
            // Past this, the replay would exceed `max_replay` anyway (or memory matters more).
            self.held = None;
        }
        self.evict_excess();
    }

    /// Keeps everything recorded from now on, and what the log holds, while a resume fetches
    /// the messages before it from history: otherwise a fast stream could evict, during the
    /// fetch, the packets the replay continues with, and every fetch would chase the next.
    /// Bounded: at most `max` packets (`max_replay`: beyond that the replay is a gap anyway) and
    /// twice the byte limit; past either the log evicts as usual. Ends with
    /// [`ReplayLog::release`].
    pub(crate) fn hold(&mut self, max: usize) {
        self.held = Some(max.max(self.max_messages));
    }

    /// Ends [`ReplayLog::hold`]: the log shrinks back to its limits.
    pub(crate) fn release(&mut self) {
        self.held = None;
        self.evict_excess();
    }

    /// Evicts the oldest entries while the log is over its limits.
    fn evict_excess(&mut self) {
        while (self.messages > self.max_messages || self.bytes > self.max_bytes)
            && self.entries.len() > 1
        {
            if let Some(oldest) = self.entries.pop_front() {
                self.bytes -= oldest.len();
                let mut evicted = 0;
                for packet in split_packets(oldest) {
                    evicted += 1;
                    if self.keep_evicted > 0 {
                        if self.evicted_ids.len() == self.keep_evicted {
                            self.evicted_ids.pop_front();
                        }
                        self.evicted_ids.push_back(message_id(&packet).unwrap_or(0));
                    }
                }
                self.messages -= evicted;
                self.start += evicted as u64;
            }
        }
    }

    /// The position of the first packet delivered after the message `last_message_id` (0: the
    /// client saw nothing), if the log still knows where that message was. `all` is the log's
    /// packets.
    fn first_unseen(&self, all: &[Bytes], last_message_id: u64) -> Option<u64> {
        let known_from = self.start - self.evicted_ids.len() as u64;
        if last_message_id == self.origin {
            return (known_from == 0).then_some(0);
        }
        if last_message_id == 0 {
            // The client saw nothing, yet something was delivered before the log began.
            return None;
        }
        if let Some(index) = all
            .iter()
            .rposition(|packet| message_id(packet) == Some(last_message_id))
        {
            return Some(self.start + index as u64 + 1);
        }
        self.evicted_ids
            .iter()
            .rposition(|&id| id == last_message_id)
            .map(|index| known_from + index as u64 + 1)
    }

    /// What follows the message `last_message_id` (0: the client saw nothing), at most `max`
    /// packets, taking evicted messages from `history` (packets by message id).
    ///
    /// Complete when the position is known and at most `max` packets follow it, and every
    /// evicted one among them is in `history`; then `missing` lists the evicted ones still to
    /// fetch. Otherwise it is a gap, and the replay is the newest packets of the log that fit:
    /// always a contiguous run of deliveries up to the newest.
    pub(crate) fn replay_from(
        &self,
        last_message_id: u64,
        max: usize,
        history: &HashMap<u64, Bytes>,
    ) -> Planned {
        let all: Vec<Bytes> = self
            .entries
            .iter()
            .flat_map(|entry| split_packets(entry.clone()))
            .collect();
        let end = self.start + all.len() as u64;
        let gap = |missing| {
            let newest = all.len().saturating_sub(max);
            Planned {
                replay: Replay {
                    packets: all[newest..].to_vec(),
                    gap: true,
                },
                missing,
            }
        };
        let Some(from) = self.first_unseen(&all, last_message_id) else {
            return gap(Vec::new());
        };
        if end - from > max as u64 {
            // Newest that fit: those after the position if it is in the log, else the log's.
            return gap(Vec::new());
        }
        if from >= self.start {
            let skip = usize::try_from(from - self.start).unwrap_or(usize::MAX);
            return Planned {
                replay: Replay {
                    packets: all[skip.min(all.len())..].to_vec(),
                    gap: false,
                },
                missing: Vec::new(),
            };
        }
        // The position was evicted: its successors up to the log come from history, by id.
        let known_from = self.start - self.evicted_ids.len() as u64;
        let skip = usize::try_from(from - known_from).unwrap_or(usize::MAX);
        let mut packets = Vec::with_capacity(usize::try_from(end - from).unwrap_or(0));
        let mut missing = Vec::new();
        for &id in self.evicted_ids.iter().skip(skip) {
            if id == 0 {
                // A packet history does not hold (no message id): nothing can replay it.
                return gap(Vec::new());
            }
            match history.get(&id) {
                Some(packet) => packets.push(packet.clone()),
                None => missing.push(id),
            }
        }
        if !missing.is_empty() {
            return gap(missing);
        }
        packets.extend(all);
        Planned {
            replay: Replay {
                packets,
                gap: false,
            },
            missing,
        }
    }

    /// [`ReplayLog::replay_from`] without history.
    #[cfg(test)]
    pub(crate) fn replay_after(&self, last_message_id: u64, max: usize) -> Replay {
        self.replay_from(last_message_id, max, &HashMap::new())
            .replay
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use suda_protocol::Packet;

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
        let mut log = ReplayLog::new(100, 1 << 20, 0);
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
    fn a_log_started_after_deliveries_knows_only_the_last_of_them() {
        // Delivered before the token was asked for: 7, then 8. The log starts after 8.
        let mut log = ReplayLog::new(100, 1 << 20, 0).starting_after(8);
        log.record(&batch(&[9, 10]), 2);
        // Having seen 8, the client missed only what the log holds.
        let replay = log.replay_after(8, 100);
        assert!(!replay.gap);
        assert_eq!(ids(&replay), [9, 10]);
        assert_eq!(ids(&log.replay_after(9, 100)), [10]);
        // Having seen 7 or nothing, it missed 8, which no one kept.
        for seen in [7, 0] {
            let replay = log.replay_after(seen, 100);
            assert!(replay.gap, "after {seen}");
            assert_eq!(ids(&replay), [9, 10], "after {seen}");
        }
        // A notification without an id came last: no position names it.
        let log = ReplayLog::new(100, 1 << 20, 0).starting_after(UNNAMED);
        assert!(log.replay_after(0, 100).gap);
        assert!(log.replay_after(8, 100).gap);
        // Nothing before the log: a client that saw nothing missed nothing.
        let log = ReplayLog::new(100, 1 << 20, 0).starting_after(0);
        assert!(!log.replay_after(0, 100).gap);
    }

    #[test]
    fn the_delivery_mark_is_the_last_packets_id() {
        assert_eq!(delivery_mark(&batch(&[3, 1, 2])), 2);
        assert_eq!(delivery_mark(&notify(42)), 42);
        let mut presence = BytesMut::new();
        suda_protocol::encode(
            &Packet::PresenceNotify {
                user: "bob".into(),
                status: 1,
                text: "".into(),
            },
            &mut presence,
        )
        .expect("encodes");
        assert_eq!(delivery_mark(&presence), UNNAMED);
        let mut mixed = BytesMut::from(&batch(&[5])[..]);
        mixed.extend_from_slice(&presence);
        assert_eq!(delivery_mark(&mixed), UNNAMED);
        let whisper = Packet::WhisperNotify {
            message_id: 77,
            sent_at_ms: 0,
            from: "a".into(),
            text: "x".into(),
        };
        assert_eq!(notification_mark(&whisper), 77);
        let mut encoded = BytesMut::new();
        suda_protocol::encode(&whisper, &mut encoded).expect("encodes");
        assert_eq!(delivery_mark(&encoded), 77);
    }

    /// `notification_mark` (on a packet) and `message_id` (on its bytes) name the same
    /// notifications, each with its id.
    #[test]
    fn a_notification_has_the_same_mark_before_and_after_encoding() {
        let notifications = [
            Packet::BroadcastNotify {
                message_id: 1,
                sent_at_ms: 0,
                from: "a".into(),
                text: "x".into(),
            },
            Packet::WhisperNotify {
                message_id: 2,
                sent_at_ms: 0,
                from: "a".into(),
                text: "x".into(),
            },
            Packet::RoomChatNotify {
                message_id: 3,
                sent_at_ms: 0,
                room: "r".into(),
                from: "a".into(),
                text: "x".into(),
            },
            Packet::RoomEventNotify {
                event_id: 4,
                sent_at_ms: 0,
                room: "r".into(),
                kind: 1,
                user: "a".into(),
                actor: "b".into(),
                text: "".into(),
            },
            Packet::SystemNoticeNotify {
                message_id: 5,
                sent_at_ms: 0,
                from: "op".into(),
                text: "x".into(),
            },
            Packet::ModerationNotify {
                action: 1,
                actor: "op".into(),
                expires_at_ms: 0,
                reason: "".into(),
            },
            Packet::PresenceNotify {
                user: "a".into(),
                status: 1,
                text: "".into(),
            },
        ];
        let marks: Vec<u64> = notifications
            .iter()
            .map(|packet| {
                let mut encoded = BytesMut::new();
                suda_protocol::encode(packet, &mut encoded).expect("encodes");
                assert_eq!(
                    notification_mark(packet),
                    delivery_mark(&encoded),
                    "{packet:?}"
                );
                notification_mark(packet)
            })
            .collect();
        assert_eq!(marks, [1, 2, 3, 4, 5, UNNAMED, UNNAMED]);
    }

    #[test]
    fn an_unknown_or_evicted_position_is_a_gap() {
        let mut log = ReplayLog::new(3, 1 << 20, 0);
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
        let mut log = ReplayLog::new(100, 1 << 20, 0);
        log.record(&batch(&[1, 2, 3, 4, 5]), 5);
        let replay = log.replay_after(1, 2);
        assert!(replay.gap);
        assert_eq!(ids(&replay), [4, 5]);
        assert!(!log.replay_after(3, 2).gap);
    }

    #[test]
    fn the_log_is_bounded_in_bytes() {
        let one = notify(1).len();
        let mut log = ReplayLog::new(1000, one * 3, 0);
        for id in 1..=10 {
            log.record(&notify(id), 1);
        }
        assert!(log.bytes <= one * 3);
        assert_eq!(ids(&log.replay_after(8, 100)), [9, 10]);
    }

    /// Packets for `ids`, as history would render them.
    fn history(ids: &[u64]) -> HashMap<u64, Bytes> {
        ids.iter().map(|&id| (id, notify(id))).collect()
    }

    /// A log of 3 that has evicted 10, 11, 12, 5 and 13 (two senders interleaved) and holds
    /// 14, 15, 16.
    fn evicting_log(keep_evicted: usize) -> ReplayLog {
        let mut log = ReplayLog::new(3, 1 << 20, keep_evicted);
        log.record(&batch(&[10, 11, 12]), 3);
        log.record(&notify(5), 1);
        log.record(&notify(13), 1);
        log.record(&batch(&[14, 15]), 2);
        log.record(&notify(16), 1);
        assert_eq!(log.start, 5);
        log
    }

    #[test]
    fn an_evicted_position_is_filled_from_history_in_delivery_order() {
        let log = evicting_log(11);
        // Without history: a gap, the log's packets, and the evicted ids to fetch, in delivery
        // order (5 was delivered after 12).
        let planned = log.replay_from(11, 100, &HashMap::new());
        assert!(planned.replay.gap);
        assert_eq!(ids(&planned.replay), [14, 15, 16]);
        assert_eq!(planned.missing, [12, 5, 13]);
        // With them: complete, exactly once, in delivery order.
        let planned = log.replay_from(11, 100, &history(&[12, 5, 13]));
        assert!(!planned.replay.gap);
        assert!(planned.missing.is_empty());
        assert_eq!(ids(&planned.replay), [12, 5, 13, 14, 15, 16]);
        // Positional across the boundary: after 12 comes 5, though its id is lower.
        let all = history(&[10, 11, 12, 5, 13]);
        assert_eq!(
            ids(&log.replay_from(12, 100, &all).replay),
            [5, 13, 14, 15, 16]
        );
        assert_eq!(ids(&log.replay_from(5, 100, &all).replay), [13, 14, 15, 16]);
        assert_eq!(ids(&log.replay_from(13, 100, &all).replay), [14, 15, 16]);
        // Nothing seen: everything since the log began.
        let planned = log.replay_from(0, 100, &all);
        assert!(!planned.replay.gap);
        assert_eq!(ids(&planned.replay), [10, 11, 12, 5, 13, 14, 15, 16]);
        // Only what is still missing is asked for.
        assert_eq!(
            log.replay_from(10, 100, &history(&[11, 5])).missing,
            [12, 13]
        );
    }

    #[test]
    fn history_cannot_fill_beyond_the_replay_limit_or_what_was_forgotten() {
        let log = evicting_log(11);
        let all = history(&[10, 11, 12, 5, 13]);
        // Six would follow 11: more than 5 is a gap with the newest of the log, nothing to fetch.
        let planned = log.replay_from(11, 5, &all);
        assert!(planned.replay.gap);
        assert!(planned.missing.is_empty());
        assert_eq!(ids(&planned.replay), [14, 15, 16]);
        assert!(!log.replay_from(11, 6, &all).replay.gap);
        // Ids kept for only two evicted packets (5, 13): 11's position is forgotten.
        let short = evicting_log(2);
        let planned = short.replay_from(11, 100, &all);
        assert!(planned.replay.gap);
        assert!(planned.missing.is_empty());
        assert!(short.replay_from(0, 100, &all).replay.gap);
        assert_eq!(
            ids(&short.replay_from(5, 100, &all).replay),
            [13, 14, 15, 16]
        );
        // Without storage nothing is kept, as before.
        assert!(evicting_log(0).replay_from(12, 100, &all).replay.gap);
    }

    #[test]
    fn an_evicted_packet_without_a_message_id_is_a_gap() {
        let mut event = BytesMut::new();
        suda_protocol::encode(&Packet::Pong { nonce: 7 }, &mut event).expect("encodes");
        let event = event.freeze();
        assert_eq!(message_id(&event), None);
        let mut log = ReplayLog::new(2, 1 << 20, 10);
        log.record(&notify(1), 1);
        log.record(&event, 1);
        log.record(&notify(2), 1);
        log.record(&notify(3), 1);
        let all = history(&[1, 2, 3]);
        let planned = log.replay_from(1, 100, &all);
        assert!(planned.replay.gap, "history cannot hold the event");
        assert!(planned.missing.is_empty());
        assert_eq!(ids(&planned.replay), [2, 3]);
        // After the event, history is not needed.
        assert!(!log.replay_from(2, 100, &all).replay.gap);
    }

    #[test]
    fn a_held_log_keeps_what_arrives_until_released_within_bounds() {
        let mut log = ReplayLog::new(3, 1 << 20, 100);
        for id in 1..=4 {
            log.record(&notify(id), 1);
        }
        assert_eq!(log.start, 1);
        log.hold(20);
        for id in 5..=12 {
            log.record(&notify(id), 1);
        }
        assert_eq!(log.start, 1, "nothing evicted while held");
        assert_eq!(ids(&log.replay_after(1, 100)), (2..=12).collect::<Vec<_>>());
        log.release();
        assert_eq!(log.start, 9, "back to its limit");
        assert_eq!(log.messages, 3);
        // Past the hold's bound the log evicts as usual, and stays released.
        log.hold(5);
        for id in 13..=20 {
            log.record(&notify(id), 1);
        }
        assert_eq!(log.messages, 3);
        assert_eq!(log.held, None);
        // Every evicted id was remembered, in order.
        assert_eq!(
            log.evicted_ids.iter().copied().collect::<Vec<_>>(),
            (1..=17).collect::<Vec<_>>()
        );
    }
}
