//! Room requests: create, join, leave, list, members, chat, and the owner's and operators'
//! moderation; and leaving every room when the session ends.
//!
//! Every room event (joined, left, kicked, topic, …) is sent after this session's batched
//! messages are handed on, so a member sees one user's join, messages and leave in the order
//! they happened.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use suda_protocol::{Packet, PacketType, ResultCode, WireStr};
use suda_store::rooms::{RoomRole, StoredRoom};
use tokio::time::Instant;

use super::Session;
use super::chat::{Accepted, as_i64, clean_text};
use crate::auth::is_valid_username;
use crate::ids::unix_time_ms;
use crate::moderation::log_action;
use crate::rooms::{
    FLAG_INVITE_ONLY, FLAG_PERSISTENT, MAX_ROOM_LIST, MAX_ROOM_PASSWORD, MAX_TOPIC, Role, Room,
    RoomMember, RoomSettings, is_valid_room_name,
};
use crate::shard::Fanout;
use crate::stats::bump;
use suda_protocol::codes::{room_action as action, room_event as event};
use suda_store::history::HistoryMessage;

/// Most items in one page of `LIST_ROOMS_RES` or `ROOM_MEMBERS_RES`.
pub(super) const MAX_PAGE: u8 = 100;

/// The room name in a request, if valid.
fn room_name(name: &WireStr) -> Result<&str, ResultCode> {
    match name.to_str() {
        Ok(name) if is_valid_room_name(name.as_bytes()) => Ok(name),
        _ => Err(ResultCode::INVALID_ROOM_NAME),
    }
}

impl Session {
    /// The session speaks protocol 1.3 from now on, so it may be sent its notifications.
    pub(super) fn speaks_1_3(&self) {
        self.me.modern.set(true);
    }

    /// `(folded name, display name, whether a server operator)` of the logged-in user.
    fn who(&self) -> Result<(Box<str>, Arc<str>, bool), ResultCode> {
        let identity = self.sender()?;
        Ok((identity.folded(), identity.name.clone(), identity.operator))
    }

    /// The room the session is in, by name; `NOT_IN_ROOM` or `ROOM_NOT_FOUND` otherwise.
    fn my_room(&self, name: &WireStr) -> Result<Arc<Room>, ResultCode> {
        let name = room_name(name)?;
        let key = name.to_ascii_lowercase();
        match self.me.room(&key) {
            Some(room) => Ok(room),
            None if self.shard.shared.rooms.get(&key).is_some() => Err(ResultCode::NOT_IN_ROOM),
            None => Err(ResultCode::ROOM_NOT_FOUND),
        }
    }

    /// An encoded `ROOM_EVENT_NOTIFY`.
    fn room_event(&self, room: &Room, kind: u8, user: &str, actor: &str, text: &str) -> Fanout {
        let now_ms = unix_time_ms();
        let mut buf = BytesMut::new();
        let _ = suda_protocol::encode(
            &Packet::RoomEventNotify {
                event_id: self.shard.shared.message_ids.next_at(now_ms),
                sent_at_ms: now_ms,
                room: room.name.clone(),
                kind,
                user: user.into(),
                actor: actor.into(),
                text: text.into(),
            },
            &mut buf,
        );
        Fanout::new(buf.freeze(), 1, PacketType::RoomEventNotify, Instant::now())
    }

    /// Sends a room event to the room's members except `exclude`, after everything this
    /// session has batched; `remove` leaves the room once it has the event (a kick).
    async fn announce(
        &mut self,
        room: &Room,
        fanout: Fanout,
        exclude: Option<crate::session::SessionId>,
        remove: Option<(crate::session::SessionId, usize)>,
    ) {
        self.flush_batched().await;
        let mut shards = room.state().shards_with_members(self.shard.index);
        if let Some((_, shard)) = remove {
            if shard != self.shard.index && !shards.contains(&shard) {
                shards.push(shard);
            }
        }
        self.shard
            .room_fanout(room, fanout, exclude, remove.map(|(id, _)| id), &shards)
            .await;
    }

