//! Rooms: the registry of every room, and each room's shared state.
//!
//! A room's *settings and membership* are shared by all workers (one short `Mutex` per room,
//! never held across an `.await`); its *fan-out* is not. Each worker keeps, per room, the list of
//! its own sessions in it (see [`crate::shard`]), so a room message crosses to each other worker
//! that has members once, as one shared buffer, exactly like a broadcast — encoded once, queued
//! to each member with a plain push, slow members isolated by their own outbox limits.
//!
//! The shared state says which workers have members (`per_shard`), so a message to a small room
//! does not wake workers that have nobody in it. Changes to membership happen under the room's
//! lock and on the member's own worker, so a member's worker learns of a join before anything
//! sent after it, and forgets a member before anything sent after its leave: a room's traffic
//! never reaches a non-member.
//!
//! Persistent rooms (created with the persistent flag, by an account) are also kept in the store
//! with their owner, topic, password and roles, and are loaded at start-up; temporary rooms are
//! gone with their last member.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use suda_protocol::{ResultCode, WireStr};
use tokio::time::Instant;

use crate::session::SessionId;

/// Longest room name, in bytes (all ASCII).
pub(crate) const MAX_ROOM_NAME: usize = 32;
/// Longest room topic, in bytes of UTF-8.
pub(crate) const MAX_TOPIC: usize = 512;
/// Longest room password, in bytes.
pub(crate) const MAX_ROOM_PASSWORD: usize = 64;

/// Most entries in each of a room's lists of operators, invitations and mutes: an owner cannot
/// grow a room's memory without bound.
pub(crate) const MAX_ROOM_LIST: usize = 1000;

/// `CREATE_ROOM_REQ` flag: kept in the store.
pub(crate) const FLAG_PERSISTENT: u8 = 1;
/// `CREATE_ROOM_REQ` flag: joining needs an invitation.
pub(crate) const FLAG_INVITE_ONLY: u8 = 2;
/// `JOIN_ROOM_RES` / `ROOM_ITEM` flag: joining needs a password.
pub(crate) const FLAG_HAS_PASSWORD: u8 = 4;

/// Room names: 1–32 of `A-Z a-z 0-9 _ - .`.
pub(crate) fn is_valid_room_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_ROOM_NAME
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A room's key: its name, ASCII-lowercased.
pub(crate) fn fold(name: &str) -> Box<str> {
    name.to_ascii_lowercase().into_boxed_str()
}

/// Compares two secrets without stopping at the first difference, so the time taken does not
/// tell how much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A session in a room.
#[derive(Debug, Clone)]
pub(crate) struct RoomMember {
    pub(crate) session_id: SessionId,
    pub(crate) shard: usize,
    /// The name as typed at login.
    pub(crate) name: Arc<str>,
}

/// What a user is in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Member = 0,
    Operator = 1,
    Owner = 2,
}

/// A room's mutable state, behind its lock.
#[derive(Debug)]
pub(crate) struct RoomState {
    /// Folded name of the owner.
    pub(crate) owner: Box<str>,
    pub(crate) topic: String,
    /// Empty: no password.
    pub(crate) password: String,
    pub(crate) invite_only: bool,
    /// Folded names.
    pub(crate) operators: HashSet<Box<str>>,
    /// Folded names.
    pub(crate) invited: HashSet<Box<str>>,
    /// Folded name to the end of the mute (`None`: until unmuted).
    pub(crate) muted: HashMap<Box<str>, Option<Instant>>,
    /// Members by folded name: sorted, for paging.
    pub(crate) members: BTreeMap<Box<str>, RoomMember>,
    /// Members per worker, by worker index.
    pub(crate) per_shard: Vec<u32>,
    /// Set when a temporary room lost its last member and left the registry.
    pub(crate) closed: bool,
}

impl RoomState {
    /// The role of the user with folded name `user`.
    pub(crate) fn role(&self, user: &str) -> Role {
        if *self.owner == *user {
            Role::Owner
        } else if self.operators.contains(user) {
            Role::Operator
        } else {
            Role::Member
        }
    }

    /// The flags shown in `JOIN_ROOM_RES` and `ROOM_ITEM`.
    pub(crate) fn flags(&self, persistent: bool) -> u8 {
        let mut flags = 0;
        if persistent {
            flags |= FLAG_PERSISTENT;
        }
        if self.invite_only {
            flags |= FLAG_INVITE_ONLY;
        }
        if !self.password.is_empty() {
            flags |= FLAG_HAS_PASSWORD;
        }
        flags
    }

