//! Rooms (protocol 1.3): the types and the [`Client`] requests to create, join, leave, list,
//! talk in and moderate rooms.

use std::time::{Duration, SystemTime};

use suda_protocol::codes::{room_action, room_event};
use suda_protocol::{Packet, PacketType, WireStr};

use crate::client::Client;
use crate::error::ClientError;
use crate::event::{ChatMessage, StoredMessage};
use crate::pending::{Payload, mismatch};
use crate::presence::UserEntry;

/// `flags` bit 0: kept in the server's store.
const PERSISTENT: u8 = 1;
/// `flags` bit 1: only invited users may join.
const INVITE_ONLY: u8 = 1 << 1;
/// `flags` bit 2 (in answers only): joining needs a password.
const HAS_PASSWORD: u8 = 1 << 2;
/// `HISTORY_REQ` channel of a room's messages.
const ROOM_CHANNEL: u8 = 2;

/// How [`Client::create_room`] sets a room up. The default is a temporary, open room without
/// a password or a topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoomOptions {
    /// Kept in the server's store, surviving restarts and being empty; needs storage on the
    /// server and an account-backed login. Otherwise the room is gone when its last member
    /// leaves.
    pub persistent: bool,
    /// Only invited users (and the owner, operators and server operators) may join.
    pub invite_only: bool,
    /// Needed to join (0–64 bytes); empty for none.
    pub password: String,
    /// The initial topic (at most 512 bytes).
    pub topic: String,
}

impl RoomOptions {
    /// Sets [`persistent`](Self::persistent).
    pub fn with_persistent(mut self, persistent: bool) -> Self {
        self.persistent = persistent;
        self
    }

    /// Sets [`invite_only`](Self::invite_only).
    pub fn with_invite_only(mut self, invite_only: bool) -> Self {
        self.invite_only = invite_only;
        self
    }

    /// Sets [`password`](Self::password).
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = password.into();
        self
    }

    /// Sets [`topic`](Self::topic).
    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = topic.into();
        self
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.persistent {
            flags |= PERSISTENT;
        }
        if self.invite_only {
            flags |= INVITE_ONLY;
        }
        flags
    }
}

/// A room as [`Client::join_room`] and [`Client::list_rooms`] describe it (`JOIN_ROOM_RES`,
/// `ROOM_ITEM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The room's name as it was created.
    pub room: String,
    /// Kept by the server when empty and across restarts.
    pub persistent: bool,
    /// Joining needs an invitation.
    pub invite_only: bool,
    /// Joining needs a password.
    pub has_password: bool,
    /// Members (after joining, for `join_room`).
    pub members: u32,
    /// The topic; may be empty.
    pub topic: String,
}

impl RoomInfo {
    pub(crate) fn from_wire(room: &WireStr, flags: u8, members: u32, topic: &WireStr) -> Self {
        Self {
            room: room.to_string_lossy().into_owned(),
            persistent: flags & PERSISTENT != 0,
            invite_only: flags & INVITE_ONLY != 0,
            has_password: flags & HAS_PASSWORD != 0,
            members,
            topic: topic.to_string_lossy().into_owned(),
        }
    }
}

/// What a room's owner or operator does with [`Client::room_moderate`] (`ROOM_MODERATE_REQ`).
///
/// Reasons are shown to the members; a `duration` of `None` means until lifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    /// Remove `user` from the room (only the owner or a server operator may kick an operator;
    /// nobody kicks the owner).
    Kick {
        /// The member.
        user: String,
        /// Why.
        reason: String,
    },
    /// Set the room's topic (at most 512 bytes; empty clears it).
    SetTopic(String),
    /// Keep `user` from talking in the room.
    Mute {
        /// The member.
        user: String,
        /// How long; `None` until unmuted. Rounded up to whole seconds.
        duration: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// Lift a mute.
    Unmute {
        /// The member.
        user: String,
        /// Why.
        reason: String,
    },
    /// Let `user` join an invite-only room; they need not be online.
    Invite(String),
    /// Make `user` a room operator (owner and server operators only).
    Op(String),
    /// Take room operator away from `user` (owner and server operators only).
    Deop(String),
}

