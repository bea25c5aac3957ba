//! The model of protocol 1.3 (`docs/PROTOCOL.md` §13) on the harness's server: rooms, presence,
//! and the server operators' requests, which nobody may make here (no accounts, so no operators).
//!
//! What it holds the server to: each request gets exactly the response the model computes (any
//! one of the refusals that apply, or the success with every field known: the room as created,
//! its flags, member count and topic, each page item in folded-name order); a room message or
//! event reaches exactly the room's members at that moment, less the user who caused it, in
//! the order the server accepted them (so a member sees a user's `joined` before their messages
//! and nothing of theirs after `left`, and a kicked member's last packet of the room is its
//! `kicked`); an invitation reaches only the invited user, if online and speaking 1.3; a
//! temporary room is gone with its last member; every limit holds; and `PRESENCE_NOTIFY`
//! reaches exactly the watchers of the user whose presence changed.
//!
//! No tolerance for timing is needed: the harness's server has one worker, and the harness sends
//! nothing on a connection before every response due on the others has arrived, so each
//! request is handled, its fan-out queued, before the next connection's request is read. The
//! §13 "Order" leeway (a joiner may get a message sent a moment before the join) comes from
//! fan-out crossing to another worker's inbox, which cannot happen with one worker; the model
//! therefore expects the exact membership at the time of each message.

use std::collections::{BTreeMap, HashSet};

use suda_protocol::codes::{room_action as action, room_event as kind};
use suda_protocol::{Packet, ResultCode, WireStr};

use super::{Expected, ExpectedNotify, Verdict, World, valid_username};

/// `USER_ITEM` / `PRESENCE_NOTIFY` / `WATCH_RES` statuses.
pub(super) const ONLINE: u8 = 0;
const AWAY: u8 = 1;
pub(super) const OFFLINE: u8 = 2;

const FLAG_PERSISTENT: u8 = 1;
const FLAG_INVITE_ONLY: u8 = 2;
const FLAG_HAS_PASSWORD: u8 = 4;
const MAX_ROOM_NAME: usize = 32;
const MAX_ROOM_PASSWORD: usize = 64;
const MAX_TOPIC: usize = 512;
const MAX_STATUS_TEXT: usize = 128;
const MAX_PAGE: u8 = 100;

/// A room in the model. Users are folded names: roles, invitations and mutes belong to the
/// name, not the session, and outlive it as long as the room lives.
#[derive(Debug)]
pub(super) struct RoomModel {
    /// As created, which is how responses and notifications carry it.
    name: Vec<u8>,
    owner: Vec<u8>,
    password: Vec<u8>,
    invite_only: bool,
    topic: Vec<u8>,
    operators: HashSet<Vec<u8>>,
    invited: HashSet<Vec<u8>>,
    /// Mutes never run out during an input: they are for an hour or until unmuted.
    muted: HashSet<Vec<u8>>,
    /// Members and the connection of each.
    members: BTreeMap<Vec<u8>, usize>,
}

impl RoomModel {
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.invite_only {
            flags |= FLAG_INVITE_ONLY;
        }
        if !self.password.is_empty() {
            flags |= FLAG_HAS_PASSWORD;
        }
        flags
    }

    /// 2 owner, 1 operator, 0 member.
    fn role(&self, user: &[u8]) -> u8 {
        if self.owner == user {
            2
        } else if self.operators.contains(user) {
            1
        } else {
            0
        }
    }
}

/// Room names: 1–32 of `A-Z a-z 0-9 _ - .`. The folded name if valid.
fn room_key(name: &WireStr) -> Option<Vec<u8>> {
    let name = name.as_bytes();
    let valid = (1..=MAX_ROOM_NAME).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    valid.then(|| name.to_ascii_lowercase())
}