    pub(super) async fn create_room(
        &mut self,
        name: &WireStr,
        flags: u8,
        password: &WireStr,
        topic: &WireStr,
    ) -> Result<WireStr, ResultCode> {
        let (me, my_name, _) = self.who()?;
        let name = room_name(name)?;
        if flags & !(FLAG_PERSISTENT | FLAG_INVITE_ONLY) != 0 {
            return Err(ResultCode::INVALID_REQUEST);
        }
        let password = match password.to_str() {
            Ok(p) if p.len() <= MAX_ROOM_PASSWORD => p.to_owned(),
            _ => return Err(ResultCode::INVALID_REQUEST),
        };
        let topic = clean_text(topic, MAX_TOPIC)?.to_owned();
        self.charge(topic.len())?;
        let shared = self.shard.shared.clone();
        let persistent = flags & FLAG_PERSISTENT != 0;
        if persistent {
            if shared.storage().is_none() {
                return Err(ResultCode::NOT_AVAILABLE);
            }
            // A guest name proves nothing; owning a room that outlives the session needs an
            // account.
            if !self.sender()?.proven {
                return Err(ResultCode::NOT_PERMITTED);
            }
        }
        if self.me.rooms.borrow().len() >= shared.config.max_rooms_per_user {
            return Err(ResultCode::TOO_MANY_ROOMS);
        }
        let settings = RoomSettings {
            persistent,
            invite_only: flags & FLAG_INVITE_ONLY != 0,
            password: password.clone(),
            topic: topic.clone(),
            owner: me.clone(),
            operators: Vec::new(),
            invited: Vec::new(),
        };
        let room = shared.rooms.create(name, settings)?;
        if persistent {
            let stored = StoredRoom {
                name: name.to_owned(),
                owner: me.to_string(),
                topic,
                password,
                invite_only: flags & FLAG_INVITE_ONLY != 0,
                created_at_ms: as_i64(unix_time_ms()),
                operators: Vec::new(),
                invited: Vec::new(),
            };
            let storage = shared.storage().cloned();
            if let Some(storage) = storage {
                if let Err(err) = storage.store.create_room(&stored).await {
                    shared.rooms.discard(&room);
                    return Err(match err {
                        suda_store::Error::NameTaken => ResultCode::ROOM_EXISTS,
                        err => {
                            session_event!(self, WARN, %err, "cannot store a new room");
                            ResultCode::SERVER_BUSY
                        }
                    });
                }
            }
        }
        let member = RoomMember {
            session_id: self.me.id,
            shard: self.shard.index,
            name: my_name,
        };
        shared.rooms.join(
            &room,
            &me,
            member,
            b"",
            true,
            shared.config.max_room_members,
        )?;
        self.shard.room_join_local(&room, &self.me);
        session_event!(self, INFO, room = name, persistent, "room created");
        Ok(room.name.clone())
    }

    pub(super) async fn join_room(&mut self, name: &WireStr, password: &WireStr) {
        if let Err(result) = self.try_join_room(name, password).await {
            self.reply(&Packet::JoinRoomRes {
                result,
                room: name.clone(),
                flags: 0,
                members: 0,
                topic: WireStr::default(),
            });
        }
    }

    /// Joins, answers and tells the members; or says why not.
    async fn try_join_room(
        &mut self,
        name: &WireStr,
        password: &WireStr,
    ) -> Result<(), ResultCode> {
        let (me, my_name, operator) = self.who()?;
        let key = room_name(name)?.to_ascii_lowercase();
        self.charge(0)?;
        let shared = self.shard.shared.clone();
        let room = shared.rooms.get(&key).ok_or(ResultCode::ROOM_NOT_FOUND)?;
        if self.me.room(&key).is_some() {
            return Err(ResultCode::ALREADY_IN_ROOM);
        }
        if self.me.rooms.borrow().len() >= shared.config.max_rooms_per_user {
            return Err(ResultCode::TOO_MANY_ROOMS);
        }
        let member = RoomMember {
            session_id: self.me.id,
            shard: self.shard.index,
            name: my_name.clone(),
        };
        let (flags, members, topic) = shared.rooms.join(
            &room,
            &me,
            member,
            password.as_bytes(),
            operator,
            shared.config.max_room_members,
        )?;
        // What this session batched before the join was sent before it.
        self.flush_batched().await;
        self.shard.room_join_local(&room, &self.me);
        // Queued before anything of the room can be: the answer comes first.
        self.reply(&Packet::JoinRoomRes {
            result: ResultCode::OK,
            room: room.name.clone(),
            flags,
            members,
            topic: topic.into(),
        });
        let joined = self.room_event(&room, event::JOINED, &my_name, "", "");
        self.announce(&room, joined, Some(self.me.id), None).await;
        Ok(())
    }

    pub(super) async fn leave_room(&mut self, name: &WireStr) {
        if let Err(result) = self.try_leave_room(name).await {
            self.reply(&Packet::LeaveRoomRes {
                result,
                room: name.clone(),
            });
        }
    }

