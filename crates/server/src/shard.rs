//! Worker shards: one thread, one single-threaded runtime, and the sessions it accepted.
//!
//! A shard owns its sessions outright, so queueing a packet to any of them is a plain push on
//! this thread — no lock, no atomic handshake per recipient. A broadcast crosses to each other
//! shard once, as one message holding the shared packet bytes, and that shard fans it out to its
//! own sessions. The inbox between shards is bounded: a shard that falls behind slows the senders
//! feeding it (their reads pause) instead of growing memory.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use suda_protocol::{ErrorCode, PacketType};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::directory::Route;
use crate::hibernate::Patience;
use crate::ids::WallClock;
use crate::outbox::{Outbox, Pushed};
use crate::resume::{ReplayLog, delivery_mark, notification_mark};
use crate::rooms::Room;
use crate::server::Shared;
use crate::session::SessionId;
use crate::stats::{ShardStats, bump};

/// Encoded chat packets on their way to recipients: `count` packets of type `kind`, back to back
/// in `packets`, the oldest accepted at `accepted_at`.
#[derive(Debug, Clone)]
pub(crate) struct Fanout {
    pub(crate) packets: Bytes,
    pub(crate) count: u32,
    pub(crate) kind: PacketType,
    pub(crate) accepted_at: Instant,
    /// The [`delivery_mark`] of `packets`, found once here rather than by every recipient.
    pub(crate) mark: u64,
}

impl Fanout {
    /// `count` packets of type `kind`, back to back in `packets`.
    pub(crate) fn new(packets: Bytes, count: u32, kind: PacketType, accepted_at: Instant) -> Self {
        Self {
            mark: delivery_mark(&packets),
            packets,
            count,
            kind,
            accepted_at,
        }
    }
}

/// Messages one shard sends another.
#[derive(Debug)]
pub(crate) enum ShardMessage {
    /// Queue to every logged-in session of the shard except `exclude`.
    Broadcast { fanout: Fanout, exclude: SessionId },
    /// Queue each to its session, if it is still there, in order.
    DeliverMany(Vec<(SessionId, Fanout)>),
    /// Queue to the shard's members of room `room` except `exclude`; then, for a kick, take
    /// `remove` out of the room.
    Room {
        room: u64,
        fanout: Fanout,
        exclude: Option<SessionId>,
        remove: Option<SessionId>,
    },
    /// Whispers from one read: each session gets its slice of `packets` (one encoded
    /// notification), if it is still there, in order.
    Whispers {
        packets: Bytes,
        to: Vec<(SessionId, Range<u32>)>,
        accepted_at: Instant,
    },
    /// Queue to the session if it is still there and speaks protocol 1.3.
    DeliverModern(SessionId, Fanout),
    /// A system notice for every logged-in session: `modern` to those that speak protocol 1.3,
    /// `legacy` to the others.
    Notice { modern: Fanout, legacy: Fanout },
    /// End the sessions `who` names, with this `ERROR_NOTIFY`.
    Eject {
        who: Ejected,
        code: ErrorCode,
        reason: Arc<str>,
    },
}

/// The `ERROR_NOTIFY` an ejected session ends with.
pub(crate) type Ejection = (ErrorCode, Arc<str>);

/// Whose sessions an [`ShardMessage::Eject`] ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ejected {
    Session(SessionId),
    Address(IpAddr),
}

/// `items` grouped by the worker their route names, each group in the order given.
fn by_shard<T>(items: impl IntoIterator<Item = (Route, T)>) -> Vec<Vec<(SessionId, T)>> {
    let mut groups: Vec<Vec<(SessionId, T)>> = Vec::new();
    for (to, item) in items {
        if groups.len() <= to.shard {
            groups.resize_with(to.shard + 1, Vec::new);
        }
        groups[to.shard].push((to.session_id, item));
    }
    groups
}

/// Shard messages waiting in one inbox at most; beyond that senders wait.
pub(crate) const INBOX_CAPACITY: usize = 1024;
/// Messages handled per inbox wake-up before yielding to the connections.
const INBOX_BATCH: usize = 64;
/// Size of a pooled read buffer.
pub(crate) const READ_BUFFER_SIZE: usize = 16 * 1024;
/// Read buffers a shard keeps for reuse.
const READ_BUFFER_POOL: usize = 64;