/// Topics, reasons and away messages: UTF-8, at most `max` bytes, no control characters but
/// newline and tab. May be empty.
fn clean(text: &WireStr, max: usize) -> bool {
    text.len() <= max
        && text
            .to_str()
            .is_ok_and(|t| !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
}

/// What paging compares names with: `after` as text (invalid UTF-8 replaced), folded.
fn cursor_key(after: &WireStr) -> Vec<u8> {
    after.to_string_lossy().to_ascii_lowercase().into_bytes()
}

/// A response that is exactly `ok` on success, or `refused(code)` for one of the refusals.
fn exact(
    refusals: Vec<ResultCode>,
    ok: Packet,
    refused: impl Fn(ResultCode) -> Packet,
) -> Expected {
    if refusals.is_empty() {
        Expected::Exact(vec![ok])
    } else {
        Expected::Exact(refusals.into_iter().map(refused).collect())
    }
}

/// A `ROOM_EVENT_NOTIFY` as the model expects it (id and time zeroed).
fn event(room: &[u8], kind: u8, user: &[u8], actor: &[u8], text: &[u8]) -> Packet {
    Packet::RoomEventNotify {
        event_id: 0,
        sent_at_ms: 0,
        room: WireStr::from(room),
        kind,
        user: WireStr::from(user),
        actor: WireStr::from(actor),
        text: WireStr::from(text),
    }
}

impl World<'_> {
    /// A protocol 1.3 request on `conn`: what it must get, and what it changes.
    pub(super) fn model_1_3(&mut self, conn: usize, packet: Packet) {
        // Any 1.3 request opts the connection in, whatever its answer.
        self.conns[conn].modern = true;
        let expected = match packet {
            Packet::CreateRoomReq {
                room,
                flags,
                password,
                topic,
            } => self.create_room(conn, room, flags, password, topic),
            Packet::JoinRoomReq { room, password } => self.join_room(conn, room, &password),
            Packet::LeaveRoomReq { room } => self.leave_room(conn, room),
            Packet::RoomChatReq { room, text } => {
                Expected::RoomChat(self.room_chat(conn, &room, text))
            }
            Packet::ListRoomsReq { after, limit } => return self.list_rooms(conn, &after, limit),
            Packet::RoomMembersReq { room, after, limit } => {
                return self.room_members(conn, &room, &after, limit);
            }
            Packet::RoomModerateReq {
                room,
                action,
                user,
                text,
                ..
            } => self.room_moderate(conn, &room, action, &user, &text),
            Packet::UserListReq { after, limit } => return self.user_list(conn, &after, limit),
            Packet::SetStatusReq { status, text } => self.set_status(conn, status, &text),
            Packet::WatchReq { watch, user } => self.watch(conn, watch, user),
            Packet::ModerateReq { .. } => {
                let result = self.operator_refusal(conn);
                Expected::Exact(vec![Packet::ModerateRes { result }])
            }
            Packet::SystemNoticeReq { .. } => {
                let result = self.operator_refusal(conn);
                Expected::Exact(vec![Packet::SystemNoticeRes {
                    result,
                    message_id: 0,
                }])
            }
            other => panic!(
                "the session model does not know the client request {:?}: teach \
                 fuzz/src/session/",
                other.packet_type()
            ),
        };
        self.conns[conn].expected.push_back(expected);
    }

    /// The logged-in user's folded name, or `NOT_AUTHENTICATED` among `refusals`.
    fn me(&self, conn: usize, refusals: &mut Vec<ResultCode>) -> Option<Vec<u8>> {
        let me = self.conns[conn].identity.as_ref().map(|i| i.key.clone());
        if me.is_none() {
            refusals.push(ResultCode::NOT_AUTHENTICATED);
        }
        me
    }

    fn wire_name(&self, conn: usize) -> Vec<u8> {
        self.conns[conn]
            .identity
            .as_ref()
            .map(|i| i.wire.clone())
            .expect("logged in")
    }

    /// Nobody is a server operator on a server without accounts.
    fn operator_refusal(&self, conn: usize) -> ResultCode {
        if self.conns[conn].identity.is_some() {
            ResultCode::NOT_PERMITTED
        } else {
            ResultCode::NOT_AUTHENTICATED
        }
    }

    /// Queues `packet` (an event of room `key`) to the room's members except `except`, with a
    /// new ticket for its id.
    fn tell_members(&mut self, key: &[u8], packet: Packet, except: Option<usize>) {
        let ticket = self.new_ticket();
        self.events.insert(ticket);
        let members: Vec<usize> = self.rooms[key].members.values().copied().collect();
        for member in members {
            if Some(member) != except {
                self.conns[member].notifies.push_back(ExpectedNotify {
                    packet: packet.clone(),
                    ticket,
                });
            }
        }
    }

    /// Takes `user` out of room `key`; a temporary room (all of them here) is gone with its last
    /// member.
    fn remove_member(&mut self, key: &[u8], user: &[u8]) {
        let room = self.rooms.get_mut(key).expect("room exists");
        let conn = room.members.remove(user).expect("a member");
        self.conns[conn].rooms.retain(|r| r != key);
        if room.members.is_empty() {
            self.rooms.remove(key);
        }
    }

    fn create_room(
        &mut self,
        conn: usize,
        room: WireStr,
        flags: u8,
        password: WireStr,
        topic: WireStr,
    ) -> Expected {
        let mut refusals = Vec::new();
        let me = self.me(conn, &mut refusals);
        let key = room_key(&room);
        if key.is_none() {
            refusals.push(ResultCode::INVALID_ROOM_NAME);
        }
        if flags & !(FLAG_PERSISTENT | FLAG_INVITE_ONLY) != 0
            || password.to_str().is_err()
            || password.len() > MAX_ROOM_PASSWORD
        {
            refusals.push(ResultCode::INVALID_REQUEST);
        }
        if !clean(&topic, MAX_TOPIC) {
            refusals.push(ResultCode::INVALID_MESSAGE);
        }
        if flags & FLAG_PERSISTENT != 0 {
            // Needs storage, and an account: this server has neither.
            refusals.extend([ResultCode::NOT_AVAILABLE, ResultCode::NOT_PERMITTED]);
        }
        if me.is_some()
            && (self.conns[conn].rooms.len() >= self.harness.max_rooms_per_user
                || self.rooms.len() >= self.harness.max_rooms)
        {
            refusals.push(ResultCode::TOO_MANY_ROOMS);
        }
        if key.as_ref().is_some_and(|key| self.rooms.contains_key(key)) {
            refusals.push(ResultCode::ROOM_EXISTS);
        }
        let response = |result| Packet::CreateRoomRes {
            result,
            room: room.clone(),
        };
        if refusals.is_empty() {
            let (me, key) = (me.expect("checked"), key.expect("checked"));
            let mut members = BTreeMap::new();
            members.insert(me.clone(), conn);
            self.rooms.insert(
                key.clone(),
                RoomModel {
                    name: room.as_bytes().to_vec(),
                    owner: me,
                    password: password.as_bytes().to_vec(),
                    invite_only: flags & FLAG_INVITE_ONLY != 0,
                    topic: topic.as_bytes().to_vec(),
                    operators: HashSet::new(),
                    invited: HashSet::new(),
                    muted: HashSet::new(),
                    members,
                },
            );
            self.conns[conn].rooms.push(key);
        }
        exact(refusals, response(ResultCode::OK), response)
    }

    fn join_room(&mut self, conn: usize, room: WireStr, password: &WireStr) -> Expected {
        let mut refusals = Vec::new();
        let me = self.me(conn, &mut refusals);
        let key = room_key(&room);
        if key.is_none() {
            refusals.push(ResultCode::INVALID_ROOM_NAME);
        }
        if let (Some(me), Some(key)) = (&me, &key) {
            match self.rooms.get(key) {
                None => refusals.push(ResultCode::ROOM_NOT_FOUND),
                Some(state) => {
                    if state.members.contains_key(me) {
                        refusals.push(ResultCode::ALREADY_IN_ROOM);
                    }
                    if self.conns[conn].rooms.len() >= self.harness.max_rooms_per_user {
                        refusals.push(ResultCode::TOO_MANY_ROOMS);
                    }
                    // The owner, operators and invited users need neither password nor
                    // invitation.
                    let privileged = state.role(me) > 0 || state.invited.contains(me);
                    if !privileged && state.invite_only {
                        refusals.push(ResultCode::INVITE_ONLY);
                    }
                    if !privileged
                        && !state.password.is_empty()
                        && state.password != password.as_bytes()
                    {
                        refusals.push(ResultCode::BAD_ROOM_PASSWORD);
                    }
                    if state.members.len() >= self.harness.max_room_members {
                        refusals.push(ResultCode::ROOM_FULL);
                    }
                }
            }
        }
        let refused = |result| Packet::JoinRoomRes {
            result,
            room: room.clone(),
            flags: 0,
            members: 0,
            topic: WireStr::default(),
        };
        if !refusals.is_empty() {
            return exact(refusals, refused(ResultCode::OK), refused);
        }
        let (me, key) = (me.expect("checked"), key.expect("checked"));
        let name = self.wire_name(conn);
        let state = self.rooms.get_mut(&key).expect("checked");
        state.members.insert(me, conn);
        let ok = Packet::JoinRoomRes {
            result: ResultCode::OK,
            room: WireStr::from(&state.name[..]),
            flags: state.flags(),
            members: u32::try_from(state.members.len()).expect("small"),
            topic: WireStr::from(&state.topic[..]),
        };
        let joined = event(&state.name, kind::JOINED, &name, b"", b"");
        self.conns[conn].rooms.push(key.clone());
        self.tell_members(&key, joined, Some(conn));
        Expected::Exact(vec![ok])
    }

    /// `NOT_IN_ROOM` / `ROOM_NOT_FOUND` among `refusals` unless `me` is in the room `key`.
    fn check_member(&self, me: &[u8], key: &[u8], refusals: &mut Vec<ResultCode>) {
        match self.rooms.get(key) {
            None => refusals.push(ResultCode::ROOM_NOT_FOUND),
            Some(state) if !state.members.contains_key(me) => {
                refusals.push(ResultCode::NOT_IN_ROOM);
            }
            Some(_) => {}
        }
    }

    fn leave_room(&mut self, conn: usize, room: WireStr) -> Expected {
        let mut refusals = Vec::new();
        let me = self.me(conn, &mut refusals);
        let key = room_key(&room);
        if key.is_none() {
            refusals.push(ResultCode::INVALID_ROOM_NAME);
        }
        if let (Some(me), Some(key)) = (&me, &key) {
            self.check_member(me, key, &mut refusals);
        }
        let refused = |result| Packet::LeaveRoomRes {
            result,
            room: room.clone(),
        };
        if !refusals.is_empty() {
            return exact(refusals, refused(ResultCode::OK), refused);
        }
        let (me, key) = (me.expect("checked"), key.expect("checked"));
        let room_name = self.rooms[&key].name.clone();
        let left = event(&room_name, kind::LEFT, &self.wire_name(conn), b"", b"");
        self.remove_member(&key, &me);
        if self.rooms.contains_key(&key) {
            self.tell_members(&key, left, None);
        }
        Expected::Exact(vec![Packet::LeaveRoomRes {
            result: ResultCode::OK,
            room: WireStr::from(&room_name[..]),
        }])
    }

    fn room_chat(&mut self, conn: usize, room: &WireStr, text: WireStr) -> Verdict<usize> {
        let mut refusals = Vec::new();
        let me = self.me(conn, &mut refusals);
        let key = room_key(room);
        if key.is_none() {
            refusals.push(ResultCode::INVALID_ROOM_NAME);
        }
        if let (Some(me), Some(key)) = (&me, &key) {
            self.check_member(me, key, &mut refusals);
            if self.rooms.get(key).is_some_and(|r| r.muted.contains(me)) {
                refusals.push(ResultCode::MUTED);
            }
        }
        if !self.text_ok(&text) {
            refusals.push(ResultCode::INVALID_MESSAGE);
        }
        Verdict::new(refusals, || {
            let key = key.expect("checked");
            let ticket = self.new_ticket();
            let from = self.wire_name(conn);
            let state = &self.rooms[&key];
            let packet = Packet::RoomChatNotify {
                message_id: 0,
                sent_at_ms: 0,
                room: WireStr::from(&state.name[..]),
                from: WireStr::from(&from[..]),
                text,
            };
            let members: Vec<usize> = state.members.values().copied().collect();
            for member in members {
                if member != conn {
                    self.conns[member].notifies.push_back(ExpectedNotify {
                        packet: packet.clone(),
                        ticket,
                    });
                }
            }
            ticket
        })
    }

    /// A paging request's refusals: not logged in, or a limit out of 1–100.
    fn page_refusals(&self, conn: usize, limit: u8) -> Vec<ResultCode> {
        let mut refusals = Vec::new();
        self.me(conn, &mut refusals);
        if !(1..=MAX_PAGE).contains(&limit) {
            refusals.push(ResultCode::INVALID_REQUEST);
        }
        refusals
    }

    /// Queues a page: its response, then exactly its items.
    fn expect_page(&mut self, conn: usize, response: Packet, items: Vec<Packet>) {
        let expected = &mut self.conns[conn].expected;
        expected.push_back(Expected::Exact(vec![response]));
        for item in items {
            expected.push_back(Expected::Exact(vec![item]));
        }
    }

    fn list_rooms(&mut self, conn: usize, after: &WireStr, limit: u8) {
        let refusals = self.page_refusals(conn, limit);
        if !refusals.is_empty() {
            let refused = |result| Packet::ListRoomsRes { result, count: 0 };
            self.conns[conn]
                .expected
                .push_back(exact(refusals, refused(ResultCode::OK), refused));
            return;
        }
        let after = cursor_key(after);
        let items: Vec<Packet> = self
            .rooms
            .iter()
            .filter(|(key, _)| **key > after)
            .take(usize::from(limit))
            .map(|(_, room)| Packet::RoomItem {
                room: WireStr::from(&room.name[..]),
                flags: room.flags(),
                members: u32::try_from(room.members.len()).expect("small"),
                topic: WireStr::from(&room.topic[..]),
            })
            .collect();
        let response = Packet::ListRoomsRes {
            result: ResultCode::OK,
            count: u16::try_from(items.len()).expect("small"),
        };
        self.expect_page(conn, response, items);
    }

    /// `(status, text)` of the online user on `conn`.
    fn status_of(&self, conn: usize) -> (u8, Vec<u8>) {
        match &self.conns[conn].away {
            Some(text) => (AWAY, text.clone()),
            None => (ONLINE, Vec::new()),
        }
    }

    fn room_members(&mut self, conn: usize, room: &WireStr, after: &WireStr, limit: u8) {
        let mut refusals = self.page_refusals(conn, limit);
        let me = self.conns[conn].identity.as_ref().map(|i| i.key.clone());
        let key = room_key(room);
        if key.is_none() {
            refusals.push(ResultCode::INVALID_ROOM_NAME);
        }
        if let (Some(me), Some(key)) = (&me, &key) {
            match self.rooms.get(key) {
                None => refusals.push(ResultCode::ROOM_NOT_FOUND),
                // A room with a password or invitations shows its members to members only.
                Some(state)
                    if (state.invite_only || !state.password.is_empty())
                        && !state.members.contains_key(me) =>
                {
                    refusals.push(ResultCode::NOT_PERMITTED);
                }
                Some(_) => {}
            }
        }
        if !refusals.is_empty() {
            let refused = |result| Packet::RoomMembersRes { result, count: 0 };
            self.conns[conn]
                .expected
                .push_back(exact(refusals, refused(ResultCode::OK), refused));
            return;
        }
        let state = &self.rooms[&key.expect("checked")];
        let after = cursor_key(after);
        let items: Vec<Packet> = state
            .members
            .iter()
            .filter(|(user, _)| **user > after)
            .take(usize::from(limit))
            .map(|(user, &member)| {
                let (status, text) = self.status_of(member);
                Packet::UserItem {
                    user: WireStr::from(&self.wire_name(member)[..]),
                    status,
                    role: state.role(user),
                    text: WireStr::from(&text[..]),
                }
            })
            .collect();
        let response = Packet::RoomMembersRes {
            result: ResultCode::OK,
            count: u16::try_from(items.len()).expect("small"),
        };
        self.expect_page(conn, response, items);
    }

    fn room_moderate(
        &mut self,
        conn: usize,
        room: &WireStr,
        action: u8,
        user: &WireStr,
        text: &WireStr,
    ) -> Expected {
        let mut refusals = Vec::new();
        let me = self.me(conn, &mut refusals);
        let key = room_key(room);
        if key.is_none() {
            refusals.push(ResultCode::INVALID_ROOM_NAME);
        }
        let known_action = (action::KICK..=action::DEOP).contains(&action);
        if !known_action {
            refusals.push(ResultCode::INVALID_REQUEST);
        }
        if !clean(text, MAX_TOPIC) {
            refusals.push(ResultCode::INVALID_MESSAGE);
        }
        let target = valid_username(user.as_bytes()).then(|| user.as_bytes().to_ascii_lowercase());
        if let (Some(me), Some(key)) = (&me, &key) {
            match self.rooms.get(key) {
                None => refusals.push(ResultCode::ROOM_NOT_FOUND),
                Some(state) => {
                    // The caller's role, whether or not they are still a member.
                    let my_role = state.role(me);
                    if my_role == 0 {
                        refusals.push(ResultCode::NOT_PERMITTED);
                    }
                    if known_action && action != action::TOPIC {
                        match &target {
                            None => refusals.push(ResultCode::USER_NOT_FOUND),
                            Some(target) => {
                                // Nobody acts on themself or the owner; only the owner acts on
                                // operators, and grants or revokes the role.
                                let their_role = state.role(target);
                                if target == me
                                    || their_role == 2
                                    || (their_role == 1 && my_role != 2)
                                    || (matches!(action, action::OP | action::DEOP) && my_role != 2)
                                {
                                    refusals.push(ResultCode::NOT_PERMITTED);
                                }
                                if action == action::KICK && !state.members.contains_key(target) {
                                    refusals.push(ResultCode::NOT_IN_ROOM);
                                }
                            }
                        }
                    }
                }
            }
        }
        if !refusals.is_empty() {
            let refused = |result| Packet::RoomModerateRes { result };
            return exact(refusals, refused(ResultCode::OK), refused);
        }
        let key = key.expect("checked");
        let my_name = self.wire_name(conn);
        let text = text.as_bytes();
        let room_name = self.rooms[&key].name.clone();
        if action == action::TOPIC {
            self.rooms.get_mut(&key).expect("checked").topic = text.to_vec();
            let topic = event(&room_name, kind::TOPIC, &my_name, b"", text);
            self.tell_members(&key, topic, Some(conn));
            return Expected::Exact(vec![Packet::RoomModerateRes {
                result: ResultCode::OK,
            }]);
        }
        let target = target.expect("checked");
        // Events name a member as they logged in, anyone else as the request did.
        let display = match self.rooms[&key].members.get(&target).copied() {
            Some(member) => self.wire_name(member),
            None => user.as_bytes().to_vec(),
        };
        let state = self.rooms.get_mut(&key).expect("checked");
        let announced = match action {
            action::KICK => {
                // The kicked member gets the event too, as its last packet of the room.
                let kicked = event(&room_name, kind::KICKED, &display, &my_name, text);
                self.tell_members(&key, kicked, Some(conn));
                self.remove_member(&key, &target);
                None
            }
            action::MUTE => {
                state.muted.insert(target);
                Some(kind::MUTED)
            }
            action::UNMUTE => {
                state.muted.remove(&target);
                Some(kind::UNMUTED)
            }
            action::INVITE => {
                state.invited.insert(target.clone());
                // To the invited user only, and only if they speak 1.3.
                let invitee = self.online.get(&target).copied();
                if let Some(invitee) = invitee.filter(|&i| self.conns[i].modern) {
                    let ticket = self.new_ticket();
                    self.events.insert(ticket);
                    let invited = event(&room_name, kind::INVITED, user.as_bytes(), &my_name, text);
                    self.conns[invitee].notifies.push_back(ExpectedNotify {
                        packet: invited,
                        ticket,
                    });
                }
                None
            }
            action::OP => {
                state.operators.insert(target);
                Some(kind::OP_GRANTED)
            }
            _ => {
                state.operators.remove(&target);
                Some(kind::OP_REVOKED)
            }
        };
        if let Some(kind) = announced {
            let packet = event(&room_name, kind, &display, &my_name, text);
            self.tell_members(&key, packet, Some(conn));
        }
        Expected::Exact(vec![Packet::RoomModerateRes {
            result: ResultCode::OK,
        }])
    }

    fn user_list(&mut self, conn: usize, after: &WireStr, limit: u8) {
        let refusals = self.page_refusals(conn, limit);
        if !refusals.is_empty() {
            let refused = |result| Packet::UserListRes { result, count: 0 };
            self.conns[conn]
                .expected
                .push_back(exact(refusals, refused(ResultCode::OK), refused));
            return;
        }
        let after = cursor_key(after);
        let mut online: Vec<(&Vec<u8>, usize)> = self
            .online
            .iter()
            .filter(|(user, _)| **user > after)
            .map(|(user, &conn)| (user, conn))
            .collect();
        online.sort();
        let items: Vec<Packet> = online
            .into_iter()
            .take(usize::from(limit))
            .map(|(_, user)| {
                let (status, text) = self.status_of(user);
                Packet::UserItem {
                    user: WireStr::from(&self.wire_name(user)[..]),
                    status,
                    role: 0,
                    text: WireStr::from(&text[..]),
                }
            })
            .collect();
        let response = Packet::UserListRes {
            result: ResultCode::OK,
            count: u16::try_from(items.len()).expect("small"),
        };
        self.expect_page(conn, response, items);
    }

    fn set_status(&mut self, conn: usize, status: u8, text: &WireStr) -> Expected {
        let mut refusals = Vec::new();
        let me = self.me(conn, &mut refusals);
        match status {
            ONLINE => {}
            AWAY if clean(text, MAX_STATUS_TEXT) => {}
            AWAY => refusals.push(ResultCode::INVALID_MESSAGE),
            _ => refusals.push(ResultCode::INVALID_REQUEST),
        }
        let response = |result| Packet::SetStatusRes { result };
        if refusals.is_empty() {
            // Online clears the text, whatever was sent.
            let away = (status == AWAY).then(|| text.as_bytes().to_vec());
            // Saying what is already so tells nobody anything.
            if away != self.conns[conn].away {
                self.conns[conn].away.clone_from(&away);
                let name = self.wire_name(conn);
                let text = away.unwrap_or_default();
                self.tell_watchers(&me.expect("checked"), &name, status, &text);
            }
        }
        exact(refusals, response(ResultCode::OK), response)
    }

    fn watch(&mut self, conn: usize, watch: u8, user: WireStr) -> Expected {
        let mut refusals = Vec::new();
        self.me(conn, &mut refusals);
        let target = valid_username(user.as_bytes()).then(|| user.as_bytes().to_ascii_lowercase());
        if target.is_none() {
            refusals.push(ResultCode::INVALID_USERNAME);
        }
        if watch > 1 {
            refusals.push(ResultCode::INVALID_REQUEST);
        }
        let watching = &self.conns[conn].watching;
        if watch == 1
            && target.as_ref().is_some_and(|t| !watching.contains(t))
            && watching.len() >= self.harness.max_watch
        {
            refusals.push(ResultCode::NOT_AVAILABLE);
        }
        let answer = |result, status, text: &[u8]| Packet::WatchRes {
            result,
            user: user.clone(),
            status,
            text: WireStr::from(text),
        };
        if !refusals.is_empty() {
            return Expected::Exact(
                refusals
                    .into_iter()
                    .map(|result| answer(result, OFFLINE, b""))
                    .collect(),
            );
        }
        let target = target.expect("checked");
        let watching = &mut self.conns[conn].watching;
        watching.retain(|w| *w != target);
        if watch == 1 {
            watching.push(target.clone());
        }
        let (status, text) = match self.online.get(&target) {
            Some(&online) => self.status_of(online),
            None => (OFFLINE, Vec::new()),
        };
        Expected::Exact(vec![answer(ResultCode::OK, status, &text)])
    }

    /// Queues `PRESENCE_NOTIFY` to every session watching `user` (folded).
    pub(super) fn tell_watchers(&mut self, user: &[u8], name: &[u8], status: u8, text: &[u8]) {
        let packet = Packet::PresenceNotify {
            user: WireStr::from(name),
            status,
            text: WireStr::from(text),
        };
        for conn in &mut self.conns {
            if conn.watching.iter().any(|w| w == user) {
                conn.presence.push_back(packet.clone());
            }
        }
    }

    /// The session on `conn` ends (logout, close, reset, protocol error): its name is free, it
    /// leaves its rooms in the order it joined them (the others get `left` with `quit`), its
    /// watches end, and then its watchers learn it is offline.
    pub(super) fn depart(&mut self, conn: usize) {
        let Some(identity) = self.conns[conn].identity.take() else {
            return;
        };
        self.online.remove(&identity.key);
        for key in std::mem::take(&mut self.conns[conn].rooms) {
            let room_name = self.rooms[&key].name.clone();
            // `remove_member` forgets the room on `conn` too; put it back for it to do so.
            self.conns[conn].rooms.push(key.clone());
            self.remove_member(&key, &identity.key);
            if self.rooms.contains_key(&key) {
                let left = event(&room_name, kind::LEFT, &identity.wire, b"", b"quit");
                self.tell_members(&key, left, None);
            }
        }
        self.conns[conn].watching.clear();
        self.conns[conn].away = None;
        self.tell_watchers(&identity.key, &identity.wire, OFFLINE, b"");
    }
}