impl RoomAction {
    /// `action, user, duration_s, text` of the request.
    fn to_wire(&self) -> (u8, &str, u32, &str) {
        match self {
            Self::Kick { user, reason } => (room_action::KICK, user, 0, reason),
            Self::SetTopic(topic) => (room_action::TOPIC, "", 0, topic),
            Self::Mute {
                user,
                duration,
                reason,
            } => (room_action::MUTE, user, duration_secs(*duration), reason),
            Self::Unmute { user, reason } => (room_action::UNMUTE, user, 0, reason),
            Self::Invite(user) => (room_action::INVITE, user, 0, ""),
            Self::Op(user) => (room_action::OP, user, 0, ""),
            Self::Deop(user) => (room_action::DEOP, user, 0, ""),
        }
    }
}

/// `duration_s` on the wire: 0 means "for ever", so a duration that is not `None` is never sent
/// as 0 (a sub-second one becomes 1 s), and one past `u32::MAX` seconds is capped.
pub(crate) fn duration_secs(duration: Option<Duration>) -> u32 {
    match duration {
        None => 0,
        Some(duration) => {
            let secs = duration
                .as_secs()
                .saturating_add(u64::from(duration.subsec_nanos() > 0));
            u32::try_from(secs).unwrap_or(u32::MAX).max(1)
        }
    }
}

/// What happened in a room ([`RoomEvent::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomEventKind {
    /// [`user`](RoomEvent::user) joined.
    Joined,
    /// `user` left; the text is `quit` when their session ended.
    Left,
    /// `user` was kicked by [`actor`](RoomEvent::actor), for the reason in the text. When
    /// `user` is this client's user, it is no longer a member.
    Kicked,
    /// `user` set the topic to the text.
    Topic,
    /// `user` was muted by `actor`, for the reason in the text.
    Muted,
    /// `user` was unmuted by `actor`.
    Unmuted,
    /// `user` was made a room operator by `actor`.
    OperatorGranted,
    /// `user` is no longer a room operator (by `actor`).
    OperatorRevoked,
    /// This client's user was invited to the room by `actor`.
    Invited,
    /// An event number this crate does not know.
    Other(u8),
}

impl RoomEventKind {
    fn from_wire(kind: u8) -> Self {
        match kind {
            room_event::JOINED => Self::Joined,
            room_event::LEFT => Self::Left,
            room_event::KICKED => Self::Kicked,
            room_event::TOPIC => Self::Topic,
            room_event::MUTED => Self::Muted,
            room_event::UNMUTED => Self::Unmuted,
            room_event::OP_GRANTED => Self::OperatorGranted,
            room_event::OP_REVOKED => Self::OperatorRevoked,
            room_event::INVITED => Self::Invited,
            other => Self::Other(other),
        }
    }
}

/// Something that happened in a room this user is in (`ROOM_EVENT_NOTIFY`), in order with the
/// room's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEvent {
    /// From the server's message id sequence, so resume replay and de-duplication cover it.
    pub event_id: u64,
    /// Server Unix time in milliseconds.
    pub sent_at_ms: u64,
    /// The room.
    pub room: String,
    /// What happened.
    pub kind: RoomEventKind,
    /// Who it happened to (or who did it, for [`RoomEventKind::Topic`]).
    pub user: String,
    /// Who did it, `None` when `user` did it themself.
    pub actor: Option<String>,
    /// The reason, the new topic, or empty.
    pub text: String,
}

