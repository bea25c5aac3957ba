//! A session's ordered send queue.
//!
//! Everything a session is sent — its own responses, broadcasts, whispers, the final
//! `ERROR_NOTIFY` — goes through one `Outbox`, so it leaves in the order it was queued. Shared
//! packets (a broadcast encoded once for every recipient) are queued as [`Bytes`] handles to one
//! buffer; the session's own small responses are encoded into a private tail buffer. A flush hands
//! the socket as many pieces as it takes in one vectored write.
//!
//! The queue is measured in bytes and capped: a peer that reads slower than it is sent to is cut
//! off (slow-consumer policy) rather than allowed to grow server memory or hold up its senders.
//! Outboxes live on one worker thread (the shard owning the session), so they need no lock.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::task::{Context, Poll, Waker};

use tokio::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use suda_protocol::{ErrorCode, Packet};

/// Most pieces handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Shared packets at most this long are copied behind what is already queued instead of queued
/// as pieces of their own. A recipient of many small packets (whispers, a busy room's single
/// messages) would otherwise hand the kernel a `writev` of dozens of tiny pieces, which it
/// copies piece by piece at a far higher cost per byte than this one copy.
const COALESCE_MAX: usize = 256;

/// The tail's first allocation: room for a flush's worth of small packets, so that a busy
/// session's tail does not grow through a chain of reallocations (each a copy) from a few bytes.
/// It is freed once the outbox empties, so idle sessions do not keep it.
const TAIL_FIRST_CAPACITY: usize = 1024;

/// Whether a push was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Queued for sending.
    Queued,
    /// The queue passed its limit: it was emptied and the session must end as a slow consumer.
    OverLimit,
    /// The session is closing and takes no more.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Over the byte limit: emptied, waiting for its task to close the connection.
    Overflowed,
    /// Closing: the last packet has been queued.
    Sealed,
}

/// Queued bytes, with when the message in them was accepted (shared packets only).
#[derive(Debug)]
struct Segment {
    bytes: Bytes,
    accepted_at: Option<Instant>,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// What is queued and how far it is written. Boxed apart, made by the first push and
    /// dropped when the session hibernates: an idle session's outbox is the few bytes below.
    queue: Option<Box<Queue>>,
    limit: usize,
    state: State,
    /// Who to wake when something is queued: the session's task, or, while the session
    /// hibernates, its worker's hibernation task.
    waiter: Waiter,
    /// A moderator or another worker asked the session to end (see [`Outbox::eject`]).
    ejected: bool,
    /// The worker asked a quiet session to hibernate (see [`Outbox::ask_to_hibernate`]).
    hibernation_asked: bool,
    /// While the session hibernates: its key among its shard's sessions, for its wake-up.
    /// Kept here rather than in [`Waiter`], where it would make every outbox 8 bytes larger.
    hibernating_key: u32,
}

/// The queued bytes of an [`Outbox`], in order: shared pieces, then the tail (the session's own
/// packets, and small shared ones copied behind what is queued).
#[derive(Debug, Default)]
struct Queue {
    segments: VecDeque<Segment>,
    tail: BytesMut,
    /// The earliest acceptance time among shared packets copied into `tail`.
    tail_accepted_at: Option<Instant>,
    queued_bytes: usize,
    /// The socket has taken part of the first queued piece: the rest must follow before anything
    /// else, or the peer would read a torn packet.
    mid_piece: bool,
    /// The earliest acceptance time among segments written out since it was last taken.
    completed_since: Option<Instant>,
}

/// See [`Outbox::waiter`](Outbox). Two variants and no empty one (nobody to wake is the
/// no-op waker), so that the waker's one niche leaves it 16 bytes, not 24.
#[derive(Debug)]
enum Waiter {
    Task(Waker),
    Hibernating(std::sync::Arc<crate::hibernate::Wakeups>),
}

impl Waiter {
    /// Nobody to wake.
    fn none() -> Self {
        Self::Task(Waker::noop().clone())
    }
}