/// A session as the shard sees it: where to queue its packets.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: SessionId,
    pub(crate) outbox: RefCell<Outbox>,
    /// What was delivered, for replay on resume; only for sessions that asked for a token.
    /// Boxed: most sessions never take a token, and every idle one would carry its size.
    pub(crate) replay: RefCell<Option<Box<ReplayLog>>>,
    /// Between connections: deliveries go to the replay log only.
    pub(crate) detached: Cell<bool>,
    /// Whether the session has used a protocol 1.3 request, and so may be sent 1.3 packets.
    pub(crate) modern: Cell<bool>,
    /// The address of the current connection, for IP bans (IPv4 mapped into IPv6: one byte
    /// less than an `IpAddr`, which takes this struct to a smaller allocation).
    ip: Cell<Ipv6Addr>,
    /// The rooms the session is in.
    /// (A boxed slice, rebuilt on a join or leave: a `Vec`'s capacity would cost every
    /// session 8 bytes.)
    pub(crate) rooms: RefCell<Box<[Arc<Room>]>>,
    /// Why the session was told to end (see [`Outbox::eject`]).
    pub(crate) ejection: RefCell<Option<Box<Ejection>>>,
    /// Index in [`Members::list`] while logged in.
    slot: Cell<u32>,
    /// Whether the session may hibernate once quiet: logged in on a plain connection, reading.
    pub(crate) may_hibernate: Cell<bool>,
    /// Whether the session woke since the last hibernation sweep (see [`crate::hibernate`]).
    pub(crate) busy: Cell<bool>,
    /// Until the session keeps a replay log: the [`delivery_mark`] of the last notification
    /// delivered to it (0: none), where its log will start. A session asks for its token only
    /// after its login is answered, and whatever reaches it meanwhile (offline whispers, the
    /// first chat) must count for a resume: as seen if the client names the last of it, as
    /// missed if the client names anything older.
    pub(crate) unlogged_mark: Cell<u64>,
}

impl Member {
    pub(crate) fn new(id: SessionId, queue_limit: usize) -> Rc<Self> {
        Rc::new(Self {
            id,
            outbox: RefCell::new(Outbox::new(queue_limit)),
            replay: RefCell::new(None),
            detached: Cell::new(false),
            modern: Cell::new(false),
            ip: Cell::new(Ipv6Addr::UNSPECIFIED),
            rooms: RefCell::default(),
            ejection: RefCell::new(None),
            slot: Cell::new(u32::MAX),
            may_hibernate: Cell::new(false),
            busy: Cell::new(false),
            unlogged_mark: Cell::new(0),
        })
    }

    /// The address of the current connection.
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip.get().to_canonical()
    }

    /// Sets the address of the current connection.
    pub(crate) fn set_ip(&self, ip: IpAddr) {
        self.ip.set(match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        });
    }

    /// Queues chat notifications to this session (and records them for replay).
    pub(crate) fn deliver(&self, fanout: &Fanout) -> Pushed {
        if let Some(log) = self.replay.borrow_mut().as_mut() {
            log.record(&fanout.packets, fanout.count);
            if self.detached.get() {
                return Pushed::Queued;
            }
        } else {
            self.unlogged_mark.set(fanout.mark);
        }
        // A member's outbox is only borrowed by its own task outside of awaits, and this runs
        // on the same thread, so the borrow cannot clash. An overflowing outbox marks itself;
        // its session ends itself (and is counted) on its next turn.
        self.outbox
            .borrow_mut()
            .push_shared(fanout.packets.clone(), fanout.accepted_at)
    }

    /// Queues one notification for this session alone (a whisper), encoded straight into its
    /// outbox; recorded for replay first if the session keeps a log.
    pub(crate) fn deliver_packet(
        &self,
        packet: &suda_protocol::Packet,
        kind: PacketType,
        accepted_at: Instant,
    ) -> Pushed {
        if self.replay.borrow().is_some() {
            let mut encoded = BytesMut::new();
            // Cannot fail: server-built packets are within the protocol's limits.
            let _ = suda_protocol::encode(packet, &mut encoded);
            return self.deliver(&Fanout::new(encoded.freeze(), 1, kind, accepted_at));
        }
        self.unlogged_mark.set(notification_mark(packet));
        self.outbox
            .borrow_mut()
            .push_notification(packet, accepted_at)
    }

    /// Queues a copy of `packets[range]`, one notification of `kind` (see
    /// [`Outbox::push_copy`]); recorded for replay first if the session keeps a log.
    fn deliver_copy(
        &self,
        packets: &Bytes,
        range: Range<usize>,
        kind: PacketType,
        accepted_at: Instant,
    ) -> Pushed {
        if self.replay.borrow().is_some() {
            return self.deliver(&Fanout::new(packets.slice(range), 1, kind, accepted_at));
        }
        self.unlogged_mark
            .set(delivery_mark(&packets[range.clone()]));
        self.outbox
            .borrow_mut()
            .push_copy(&packets[range], accepted_at)
    }

    /// Tells the session to end with `code` and `reason`.
    pub(crate) fn eject(&self, code: ErrorCode, reason: Arc<str>) {
        *self.ejection.borrow_mut() = Some(Box::new((code, reason)));
        self.outbox.borrow_mut().eject();
    }

    /// The room called `key` (folded) that the session is in.
    pub(crate) fn room(&self, key: &str) -> Option<Arc<Room>> {
        self.rooms
            .borrow()
            .iter()
            .find(|room| *room.key == *key)
            .cloned()
    }
}