impl RoomEvent {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_wire(
        event_id: u64,
        sent_at_ms: u64,
        room: &WireStr,
        kind: u8,
        user: &WireStr,
        actor: &WireStr,
        text: &WireStr,
    ) -> Self {
        Self {
            event_id,
            sent_at_ms,
            room: room.to_string_lossy().into_owned(),
            kind: RoomEventKind::from_wire(kind),
            user: user.to_string_lossy().into_owned(),
            actor: (!actor.is_empty()).then(|| actor.to_string_lossy().into_owned()),
            text: text.to_string_lossy().into_owned(),
        }
    }

    /// [`sent_at_ms`](Self::sent_at_ms) as a [`SystemTime`], `None` if it cannot be
    /// represented.
    pub fn sent_at(&self) -> Option<SystemTime> {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(self.sent_at_ms))
    }
}

/// A message to a room this user is in (`ROOM_CHAT_NOTIFY`): the room and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// The room, as it was created.
    pub room: String,
    /// The message; its id and sender as for a broadcast.
    pub message: ChatMessage,
}

impl Client {
    /// Creates a room, with this user as its owner and first member; returns its name as
    /// created.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::CreateRoomReq` and e.g.
    /// `ROOM_EXISTS`, `INVALID_ROOM_NAME` (1–32 of `A-Z a-z 0-9 _ - .`), `TOO_MANY_ROOMS`,
    /// `NOT_AVAILABLE` (persistent without storage on the server), `NOT_PERMITTED`
    /// (persistent, for a guest login) or `INVALID_MESSAGE` (the topic).
    pub async fn create_room(
        &self,
        room: &str,
        options: &RoomOptions,
    ) -> Result<String, ClientError> {
        let payload = self
            .with_payload(Packet::CreateRoomReq {
                room: room.into(),
                flags: options.flags(),
                password: options.password.as_str().into(),
                topic: options.topic.as_str().into(),
            })
            .await?;
        match payload {
            Payload::Name(name) => Ok(name),
            _ => Err(mismatch(PacketType::CreateRoomReq)),
        }
    }

    /// Joins a room, with its password if it has one; returns the room as it is now. The other
    /// members get [`RoomEventKind::Joined`], and from now on this client gets the room's
    /// messages and events.
    ///
    /// Rooms belong to the session: with reconnecting on, a resumed session is still in its
    /// rooms, but a new one ([`Event::Reconnected`](crate::Event::Reconnected)) is in none.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::JoinRoomReq` and e.g.
    /// `ROOM_NOT_FOUND`, `ALREADY_IN_ROOM`, `INVITE_ONLY`, `BAD_ROOM_PASSWORD`, `ROOM_FULL` or
    /// `TOO_MANY_ROOMS`.
    pub async fn join_room(
        &self,
        room: &str,
        password: Option<&str>,
    ) -> Result<RoomInfo, ClientError> {
        let payload = self
            .with_payload(Packet::JoinRoomReq {
                room: room.into(),
                password: password.unwrap_or_default().into(),
            })
            .await?;
        match payload {
            Payload::Room(info) => Ok(info),
            _ => Err(mismatch(PacketType::JoinRoomReq)),
        }
    }

    /// Leaves a room; the other members get [`RoomEventKind::Left`].
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::LeaveRoomReq` and `NOT_IN_ROOM`.
    pub async fn leave_room(&self, room: &str) -> Result<(), ClientError> {
        self.checked(Packet::LeaveRoomReq { room: room.into() })
            .await
            .map(drop)
    }

    /// One page of the server's rooms in case-folded name order: those after `after` (the last
    /// name of the previous page; `None` for the first), at most `limit` (1–100). A page shorter
    /// than `limit` is the last.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::ListRoomsReq` and e.g.
    /// `INVALID_REQUEST` (a limit of 0 or over 100).
    pub async fn list_rooms(
        &self,
        after: Option<&str>,
        limit: u8,
    ) -> Result<Vec<RoomInfo>, ClientError> {
        let payload = self
            .with_payload(Packet::ListRoomsReq {
                after: after.unwrap_or_default().into(),
                limit,
            })
            .await?;
        match payload {
            Payload::Rooms(rooms) => Ok(rooms),
            _ => Err(mismatch(PacketType::ListRoomsReq)),
        }
    }