impl Outbox {
    /// An empty outbox that holds at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            queue: None,
            limit,
            state: State::Open,
            waiter: Waiter::none(),
            ejected: false,
            hibernation_asked: false,
            hibernating_key: 0,
        }
    }

    /// Whether nothing waits to be written.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued() == 0
    }

    /// The queue, made if there is none.
    fn queue(&mut self) -> &mut Queue {
        self.queue.get_or_insert_with(Box::default)
    }

    /// Asks the session that owns this outbox to end: its task wakes, sees [`Outbox::ejected`],
    /// and closes with the reason its member holds. The outbox is how another task reaches a
    /// session's own loop without a channel per session.
    pub(crate) fn eject(&mut self) {
        self.ejected = true;
        self.wake();
    }

    /// Whether [`Outbox::eject`] was called and not yet taken.
    pub(crate) fn ejected(&self) -> bool {
        self.ejected
    }

    /// Whether [`Outbox::eject`] was called, clearing it: once acted on, the request must not
    /// keep the outbox ready, or the session's closing writes would spin on it.
    pub(crate) fn take_ejected(&mut self) -> bool {
        std::mem::take(&mut self.ejected)
    }

    /// Asks a session that has been quiet to hibernate: its task wakes and hibernates if
    /// nothing holds it awake. Like [`Outbox::eject`], a way in to a session's own loop.
    pub(crate) fn ask_to_hibernate(&mut self) {
        self.hibernation_asked = true;
        self.wake();
    }

    /// Whether [`Outbox::ask_to_hibernate`] was called and not yet taken.
    pub(crate) fn hibernation_asked(&self) -> bool {
        self.hibernation_asked
    }

    /// Whether [`Outbox::ask_to_hibernate`] was called, clearing it.
    pub(crate) fn take_hibernation_asked(&mut self) -> bool {
        std::mem::take(&mut self.hibernation_asked)
    }

    /// While the session hibernates, what is queued wakes it through `wakeups` (as session
    /// `key`). The empty queue is dropped: made again by the next push.
    pub(crate) fn hibernate(
        &mut self,
        key: u32,
        wakeups: std::sync::Arc<crate::hibernate::Wakeups>,
    ) {
        if self.is_empty() {
            self.queue = None;
        }
        self.hibernating_key = key;
        self.waiter = Waiter::Hibernating(wakeups);
    }

    /// The session is awake again: its task registers itself on its first poll.
    pub(crate) fn wake_up(&mut self) {
        self.waiter = Waiter::none();
    }

    /// Whether the limit was passed and the session must end as a slow consumer.
    pub(crate) fn overflowed(&self) -> bool {
        self.state == State::Overflowed
    }

    fn admit(&mut self, len: usize) -> Pushed {
        match self.state {
            State::Open => {}
            State::Overflowed | State::Sealed => return Pushed::Refused,
        }
        if self.queued() + len > self.limit {
            // Free the memory now: nothing queued will be sent to a peer being cut off, except
            // the rest of a piece the socket has started on, so the goodbye is still readable.
            if let Some(queue) = &mut self.queue {
                queue.drop_unstarted();
            }
            self.state = State::Overflowed;
            self.wake();
            return Pushed::OverLimit;
        }
        self.queue().queued_bytes += len;
        Pushed::Queued
    }

    /// Queues bytes shared with other recipients (one or more whole packets), accepted by the
    /// server at `accepted_at`.
    pub(crate) fn push_shared(&mut self, packets: Bytes, accepted_at: Instant) -> Pushed {
        let was_empty = self.is_empty();
        let pushed = self.admit(packets.len());
        if pushed == Pushed::Queued {
            // The first piece of a flush is shared, not copied: a lone packet costs one iovec
            // either way.
            let queue = self.queue();
            if packets.len() <= COALESCE_MAX && !was_empty {
                queue.append_to_tail(&packets, accepted_at);
            } else {
                queue.close_tail();
                queue.segments.push_back(Segment {
                    bytes: packets,
                    accepted_at: Some(accepted_at),
                });
            }
            self.wake();
        }
        pushed
    }

    /// Everything still queued, in order, leaving the outbox empty (to hand it to another
    /// connection).
    pub(crate) fn take_unsent(&mut self) -> Vec<Bytes> {
        let Some(mut queue) = self.queue.take() else {
            return Vec::new();
        };
        let mut pieces: Vec<Bytes> = queue.segments.drain(..).map(|s| s.bytes).collect();
        if !queue.tail.is_empty() {
            pieces.push(queue.tail.split().freeze());
        }
        pieces
    }

    /// The acceptance time of the oldest shared message written out completely since the last
    /// call: what the in-server latency histogram samples.
    pub(crate) fn take_completed_since(&mut self) -> Option<Instant> {
        self.queue.as_mut()?.completed_since.take()
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, |queue| queue.queued_bytes)
    }

    /// Encodes `packet` for this session alone and queues it.
    pub(crate) fn push_packet(&mut self, packet: &Packet) -> Pushed {
        let len = match suda_protocol::codec::encoded_len(packet) {
            Ok(len) => len,
            Err(err) => {
                // Server-built packets are bounded by config validation; this is a bug, not input.
                tracing::error!(%err, "server built an unencodable packet");
                return Pushed::Refused;
            }
        };
        let pushed = self.admit(len);
        if pushed == Pushed::Queued {
            let queue = self.queue();
            queue.reserve_tail(len);
            // Cannot fail: encoded_len succeeded above.
            let _ = suda_protocol::encode(packet, &mut queue.tail);
            self.wake();
        }
        pushed
    }

    /// Queues a notification for this session alone (a whisper from a session of the same
    /// worker), encoded straight into the tail: one copy, and no buffer shared with the sender
    /// whose reference count would be touched twice per message.
    pub(crate) fn push_notification(&mut self, packet: &Packet, accepted_at: Instant) -> Pushed {
        let pushed = self.push_packet(packet);
        if pushed == Pushed::Queued {
            self.queue().note_tail_accepted(accepted_at);
        }
        pushed
    }

    /// Queues a copy of `packets` (whole packets, accepted by the server at `accepted_at`): for
    /// a slice of a buffer whose other slices go to other sessions, copied rather than shared
    /// so that the buffer's reference count is not touched per recipient.
    pub(crate) fn push_copy(&mut self, packets: &[u8], accepted_at: Instant) -> Pushed {
        let pushed = self.admit(packets.len());
        if pushed == Pushed::Queued {
            self.queue().append_to_tail(packets, accepted_at);
            self.wake();
        }
        pushed
    }

    /// Queues the session's last packet, bypassing the limit (it is small and ends the session),
    /// and refuses everything after it.
    pub(crate) fn seal_with(&mut self, code: ErrorCode, reason: &str) {
        if self.state == State::Sealed {
            return;
        }
        self.state = State::Open;
        self.limit = usize::MAX;
        let reason = truncate_to_char_boundary(reason, usize::from(u8::MAX));
        self.push_packet(&Packet::ErrorNotify {
            code,
            reason: reason.into(),
        });
        self.state = State::Sealed;
    }

    /// Ready when there is something to write, the outbox overflowed, or the session is asked
    /// to end or to hibernate: what a session's read loop acts on.
    pub(crate) fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.ejected || self.hibernation_asked {
            return Poll::Ready(());
        }
        self.poll_output(cx)
    }

    /// Ready when there is something to write or the outbox overflowed: what a closing
    /// session, past acting on requests, still waits for.
    pub(crate) fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.queued() > 0 || self.state == State::Overflowed {
            return Poll::Ready(());
        }
        match &self.waiter {
            Waiter::Task(w) if w.will_wake(cx.waker()) => {}
            _ => self.waiter = Waiter::Task(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn wake(&mut self) {
        match std::mem::replace(&mut self.waiter, Waiter::none()) {
            Waiter::Task(waker) => waker.wake(),
            Waiter::Hibernating(wakeups) => wakeups.wake(self.hibernating_key as usize),
        }
    }

    /// Writes as much as `write` accepts, in as few calls as it takes, stopping at `WouldBlock`.
    /// Returns the bytes written.
    pub(crate) fn flush_into(
        &mut self,
        write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        match &mut self.queue {
            Some(queue) => queue.flush_into(write),
            None => Ok(0),
        }
    }
}

impl Queue {
    fn drop_unstarted(&mut self) {
        let started = if self.mid_piece {
            match self.segments.pop_front() {
                Some(front) => Some(front),
                None => Some(Segment {
                    bytes: std::mem::take(&mut self.tail).freeze(),
                    accepted_at: self.tail_accepted_at,
                }),
            }
        } else {
            None
        };
        self.segments = VecDeque::new();
        self.tail = BytesMut::new();
        self.tail_accepted_at = None;
        self.queued_bytes = 0;
        if let Some(started) = started {
            self.queued_bytes = started.bytes.len();
            self.segments.push_back(started);
        }
    }

    /// Makes room for `additional` bytes in the tail, starting it at
    /// [`TAIL_FIRST_CAPACITY`].
    fn reserve_tail(&mut self, additional: usize) {
        if self.tail.capacity() == 0 {
            self.tail.reserve(additional.max(TAIL_FIRST_CAPACITY));
        }
    }

    /// Turns the tail into a queued piece, so that what is queued next goes after it.
    fn close_tail(&mut self) {
        if !self.tail.is_empty() {
            self.segments.push_back(Segment {
                bytes: self.tail.split().freeze(),
                accepted_at: self.tail_accepted_at.take(),
            });
        }
    }

    /// Copies admitted packets, accepted at `accepted_at`, behind everything queued.
    fn append_to_tail(&mut self, packets: &[u8], accepted_at: Instant) {
        self.reserve_tail(packets.len());
        self.tail.extend_from_slice(packets);
        self.note_tail_accepted(accepted_at);
    }

    fn note_tail_accepted(&mut self, accepted_at: Instant) {
        self.tail_accepted_at = Some(
            self.tail_accepted_at
                .map_or(accepted_at, |t| t.min(accepted_at)),
        );
    }

    /// See [`Outbox::flush_into`].
    fn flush_into(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut total = 0;
        while self.queued_bytes > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, segment) in slices.iter_mut().zip(&self.segments) {
                *slot = IoSlice::new(&segment.bytes);
                count += 1;
            }
            if count == self.segments.len() && count < MAX_IOVECS && !self.tail.is_empty() {
                slices[count] = IoSlice::new(&self.tail);
                count += 1;
            }
            let written = match write(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            self.consume(written);
            total += written;
        }
        Ok(total)
    }

    fn consume(&mut self, mut written: usize) {
        self.queued_bytes -= written;
        while written > 0 {
            if let Some(front) = self.segments.front_mut() {
                if written >= front.bytes.len() {
                    written -= front.bytes.len();
                    if let Some(at) = front.accepted_at {
                        self.completed_since = Some(self.completed_since.map_or(at, |c| c.min(at)));
                    }
                    self.segments.pop_front();
                    self.mid_piece = false;
                } else {
                    front.bytes.advance(written);
                    self.mid_piece = true;
                    written = 0;
                }
            } else {
                self.tail.advance(written);
                self.mid_piece = !self.tail.is_empty();
                if !self.mid_piece {
                    if let Some(at) = self.tail_accepted_at.take() {
                        self.completed_since = Some(self.completed_since.map_or(at, |c| c.min(at)));
                    }
                }
                written = 0;
            }
        }
        if self.queued_bytes == 0 && self.tail.capacity() > 0 {
            // Idle sessions should not keep a buffer: one allocation per busy flush costs far
            // less than the write it follows.
            self.tail = BytesMut::new();
        }
    }
}