    /// Whether members are shown only to members.
    pub(crate) fn is_private(&self) -> bool {
        self.invite_only || !self.password.is_empty()
    }

    /// Whether `user` (folded) is muted now; forgets a mute that has run out.
    pub(crate) fn is_muted(&mut self, user: &str, now: Instant) -> bool {
        match self.muted.get(user) {
            None => false,
            Some(None) => true,
            Some(Some(until)) if *until > now => true,
            Some(Some(_)) => {
                self.muted.remove(user);
                false
            }
        }
    }

    /// The workers that have members, except `except`.
    pub(crate) fn shards_with_members(&self, except: usize) -> Vec<usize> {
        self.per_shard
            .iter()
            .enumerate()
            .filter(|&(shard, &count)| shard != except && count > 0)
            .map(|(shard, _)| shard)
            .collect()
    }

    fn remove(&mut self, user: &str) -> Option<RoomMember> {
        let member = self.members.remove(user)?;
        if let Some(count) = self.per_shard.get_mut(member.shard) {
            *count = count.saturating_sub(1);
        }
        Some(member)
    }
}

/// One room.
#[derive(Debug)]
pub(crate) struct Room {
    /// Unique for the server's lifetime: a temporary room created again under the same name is
    /// another room, and nothing addressed to the old one reaches the new one's members.
    pub(crate) id: u64,
    pub(crate) key: Box<str>,
    /// The name as created, as notifications carry it.
    pub(crate) name: WireStr,
    pub(crate) persistent: bool,
    state: Mutex<RoomState>,
}