    /// One page of a room's members with their roles, paged like
    /// [`list_rooms`](Self::list_rooms).
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::RoomMembersReq` and e.g.
    /// `ROOM_NOT_FOUND`, `NOT_PERMITTED` (a room with a password or invitations, to a
    /// non-member) or `INVALID_REQUEST`.
    pub async fn room_members(
        &self,
        room: &str,
        after: Option<&str>,
        limit: u8,
    ) -> Result<Vec<UserEntry>, ClientError> {
        let payload = self
            .with_payload(Packet::RoomMembersReq {
                room: room.into(),
                after: after.unwrap_or_default().into(),
                limit,
            })
            .await?;
        match payload {
            Payload::Users(users) => Ok(users),
            _ => Err(mismatch(PacketType::RoomMembersReq)),
        }
    }

    /// Sends `text` to the other members of `room`, returning the message id they see.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::RoomChatReq` and e.g.
    /// `NOT_IN_ROOM`, `MUTED`, `INVALID_MESSAGE` or `RATE_LIMITED`;
    /// [`ClientError::TooLarge`] as for [`broadcast`](Self::broadcast).
    pub async fn room_chat(&self, room: &str, text: &str) -> Result<u64, ClientError> {
        self.checked(Packet::RoomChatReq {
            room: room.into(),
            text: text.into(),
        })
        .await
    }

    /// Acts on a room as its owner or one of its operators (or as a server operator).
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::RoomModerateReq` and e.g.
    /// `NOT_PERMITTED`, `NOT_IN_ROOM` (kicking a non-member), `USER_NOT_FOUND` (a name that
    /// cannot be a username), `ROOM_NOT_FOUND` or `INVALID_MESSAGE` (the topic).
    pub async fn room_moderate(&self, room: &str, action: &RoomAction) -> Result<(), ClientError> {
        let (action, user, duration_s, text) = action.to_wire();
        self.checked(Packet::RoomModerateReq {
            room: room.into(),
            action,
            user: user.into(),
            duration_s,
            text: text.into(),
        })
        .await
        .map(drop)
    }

    /// A room's stored messages, oldest first, paged as [`history`](Self::history); for
    /// members only. Their [`kind`](StoredMessage::kind) is
    /// [`MessageKind::Room`](crate::MessageKind::Room) and [`to`](StoredMessage::to) the room.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::HistoryReq` and e.g.
    /// `NOT_IN_ROOM` or `NOT_AVAILABLE` (a server without history).
    pub async fn room_history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: u8,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        self.history_request(ROOM_CHANNEL, room, before, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_never_mean_for_ever_by_accident() {
        assert_eq!(duration_secs(None), 0);
        assert_eq!(duration_secs(Some(Duration::ZERO)), 1);
        assert_eq!(duration_secs(Some(Duration::from_millis(1500))), 2);
        assert_eq!(duration_secs(Some(Duration::from_secs(60))), 60);
        assert_eq!(duration_secs(Some(Duration::MAX)), u32::MAX);
    }

    #[test]
    fn flags_go_both_ways() {
        let options = RoomOptions::default()
            .with_persistent(true)
            .with_invite_only(true);
        assert_eq!(options.flags(), 0b11);
        assert_eq!(RoomOptions::default().flags(), 0);
        let info = RoomInfo::from_wire(&"Lobby".into(), 0b100, 3, &"t".into());
        assert!(info.has_password && !info.persistent && !info.invite_only);
        let event =
            RoomEvent::from_wire(1, 0, &"r".into(), 42, &"bob".into(), &"".into(), &"".into());
        assert_eq!((event.kind, event.actor), (RoomEventKind::Other(42), None));
    }
}