    /// Leaves, answers and tells the members; or says why not.
    async fn try_leave_room(&mut self, name: &WireStr) -> Result<(), ResultCode> {
        let (me, my_name, _) = self.who()?;
        let room = self.my_room(name)?;
        // Messages batched for the room go out while this session is still in it.
        self.flush_batched().await;
        let shared = self.shard.shared.clone();
        let Some(shards) = shared.rooms.leave(&room, &me, self.me.id, self.shard.index) else {
            // Kicked meanwhile; the kick's event is on its way.
            return Err(ResultCode::NOT_IN_ROOM);
        };
        self.shard.room_leave_local(room.id, self.me.id);
        self.reply(&Packet::LeaveRoomRes {
            result: ResultCode::OK,
            room: room.name.clone(),
        });
        let left = self.room_event(&room, event::LEFT, &my_name, "", "");
        self.shard
            .room_fanout(&room, left, None, None, &shards)
            .await;
        Ok(())
    }

    /// Leaves every room as the session ends; `announce` tells the other members (not during
    /// shutdown, when every session is leaving).
    pub(super) async fn leave_all_rooms(&mut self, announce: bool) {
        let rooms = std::mem::take(&mut *self.me.rooms.borrow_mut());
        let Some(identity) = &self.identity else {
            return;
        };
        let (me, my_name) = (identity.folded(), identity.name.clone());
        let shared = self.shard.shared.clone();
        for room in rooms {
            self.shard.room_leave_local(room.id, self.me.id);
            let Some(shards) = shared.rooms.leave(&room, &me, self.me.id, self.shard.index) else {
                continue;
            };
            if announce {
                let left = self.room_event(&room, event::LEFT, &my_name, "", "quit");
                self.shard
                    .room_fanout(&room, left, None, None, &shards)
                    .await;
            }
        }
    }

    pub(super) fn list_rooms(&mut self, after: &WireStr, limit: u8) {
        let refuse = |session: &Self, result| {
            session.reply(&Packet::ListRoomsRes { result, count: 0 });
        };
        if let Err(code) = self.sender() {
            return refuse(self, code);
        }
        if limit == 0 || limit > MAX_PAGE {
            return refuse(self, ResultCode::INVALID_REQUEST);
        }
        if let Err(code) = self.charge(0) {
            return refuse(self, code);
        }
        let after = after.to_string_lossy();
        let rooms = self.shard.shared.rooms.page(&after, usize::from(limit));
        self.reply(&Packet::ListRoomsRes {
            result: ResultCode::OK,
            count: u16::try_from(rooms.len()).unwrap_or(u16::MAX),
        });
        for room in rooms {
            let item = {
                let state = room.state();
                Packet::RoomItem {
                    room: room.name.clone(),
                    flags: state.flags(room.persistent),
                    members: u32::try_from(state.members.len()).unwrap_or(u32::MAX),
                    topic: state.topic.as_str().into(),
                }
            };
            self.reply(&item);
        }
    }