impl Room {
    /// The room's state. Held for a few map operations only, and never across an `.await`.
    pub(crate) fn state(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock leaves consistent maps behind (every update is a
        // single insert or remove), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a join was refused.
pub(crate) type JoinResult = Result<(u8, u32, String), ResultCode>;

/// What a new room starts with.
#[derive(Debug, Default)]
pub(crate) struct RoomSettings {
    pub(crate) persistent: bool,
    pub(crate) invite_only: bool,
    pub(crate) password: String,
    pub(crate) topic: String,
    /// Folded.
    pub(crate) owner: Box<str>,
    pub(crate) operators: Vec<String>,
    pub(crate) invited: Vec<String>,
}

/// Every room of the server, by folded name.
#[derive(Debug)]
pub(crate) struct RoomRegistry {
    rooms: DashMap<Box<str>, Arc<Room>>,
    next_id: AtomicU64,
    /// Rooms created and not closed. Reserved before a room is inserted, so creations racing
    /// on several workers cannot pass `max_rooms` together (counting the map would let them).
    live: AtomicUsize,
    workers: usize,
    max_rooms: usize,
}

impl RoomRegistry {
    pub(crate) fn new(workers: usize, max_rooms: usize) -> Self {
        Self {
            rooms: DashMap::new(),
            next_id: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            workers,
            max_rooms,
        }
    }

    /// The room called `name` (any case), unless it has closed.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<Room>> {
        let room = self.rooms.get(&*fold(name))?.value().clone();
        let closed = room.state().closed;
        (!closed).then_some(room)
    }

    /// Creates the room `name`. `ROOM_EXISTS` if it exists, `TOO_MANY_ROOMS` at the server's
    /// limit.
    pub(crate) fn create(
        &self,
        name: &str,
        settings: RoomSettings,
    ) -> Result<Arc<Room>, ResultCode> {
        if self.live.fetch_add(1, Ordering::AcqRel) >= self.max_rooms {
            self.live.fetch_sub(1, Ordering::AcqRel);
            return Err(ResultCode::TOO_MANY_ROOMS);
        }
        let key = fold(name);
        let room = Arc::new(Room {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            key: key.clone(),
            name: WireStr::from(name),
            persistent: settings.persistent,
            state: Mutex::new(RoomState {
                owner: settings.owner,
                topic: settings.topic,
                password: settings.password,
                invite_only: settings.invite_only,
                operators: settings.operators.into_iter().map(Into::into).collect(),
                invited: settings.invited.into_iter().map(Into::into).collect(),
                muted: HashMap::new(),
                members: BTreeMap::new(),
                per_shard: vec![0; self.workers],
                closed: false,
            }),
        });
        match self.rooms.entry(key) {
            Entry::Occupied(mut slot) => {
                // A temporary room that just closed may not have left the map yet.
                if !slot.get().state().closed {
                    self.live.fetch_sub(1, Ordering::AcqRel);
                    return Err(ResultCode::ROOM_EXISTS);
                }
                slot.insert(room.clone());
            }
            Entry::Vacant(slot) => {
                slot.insert(room.clone());
            }
        }
        Ok(room)
    }

    /// Marks a room closed and frees its place under `max_rooms`. Once per room: callers hold its
    /// lock and have seen it open.
    fn close(&self, state: &mut RoomState) {
        if !state.closed {
            state.closed = true;
            self.live.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Removes `room` again (its creation could not be stored).
    pub(crate) fn discard(&self, room: &Arc<Room>) {
        self.close(&mut room.state());
        self.rooms.remove_if(&room.key, |_, r| Arc::ptr_eq(r, room));
    }

    /// Adds `member` (folded name `user`) to `room` after the room's rules: password,
    /// invitation, capacity. `bypass` (a server operator) skips password and invitation.
    /// Returns the room's flags, member count and topic.
    pub(crate) fn join(
        &self,
        room: &Room,
        user: &str,
        member: RoomMember,
        password: &[u8],
        bypass: bool,
        max_members: usize,
    ) -> JoinResult {
        let mut state = room.state();
        if state.closed {
            return Err(ResultCode::ROOM_NOT_FOUND);
        }
        if state.members.contains_key(user) {
            return Err(ResultCode::ALREADY_IN_ROOM);
        }
        let privileged = bypass || state.role(user) != Role::Member || state.invited.contains(user);
        if !privileged {
            if state.invite_only {
                return Err(ResultCode::INVITE_ONLY);
            }
            if !state.password.is_empty() && !same_secret(state.password.as_bytes(), password) {
                return Err(ResultCode::BAD_ROOM_PASSWORD);
            }
        }
        if state.members.len() >= max_members {
            return Err(ResultCode::ROOM_FULL);
        }
        if let Some(count) = state.per_shard.get_mut(member.shard) {
            *count += 1;
        }
        state.members.insert(user.into(), member);
        let count = u32::try_from(state.members.len()).unwrap_or(u32::MAX);
        Ok((state.flags(room.persistent), count, state.topic.clone()))
    }

    /// Removes the member `user` (folded) from `room`, if `session_id` is that member. Closes a
    /// temporary room left empty. Returns the workers that still have members, or `None` when
    /// `user` was not (or no longer) a member.
    pub(crate) fn leave(
        &self,
        room: &Arc<Room>,
        user: &str,
        session_id: SessionId,
        my_shard: usize,
    ) -> Option<Vec<usize>> {
        let mut state = room.state();
        if state
            .members
            .get(user)
            .is_none_or(|m| m.session_id != session_id)
        {
            return None;
        }
        state.remove(user);
        let rest = state.shards_with_members(my_shard);
        if state.members.is_empty() && !room.persistent {
            self.close(&mut state);
            drop(state);
            self.rooms.remove_if(&room.key, |_, r| Arc::ptr_eq(r, room));
        }
        Some(rest)
    }

    /// Removes the member `user` (folded) from `room` for a kick. Returns the member removed
    /// and the workers that must hear of it (those with members, and the removed member's).
    pub(crate) fn remove_for_kick(
        &self,
        room: &Arc<Room>,
        user: &str,
        my_shard: usize,
    ) -> Option<(RoomMember, Vec<usize>)> {
        let mut state = room.state();
        let member = state.remove(user)?;
        let mut shards = state.shards_with_members(my_shard);
        if member.shard != my_shard && !shards.contains(&member.shard) {
            shards.push(member.shard);
        }
        if state.members.is_empty() && !room.persistent {
            self.close(&mut state);
            drop(state);
            self.rooms.remove_if(&room.key, |_, r| Arc::ptr_eq(r, room));
        }
        Some((member, shards))
    }

    /// Up to `limit` rooms whose key sorts after `after`, in key order.
    pub(crate) fn page(&self, after: &str, limit: usize) -> Vec<Arc<Room>> {
        let after = fold(after);
        let mut found: Vec<Arc<Room>> = self
            .rooms
            .iter()
            .filter(|entry| **entry.key() > *after)
            .map(|entry| entry.value().clone())
            .collect();
        // Sorting every room for a page is O(n log n) in the number of rooms, which `max_rooms`
        // bounds; paging requests are charged to the requester's rate limit.
        found.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        found.truncate(limit);
        found
    }
}