/// The logged-in sessions of one shard: a dense list to fan out over, and an index by id.
#[derive(Debug, Default)]
struct Members {
    list: Vec<Rc<Member>>,
    // Session ids are the server's own, not chosen by clients: a fast unkeyed-strength hash is
    // enough, and SipHash showed in the whisper profile.
    by_id: HashMap<SessionId, Rc<Member>, foldhash::fast::RandomState>,
}

/// One worker's state. Lives on its thread only.
pub(crate) struct Shard {
    pub(crate) index: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stats: Arc<ShardStats>,
    members: RefCell<Members>,
    /// This shard's sessions in each room, by room id.
    rooms: RefCell<HashMap<u64, Vec<Rc<Member>>, foldhash::fast::RandomState>>,
    read_buffers: RefCell<Vec<BytesMut>>,
    /// Every session of this shard, logged in or not, so a shutdown can reach each one, with
    /// the state of those that hibernate.
    sessions: RefCell<slab::Slab<SessionSlot>>,
    /// Where this worker's sessions hibernate, if they do (see [`crate::hibernate`]).
    #[cfg(unix)]
    pub(crate) hibernation: Option<crate::hibernate::Hibernation>,
    /// Sessions hibernating now.
    hibernating: Cell<usize>,
    /// Stamps this worker's chat messages.
    wall_clock: WallClock,
    /// Fired during shutdown once every message for this shard has been queued to its sessions.
    pub(crate) flushed: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

/// A session in its shard's table.
struct SessionSlot {
    member: Rc<Member>,
    /// The whole session, while it hibernates.
    hibernating: Option<crate::session::Hibernating>,
    /// How long the session must be quiet before it is asked to hibernate.
    patience: Patience,
}

impl Shard {
    pub(crate) fn new(
        index: usize,
        shared: Arc<Shared>,
        #[cfg(unix)] hibernation: Option<crate::hibernate::Hibernation>,
    ) -> Self {
        Self {
            index,
            stats: shared.stats.0[index].clone(),
            shared,
            members: RefCell::default(),
            rooms: RefCell::default(),
            read_buffers: RefCell::default(),
            sessions: RefCell::default(),
            #[cfg(unix)]
            hibernation,
            hibernating: Cell::new(0),
            wall_clock: WallClock::default(),
            flushed: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// The Unix time in milliseconds at `at` (the time of the read that brought a message),
    /// read from the system clock at most once a millisecond on this worker (see
    /// [`WallClock`]).
    pub(crate) fn unix_ms_at(&self, at: Instant) -> u64 {
        self.wall_clock.ms_at(at.into_std())
    }

    /// Registers a new session's `member` until [`Shard::close_session`] with the returned key.
    pub(crate) fn open_session(&self, member: &Rc<Member>) -> usize {
        self.sessions.borrow_mut().insert(SessionSlot {
            member: member.clone(),
            hibernating: None,
            patience: Patience::default(),
        })
    }

    /// Forgets the session registered under `key`.
    pub(crate) fn close_session(&self, key: usize) {
        // Only an awake session ends, so the slot holds no session whose drop would re-enter.
        let slot = self.sessions.borrow_mut().try_remove(key);
        drop(slot);
    }

    /// Tells every session of this shard to end for the shutdown: each wakes, finds itself
    /// ejected with no moderator's reason, and closes as shut down. One sweep here instead of a
    /// shutdown waiter in every session's state.
    pub(crate) fn shut_down_sessions(&self) {
        for (_, slot) in self.sessions.borrow().iter() {
            slot.member.outbox.borrow_mut().eject();
        }
    }

    /// Keeps the session `key` while it hibernates.
    pub(crate) fn hibernate(&self, key: usize, session: crate::session::Hibernating) {
        if let Some(slot) = self.sessions.borrow_mut().get_mut(key) {
            slot.hibernating = Some(session);
            slot.patience.fell_asleep();
            self.hibernating.set(self.hibernating.get() + 1);
        }
    }

    /// Takes the session `key` out of hibernation, if it hibernates.
    pub(crate) fn take_hibernating(&self, key: usize) -> Option<crate::session::Hibernating> {
        let mut sessions = self.sessions.borrow_mut();
        let slot = sessions.get_mut(key)?;
        let session = slot.hibernating.take()?;
        slot.patience.woke();
        self.hibernating.set(self.hibernating.get() - 1);
        Some(session)
    }

    /// How many of this shard's sessions hibernate now.
    pub(crate) fn hibernating(&self) -> usize {
        self.hibernating.get()
    }

    /// The keys of the sessions hibernating now.
    pub(crate) fn hibernating_keys(&self) -> Vec<usize> {
        let sessions = self.sessions.borrow();
        sessions
            .iter()
            .filter(|(_, slot)| slot.hibernating.is_some())
            .map(|(key, _)| key)
            .collect()
    }

    /// One hibernation sweep (see [`crate::hibernate`]): asks the sessions that stayed quiet
    /// for as many sweeps as their [`Patience`] needs to hibernate, and returns the hibernating
    /// ones whose deadline has come, to be woken.
    pub(crate) fn sweep_for_hibernation(&self, now: Instant) -> Vec<usize> {
        let mut sessions = self.sessions.borrow_mut();
        let mut due = Vec::new();
        for (key, slot) in sessions.iter_mut() {
            match &slot.hibernating {
                Some(session) => {
                    slot.patience.asleep_sweep();
                    if session.deadline() <= now {
                        due.push(key);
                    }
                }
                None => {
                    let member = &slot.member;
                    let quiet_enough = slot.patience.awake_sweep(member.busy.replace(false));
                    if quiet_enough && member.may_hibernate.get() {
                        member.outbox.borrow_mut().ask_to_hibernate();
                    }
                }
            }
        }
        due
    }

    /// Makes `member` reachable by broadcasts and deliveries.
    pub(crate) fn join(&self, member: &Rc<Member>) {
        let mut members = self.members.borrow_mut();
        // A shard's sessions are far fewer than 2^32 (each holds memory).
        member
            .slot
            .set(u32::try_from(members.list.len()).expect("fewer than 2^32 sessions"));
        members.list.push(member.clone());
        members.by_id.insert(member.id, member.clone());
    }

    /// Makes `member` unreachable. Idempotent.
    pub(crate) fn leave(&self, member: &Member) {
        let mut members = self.members.borrow_mut();
        if members.by_id.remove(&member.id).is_none() {
            return;
        }
        let slot = member.slot.replace(u32::MAX) as usize;
        members.list.swap_remove(slot);
        if let Some(moved) = members.list.get(slot) {
            moved.slot.set(slot as u32);
        }
    }

    pub(crate) fn count_deliveries(&self, fanout: &Fanout, recipients: u64) {
        self.count_delivered(fanout.kind, u64::from(fanout.count) * recipients);
    }

    fn count_delivered(&self, kind: PacketType, packets: u64) {
        bump(&self.stats.deliveries, packets);
        self.stats.packets_out(kind, packets);
    }

    /// Queues a whisper to the session `to` of this shard, encoded straight into its outbox.
    /// False when the session is not (or no longer) here.
    pub(crate) fn whisper_local(
        &self,
        to: SessionId,
        packet: &suda_protocol::Packet,
        accepted_at: Instant,
    ) -> bool {
        let members = self.members.borrow();
        let Some(member) = members.by_id.get(&to) else {
            return false;
        };
        // An overflow marks the outbox; its session ends itself (and is counted) on its turn.
        if member.deliver_packet(packet, PacketType::WhisperNotify, accepted_at) == Pushed::Queued {
            self.count_delivered(PacketType::WhisperNotify, 1);
        }
        true
    }

    /// Sends a read's whispers for other workers: `packets` holds them encoded back to back,
    /// each route's range its notification. One inbox message per worker, and the buffer is
    /// shared once per worker, not once per whisper. A session that ends while its whisper
    /// travels loses it silently, as if it had disconnected a moment after receiving it.
    pub(crate) async fn send_whispers(
        &self,
        packets: Bytes,
        whispers: Vec<(Route, Range<u32>)>,
        accepted_at: Instant,
    ) {
        for (shard, to) in by_shard(whispers).into_iter().enumerate() {
            if to.is_empty() {
                continue;
            }
            if shard == self.index {
                self.whispers_local(&packets, to, accepted_at);
            } else if let Some(inbox) = self.shared.inboxes().get(shard) {
                // Fails only when that shard has already stopped during shutdown.
                let _ = inbox
                    .send(ShardMessage::Whispers {
                        packets: packets.clone(),
                        to,
                        accepted_at,
                    })
                    .await;
            }
        }
    }

    /// Queues each whisper of [`ShardMessage::Whispers`] to its session, if it is still here.
    fn whispers_local(
        &self,
        packets: &Bytes,
        to: Vec<(SessionId, Range<u32>)>,
        accepted_at: Instant,
    ) {
        let members = self.members.borrow();
        let mut delivered = 0;
        for (id, range) in to {
            let Some(member) = members.by_id.get(&id) else {
                continue;
            };
            let range = range.start as usize..range.end as usize;
            if member.deliver_copy(packets, range, PacketType::WhisperNotify, accepted_at)
                == Pushed::Queued
            {
                delivered += 1;
            }
        }
        self.count_delivered(PacketType::WhisperNotify, delivered);
    }

    /// Queues `fanout` to every local member except `exclude`.
    fn fan_out_local(&self, fanout: &Fanout, exclude: SessionId) {
        let members = self.members.borrow();
        let mut delivered = 0;
        for member in &members.list {
            if member.id != exclude && member.deliver(fanout) == Pushed::Queued {
                delivered += 1;
            }
        }
        self.count_deliveries(fanout, delivered);
    }

    /// Queues `fanout` to one local session. False when it is not (or no longer) here.
    fn deliver_local(&self, to: SessionId, fanout: Fanout) -> bool {
        let members = self.members.borrow();
        let Some(member) = members.by_id.get(&to) else {
            return false;
        };
        if member.deliver(&fanout) == Pushed::Queued {
            self.count_deliveries(&fanout, 1);
        }
        true
    }

    /// Sends `packets` to every logged-in session of every shard except `exclude`.
    ///
    /// Waits only when another shard's inbox is full, which is the back-pressure that keeps a
    /// flooding sender from outrunning the server.
    pub(crate) async fn broadcast(&self, fanout: Fanout, exclude: SessionId) {
        self.fan_out_local(&fanout, exclude);
        for (index, inbox) in self.shared.inboxes().iter().enumerate() {
            if index != self.index {
                // Fails only when that shard has already stopped during shutdown.
                let _ = inbox
                    .send(ShardMessage::Broadcast {
                        fanout: fanout.clone(),
                        exclude,
                    })
                    .await;
            }
        }
    }

    /// Sends each fan-out to its session: one inbox message per other shard, in order.
    pub(crate) async fn deliver_many(&self, deliveries: Vec<(Route, Fanout)>) {
        for (shard, batch) in by_shard(deliveries).into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            if shard == self.index {
                for (to, fanout) in batch {
                    self.deliver_local(to, fanout);
                }
            } else if let Some(inbox) = self.shared.inboxes().get(shard) {
                // Fails only when that shard has already stopped during shutdown.
                let _ = inbox.send(ShardMessage::DeliverMany(batch)).await;
            }
        }
    }

    /// Puts `member` in `room` on this shard: room traffic reaches it from now on.
    pub(crate) fn room_join_local(&self, room: &Arc<Room>, member: &Rc<Member>) {
        self.rooms
            .borrow_mut()
            .entry(room.id)
            .or_default()
            .push(member.clone());
        let mut rooms = member.rooms.borrow_mut();
        let mut joined = std::mem::take(&mut *rooms).into_vec();
        joined.push(room.clone());
        *rooms = joined.into_boxed_slice();
    }

    /// Takes the session `session_id` out of room `room_id` on this shard. Idempotent.
    pub(crate) fn room_leave_local(&self, room_id: u64, session_id: SessionId) {
        let mut rooms = self.rooms.borrow_mut();
        let Some(list) = rooms.get_mut(&room_id) else {
            return;
        };
        if let Some(position) = list.iter().position(|m| m.id == session_id) {
            let member = list.swap_remove(position);
            let mut rooms = member.rooms.borrow_mut();
            let mut kept = std::mem::take(&mut *rooms).into_vec();
            kept.retain(|room| room.id != room_id);
            *rooms = kept.into_boxed_slice();
        }
        if list.is_empty() {
            rooms.remove(&room_id);
        }
    }

    /// Queues `fanout` to this shard's members of `room_id` except `exclude`, then takes
    /// `remove` out of the room (after it got the fan-out: a kick's last word).
    fn fan_out_room_local(
        &self,
        room_id: u64,
        fanout: &Fanout,
        exclude: Option<SessionId>,
        remove: Option<SessionId>,
    ) {
        {
            let rooms = self.rooms.borrow();
            if let Some(list) = rooms.get(&room_id) {
                let mut delivered = 0;
                for member in list {
                    if Some(member.id) != exclude && member.deliver(fanout) == Pushed::Queued {
                        delivered += 1;
                    }
                }
                self.count_deliveries(fanout, delivered);
            }
        }
        if let Some(removed) = remove {
            self.room_leave_local(room_id, removed);
        }
    }

    /// Sends `fanout` to the members of `room` except `exclude`: here at once, and once to each
    /// worker in `shards` (those that have members, from the room's state).
    pub(crate) async fn room_fanout(
        &self,
        room: &Room,
        fanout: Fanout,
        exclude: Option<SessionId>,
        remove: Option<SessionId>,
        shards: &[usize],
    ) {
        self.fan_out_room_local(room.id, &fanout, exclude, remove);
        for &shard in shards {
            if shard == self.index {
                continue;
            }
            if let Some(inbox) = self.shared.inboxes().get(shard) {
                // Fails only when that shard has already stopped during shutdown.
                let _ = inbox
                    .send(ShardMessage::Room {
                        room: room.id,
                        fanout: fanout.clone(),
                        exclude,
                        remove,
                    })
                    .await;
            }
        }
    }

    /// Sends a protocol 1.3 notification to one session, if it speaks 1.3 (older clients would
    /// take an unknown packet type for a corrupt stream).
    pub(crate) async fn deliver_modern(&self, to: Route, fanout: Fanout) {
        if to.shard == self.index {
            return self.deliver_modern_local(to.session_id, &fanout);
        }
        if let Some(inbox) = self.shared.inboxes().get(to.shard) {
            let _ = inbox
                .send(ShardMessage::DeliverModern(to.session_id, fanout))
                .await;
        }
    }

    fn deliver_modern_local(&self, to: SessionId, fanout: &Fanout) {
        let members = self.members.borrow();
        if let Some(member) = members.by_id.get(&to) {
            if member.modern.get() && member.deliver(fanout) == Pushed::Queued {
                self.count_deliveries(fanout, 1);
            }
        }
    }

    /// Queues a system notice to every logged-in session of every shard.
    pub(crate) async fn notice(&self, modern: Fanout, legacy: Fanout) {
        self.notice_local(&modern, &legacy);
        for (index, inbox) in self.shared.inboxes().iter().enumerate() {
            if index != self.index {
                let _ = inbox
                    .send(ShardMessage::Notice {
                        modern: modern.clone(),
                        legacy: legacy.clone(),
                    })
                    .await;
            }
        }
    }

    fn notice_local(&self, modern: &Fanout, legacy: &Fanout) {
        let members = self.members.borrow();
        let (mut new, mut old) = (0, 0);
        for member in &members.list {
            if member.modern.get() {
                new += u64::from(member.deliver(modern) == Pushed::Queued);
            } else {
                old += u64::from(member.deliver(legacy) == Pushed::Queued);
            }
        }
        self.count_deliveries(modern, new);
        self.count_deliveries(legacy, old);
    }

    /// Ends the sessions `who` names, on whichever shards they are.
    pub(crate) async fn eject(&self, who: Ejected, code: ErrorCode, reason: Arc<str>) {
        self.eject_local(who, code, reason.clone());
        for (index, inbox) in self.shared.inboxes().iter().enumerate() {
            if index != self.index {
                let _ = inbox
                    .send(ShardMessage::Eject {
                        who,
                        code,
                        reason: reason.clone(),
                    })
                    .await;
            }
        }
    }

    fn eject_local(&self, who: Ejected, code: ErrorCode, reason: Arc<str>) {
        let members = self.members.borrow();
        match who {
            Ejected::Session(id) => {
                if let Some(member) = members.by_id.get(&id) {
                    member.eject(code, reason);
                }
            }
            Ejected::Address(ip) => {
                for member in &members.list {
                    if member.ip() == ip.to_canonical() {
                        member.eject(code, reason.clone());
                    }
                }
            }
        }
    }

    fn handle(&self, message: ShardMessage) {
        match message {
            ShardMessage::Broadcast { fanout, exclude } => self.fan_out_local(&fanout, exclude),
            ShardMessage::DeliverMany(deliveries) => {
                for (to, fanout) in deliveries {
                    self.deliver_local(to, fanout);
                }
            }
            ShardMessage::Room {
                room,
                fanout,
                exclude,
                remove,
            } => self.fan_out_room_local(room, &fanout, exclude, remove),
            ShardMessage::Notice { modern, legacy } => self.notice_local(&modern, &legacy),
            ShardMessage::Whispers {
                packets,
                to,
                accepted_at,
            } => self.whispers_local(&packets, to, accepted_at),
            ShardMessage::DeliverModern(to, fanout) => self.deliver_modern_local(to, &fanout),
            ShardMessage::Eject { who, code, reason } => self.eject_local(who, code, reason),
        }
    }

    /// Serves this shard's inbox until every connection of the server has stopped reading during
    /// shutdown, then queues what is left and fires [`Shard::flushed`].
    pub(crate) async fn run_inbox(self: Rc<Self>, mut inbox: mpsc::Receiver<ShardMessage>) {
        let mut batch = Vec::with_capacity(INBOX_BATCH);
        loop {
            tokio::select! {
                biased;
                received = inbox.recv_many(&mut batch, INBOX_BATCH) => {
                    if received == 0 {
                        break;
                    }
                    for message in batch.drain(..) {
                        self.handle(message);
                    }
                }
                () = self.shared.readers_stopped.cancelled() => break,
            }
        }
        // Every sender has stopped reading, so nothing more can arrive: what is queued is final.
        while let Ok(message) = inbox.try_recv() {
            self.handle(message);
        }
        self.flushed.cancel();
    }

    /// A read buffer from the pool, with room for at least one full read.
    pub(crate) fn take_read_buffer(&self) -> BytesMut {
        let mut buf = self.read_buffers.borrow_mut().pop().unwrap_or_default();
        buf.reserve(READ_BUFFER_SIZE);
        buf
    }

    /// Returns a read buffer to the pool once nothing refers into it any more.
    pub(crate) fn return_read_buffer(&self, mut buf: BytesMut) {
        buf.clear();
        let mut pool = self.read_buffers.borrow_mut();
        if pool.len() < READ_BUFFER_POOL && buf.capacity() <= 4 * READ_BUFFER_SIZE {
            pool.push(buf);
        }
    }
}