    pub(super) fn room_members(&mut self, name: &WireStr, after: &WireStr, limit: u8) {
        let refuse = |session: &Self, result| {
            session.reply(&Packet::RoomMembersRes { result, count: 0 });
        };
        let (_, _, operator) = match self.who() {
            Ok(who) => who,
            Err(code) => return refuse(self, code),
        };
        let key = match room_name(name) {
            Ok(name) => name.to_ascii_lowercase(),
            Err(code) => return refuse(self, code),
        };
        if limit == 0 || limit > MAX_PAGE {
            return refuse(self, ResultCode::INVALID_REQUEST);
        }
        if let Err(code) = self.charge(0) {
            return refuse(self, code);
        }
        let shared = self.shard.shared.clone();
        let Some(room) = shared.rooms.get(&key) else {
            return refuse(self, ResultCode::ROOM_NOT_FOUND);
        };
        let member = self.me.room(&key).is_some();
        let after = after.to_string_lossy().to_ascii_lowercase();
        let page: Vec<(Arc<str>, Box<str>, Role)> = {
            let state = room.state();
            if state.is_private() && !member && !operator {
                drop(state);
                return refuse(self, ResultCode::NOT_PERMITTED);
            }
            state
                .members
                .range::<str, _>((
                    std::ops::Bound::Excluded(after.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .take(usize::from(limit))
                .map(|(key, m)| (m.name.clone(), key.clone(), state.role(key)))
                .collect()
        };
        self.reply(&Packet::RoomMembersRes {
            result: ResultCode::OK,
            count: u16::try_from(page.len()).unwrap_or(u16::MAX),
        });
        for (name, key, role) in page {
            let (status, text) = shared.presence.status(&key);
            self.reply(&Packet::UserItem {
                user: (*name).into(),
                status,
                role: role as u8,
                text: (*text).into(),
            });
        }
    }

    /// Accepts a room message: it joins this read's batch for that room.
    pub(super) async fn room_chat(
        &mut self,
        name: &WireStr,
        text: WireStr,
    ) -> Result<Accepted, ResultCode> {
        let (me, _, _) = self.who()?;
        let room = self.my_room(name)?;
        self.check_not_muted()?;
        if room.state().is_muted(&me, Instant::now()) {
            return Err(ResultCode::MUTED);
        }
        self.accept_text(&text)?;
        // One batch holds one room's messages, or broadcasts: anything else goes first.
        let same_room = self
            .batched()
            .and_then(|batch| batch.room.as_ref())
            .is_some_and(|batched| Arc::ptr_eq(batched, &room));
        if !same_room {
            self.send_broadcasts().await;
        }
        let now_ms = self.shard.unix_ms_at(self.last_activity);
        let message_id = self.shard.shared.message_ids.next_at(now_ms);
        let record = self.record(
            |sender, text_str| {
                HistoryMessage::room(
                    as_i64(message_id),
                    as_i64(now_ms),
                    sender,
                    &room.key,
                    text_str,
                )
            },
            &text,
        );
        let notify = Packet::RoomChatNotify {
            message_id,
            sent_at_ms: now_ms,
            room: room.name.clone(),
            from: self.sender()?.wire_name.clone(),
            text,
        };
        let batch = self.batch();
        let _ = suda_protocol::encode(&notify, &mut batch.broadcasts);
        batch.broadcast_count += 1;
        batch.room = Some(room);
        bump(&self.shard.stats.room_messages, 1);
        // Without history there is no record, and no future to build and poll per message.
        let commit = match record {
            Some(record) => self.store_record(record).await?,
            None => None,
        };
        Ok(Accepted { message_id, commit })
    }

    pub(super) async fn room_moderate(
        &mut self,
        name: &WireStr,
        action: u8,
        user: &WireStr,
        duration_s: u32,
        text: &WireStr,
    ) -> ResultCode {
        match self
            .try_room_moderate(name, action, user, duration_s, text)
            .await
        {
            Ok(()) => ResultCode::OK,
            Err(code) => code,
        }
    }

    async fn try_room_moderate(
        &mut self,
        name: &WireStr,
        action: u8,
        user: &WireStr,
        duration_s: u32,
        text: &WireStr,
    ) -> Result<(), ResultCode> {
        let (me, my_name, operator) = self.who()?;
        let key = room_name(name)?.to_ascii_lowercase();
        let shared = self.shard.shared.clone();
        let room = shared.rooms.get(&key).ok_or(ResultCode::ROOM_NOT_FOUND)?;
        if !(action::KICK..=action::DEOP).contains(&action) {
            return Err(ResultCode::INVALID_REQUEST);
        }
        let text = clean_text(text, MAX_TOPIC)?.to_owned();
        self.charge(text.len())?;
        let my_role = if operator {
            Role::Owner
        } else {
            room.state().role(&me)
        };
        if my_role == Role::Member {
            return Err(ResultCode::NOT_PERMITTED);
        }
        let storage = shared.storage().cloned();
        if action == action::TOPIC {
            if let (true, Some(storage)) = (room.persistent, &storage) {
                if let Err(err) = storage.store.set_room_topic(&room.key, &text).await {
                    session_event!(self, WARN, %err, "cannot store a room topic");
                    return Err(ResultCode::SERVER_BUSY);
                }
            }
            room.state().topic = text.clone();
            log_action(
                storage.as_ref(),
                &my_name,
                "room-topic",
                "",
                Some(&room.key),
                &text,
            )
            .await;
            let topic = self.room_event(&room, event::TOPIC, &my_name, "", &text);
            self.announce(&room, topic, Some(self.me.id), None).await;
            return Ok(());
        }
        let target = match user.to_str() {
            Ok(user) if is_valid_username(user.as_bytes()) => user,
            _ => return Err(ResultCode::USER_NOT_FOUND),
        };
        let target_key = target.to_ascii_lowercase();
        if *target_key == *me {
            return Err(ResultCode::NOT_PERMITTED);
        }
        let target_role = room.state().role(&target_key);
        // Nobody acts on the owner; only the owner (or a server operator) acts on operators.
        if target_role == Role::Owner || (target_role == Role::Operator && my_role != Role::Owner) {
            return Err(ResultCode::NOT_PERMITTED);
        }
        let (display, full) = {
            let state = room.state();
            let display = state
                .members
                .get(&*target_key)
                .map_or_else(|| target.to_owned(), |m| m.name.to_string());
            let full = |len: usize, present: bool| len >= MAX_ROOM_LIST && !present;
            let full = match action {
                action::MUTE => full(state.muted.len(), state.muted.contains_key(&*target_key)),
                action::INVITE => full(state.invited.len(), state.invited.contains(&*target_key)),
                action::OP => full(
                    state.operators.len(),
                    state.operators.contains(&*target_key),
                ),
                _ => false,
            };
            (display, full)
        };
        if full {
            return Err(ResultCode::NOT_AVAILABLE);
        }
        match action {
            action::KICK => {
                self.flush_batched().await;
                let (removed, _) = shared
                    .rooms
                    .remove_for_kick(&room, &target_key, self.shard.index)
                    .ok_or(ResultCode::NOT_IN_ROOM)?;
                let kicked = self.room_event(&room, event::KICKED, &display, &my_name, &text);
                log_action(
                    storage.as_ref(),
                    &my_name,
                    "room-kick",
                    &target_key,
                    Some(&room.key),
                    &text,
                )
                .await;
                self.announce(
                    &room,
                    kicked,
                    Some(self.me.id),
                    Some((removed.session_id, removed.shard)),
                )
                .await;
            }
            action::MUTE | action::UNMUTE => {
                let (kind, label) = if action == action::MUTE {
                    let until = (duration_s > 0)
                        .then(|| Instant::now() + Duration::from_secs(u64::from(duration_s)));
                    room.state().muted.insert(target_key.clone().into(), until);
                    (event::MUTED, "room-mute")
                } else {
                    room.state().muted.remove(&*target_key);
                    (event::UNMUTED, "room-unmute")
                };
                log_action(
                    storage.as_ref(),
                    &my_name,
                    label,
                    &target_key,
                    Some(&room.key),
                    &text,
                )
                .await;
                let fanout = self.room_event(&room, kind, &display, &my_name, &text);
                self.announce(&room, fanout, Some(self.me.id), None).await;
            }
            action::INVITE => {
                self.store_role(&room, &target_key, RoomRole::Invited, true)
                    .await?;
                room.state().invited.insert(target_key.clone().into());
                log_action(
                    storage.as_ref(),
                    &my_name,
                    "room-invite",
                    &target_key,
                    Some(&room.key),
                    &text,
                )
                .await;
                // To the invited user only: they are not a member (yet).
                if let Some(entry) = shared.directory.lookup(&target_key) {
                    let invited = self.room_event(&room, event::INVITED, target, &my_name, &text);
                    self.flush_batched().await;
                    self.shard.deliver_modern(entry.route(), invited).await;
                }
            }
            _ => {
                // Granting and revoking operator: the owner's (or a server operator's) call.
                if my_role != Role::Owner {
                    return Err(ResultCode::NOT_PERMITTED);
                }
                let grant = action == action::OP;
                self.store_role(&room, &target_key, RoomRole::Operator, grant)
                    .await?;
                if grant {
                    room.state().operators.insert(target_key.clone().into());
                } else {
                    room.state().operators.remove(&*target_key);
                }
                let (kind, label) = if grant {
                    (event::OP_GRANTED, "room-op")
                } else {
                    (event::OP_REVOKED, "room-deop")
                };
                log_action(
                    storage.as_ref(),
                    &my_name,
                    label,
                    &target_key,
                    Some(&room.key),
                    &text,
                )
                .await;
                let fanout = self.room_event(&room, kind, &display, &my_name, &text);
                self.announce(&room, fanout, Some(self.me.id), None).await;
            }
        }
        Ok(())
    }

    /// Stores a role change of a persistent room.
    async fn store_role(
        &self,
        room: &Room,
        user: &str,
        role: RoomRole,
        held: bool,
    ) -> Result<(), ResultCode> {
        let storage = self.shard.shared.storage().cloned();
        if let (true, Some(storage)) = (room.persistent, storage) {
            if let Err(err) = storage
                .store
                .set_room_role(&room.key, user, role, held)
                .await
            {
                session_event!(self, WARN, %err, "cannot store a room role");
                return Err(ResultCode::SERVER_BUSY);
            }
        }
        Ok(())
    }
}