fn truncate_to_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use suda_protocol::ResultCode;

    fn drain(outbox: &mut Outbox, chunk: usize) -> Vec<u8> {
        let mut out = Vec::new();
        outbox
            .flush_into(|slices| {
                let mut room = chunk;
                let mut n = 0;
                for s in slices {
                    let take = s.len().min(room);
                    out.extend_from_slice(&s[..take]);
                    room -= take;
                    n += take;
                    if room == 0 {
                        break;
                    }
                }
                Ok(n)
            })
            .expect("no error");
        out
    }

    #[test]
    fn shared_and_own_packets_leave_in_queue_order_even_in_small_writes() {
        let mut outbox = Outbox::new(1 << 20);
        let pong = Packet::Pong { nonce: 1 };
        let mut expected = Vec::new();
        for i in 0..200u8 {
            if i % 3 == 0 {
                assert_eq!(outbox.push_packet(&pong), Pushed::Queued);
                let mut b = BytesMut::new();
                suda_protocol::encode(&pong, &mut b).expect("encodes");
                expected.extend_from_slice(&b);
            } else {
                let shared = Bytes::from(vec![i; usize::from(i) + 1]);
                expected.extend_from_slice(&shared);
                assert_eq!(outbox.push_shared(shared, Instant::now()), Pushed::Queued);
            }
        }
        assert_eq!(outbox.queued(), expected.len());
        let out = drain(&mut outbox, 7);
        assert_eq!(out, expected);
        assert!(outbox.is_empty());
    }

    #[test]
    fn small_shared_packets_behind_a_queued_one_leave_in_one_piece() {
        let mut outbox = Outbox::new(1 << 20);
        let start = Instant::now();
        let mut expected = Vec::new();
        for i in 0..40u8 {
            let packet = Bytes::from(vec![i; 90]);
            expected.extend_from_slice(&packet);
            let at = start + std::time::Duration::from_millis(u64::from(i));
            assert_eq!(outbox.push_shared(packet, at), Pushed::Queued);
        }
        let large = Bytes::from(vec![0xAB; COALESCE_MAX + 1]);
        expected.extend_from_slice(&large);
        outbox.push_shared(large, start);
        let mut pieces = Vec::new();
        let mut out = Vec::new();
        outbox
            .flush_into(|slices| {
                pieces.push(slices.len());
                let mut n = 0;
                for slice in slices {
                    out.extend_from_slice(slice);
                    n += slice.len();
                }
                Ok(n)
            })
            .expect("no error");
        assert_eq!(out, expected);
        assert_eq!(
            pieces,
            [3],
            "the first packet, the other 39 copied together, the large one"
        );
        assert_eq!(outbox.take_completed_since(), Some(start));
    }

    #[test]
    fn copied_and_encoded_notifications_keep_their_place_in_the_queue() {
        let mut outbox = Outbox::new(1 << 20);
        let start = Instant::now();
        let whisper = Packet::Pong { nonce: 3 };
        let mut encoded = BytesMut::new();
        suda_protocol::encode(&whisper, &mut encoded).expect("encodes");
        let large = Bytes::from(vec![7; COALESCE_MAX + 1]);
        let mut expected = Vec::new();
        outbox.push_shared(large.clone(), start);
        expected.extend_from_slice(&large);
        let later = start + std::time::Duration::from_millis(5);
        assert_eq!(outbox.push_copy(b"copied", later), Pushed::Queued);
        expected.extend_from_slice(b"copied");
        assert_eq!(outbox.push_notification(&whisper, later), Pushed::Queued);
        expected.extend_from_slice(&encoded);
        outbox.push_shared(large.clone(), later);
        expected.extend_from_slice(&large);
        assert_eq!(outbox.push_copy(b"last", later), Pushed::Queued);
        expected.extend_from_slice(b"last");
        assert_eq!(outbox.queued(), expected.len());
        assert_eq!(drain(&mut outbox, 3), expected);
        assert_eq!(outbox.take_completed_since(), Some(start));
    }

    #[test]
    fn a_copy_past_the_limit_overflows_like_any_push() {
        let mut outbox = Outbox::new(10);
        assert_eq!(
            outbox.push_copy(b"12345678", Instant::now()),
            Pushed::Queued
        );
        assert_eq!(outbox.push_copy(b"123", Instant::now()), Pushed::OverLimit);
        assert!(outbox.overflowed());
    }

    #[test]
    fn an_emptied_outbox_keeps_no_buffer_and_a_hibernating_one_no_queue() {
        let mut outbox = Outbox::new(1 << 20);
        outbox.push_packet(&Packet::Pong { nonce: 7 });
        outbox.push_shared(Bytes::from_static(b"small"), Instant::now());
        assert_eq!(
            drain(&mut outbox, 1000).len(),
            12 + 5,
            "a PONG and the five bytes"
        );
        let queue = outbox.queue.as_ref().expect("a queue until hibernation");
        assert_eq!(queue.tail.capacity(), 0);
        outbox.hibernate(0, std::sync::Arc::default());
        assert!(
            outbox.queue.is_none(),
            "a hibernating session's outbox holds no queue"
        );
        assert!(outbox.is_empty());
        outbox.push_packet(&Packet::Pong { nonce: 8 });
        assert_eq!(
            drain(&mut outbox, 1000).len(),
            12,
            "pushes after hibernation are queued"
        );
    }

    #[test]
    fn would_block_keeps_the_rest_queued() {
        let mut outbox = Outbox::new(1 << 20);
        outbox.push_shared(Bytes::from_static(b"hello world"), Instant::now());
        let mut calls = 0;
        let written = outbox
            .flush_into(|slices| {
                calls += 1;
                if calls == 1 {
                    Ok(slices[0].len().min(5))
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            })
            .expect("no error");
        assert_eq!(written, 5);
        assert_eq!(outbox.queued(), 6);
        assert_eq!(drain(&mut outbox, 100), b" world");
    }

    #[test]
    fn passing_the_limit_empties_the_queue_and_refuses_more() {
        let mut outbox = Outbox::new(100);
        assert_eq!(
            outbox.push_shared(Bytes::from(vec![0; 60]), Instant::now()),
            Pushed::Queued
        );
        assert_eq!(
            outbox.push_shared(Bytes::from(vec![0; 60]), Instant::now()),
            Pushed::OverLimit
        );
        assert!(outbox.overflowed());
        assert_eq!(outbox.queued(), 0);
        assert_eq!(
            outbox.push_shared(Bytes::from(vec![0; 1]), Instant::now()),
            Pushed::Refused
        );
    }

    #[test]
    fn overflow_keeps_the_rest_of_a_half_written_piece_so_the_stream_stays_whole() {
        let mut outbox = Outbox::new(100);
        outbox.push_shared(Bytes::from_static(b"0123456789"), Instant::now());
        outbox.push_shared(Bytes::from_static(b"abcdefghij"), Instant::now());
        let mut first = true;
        outbox
            .flush_into(|_| {
                if std::mem::replace(&mut first, false) {
                    Ok(4)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                }
            })
            .expect("no error");
        assert_eq!(
            outbox.push_shared(Bytes::from(vec![0; 100]), Instant::now()),
            Pushed::OverLimit
        );
        outbox.seal_with(ErrorCode::SLOW_CONSUMER, "slow");
        let out = drain(&mut outbox, 1000);
        assert_eq!(&out[..6], b"456789", "the started piece is finished");
        assert_eq!(&out[8..10], &[0xff, 0x01], "then the goodbye, nothing else");
    }

    #[test]
    fn own_responses_count_against_the_limit() {
        let mut outbox = Outbox::new(64);
        let res = Packet::BroadcastRes {
            result: ResultCode::OK,
            message_id: 1,
        };
        let mut n = 0;
        while outbox.push_packet(&res) == Pushed::Queued {
            n += 1;
        }
        assert_eq!(n, 64 / 13);
        assert!(outbox.overflowed());
    }

    #[test]
    fn the_seal_goes_last_and_nothing_follows_it() {
        let mut outbox = Outbox::new(1 << 20);
        outbox.push_shared(Bytes::from_static(b"abc"), Instant::now());
        outbox.seal_with(ErrorCode::SERVER_SHUTDOWN, &"é".repeat(200));
        assert_eq!(
            outbox.push_shared(Bytes::from_static(b"x"), Instant::now()),
            Pushed::Refused
        );
        let out = drain(&mut outbox, 1000);
        assert_eq!(&out[..3], b"abc");
        let mut rest = BytesMut::from(&out[3..]);
        let packet = suda_protocol::decode(&mut rest, 65535)
            .expect("valid")
            .expect("complete");
        let Packet::ErrorNotify { code, reason } = packet else {
            panic!("not an error notify: {packet:?}");
        };
        assert_eq!(code, ErrorCode::SERVER_SHUTDOWN);
        assert_eq!(reason.to_str().expect("utf8").chars().count(), 127);
    }
}
