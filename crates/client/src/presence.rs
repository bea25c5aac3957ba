//! Presence (protocol 1.3): who is online, statuses, and watching users; the types and the
//! [`Client`] requests.

use suda_protocol::{Packet, PacketType, WireStr};

use crate::client::Client;
use crate::error::ClientError;
use crate::pending::{Payload, mismatch};

/// A user's presence status as the server reports it.
///
/// Open: a later server may send a status this crate does not know, kept as
/// [`Other`](Self::Other) rather than refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Logged in (status 0).
    Online,
    /// Logged in and away (status 1), usually with a message.
    Away,
    /// Not logged in (status 2); only in `WATCH_RES` and `PRESENCE_NOTIFY`.
    Offline,
    /// A status number this crate does not know.
    Other(u8),
}

impl Status {
    pub(crate) fn from_wire(status: u8) -> Self {
        match status {
            0 => Self::Online,
            1 => Self::Away,
            2 => Self::Offline,
            other => Self::Other(other),
        }
    }
}

/// A user's presence: from [`Client::watch`] and [`Event::Presence`](crate::Event::Presence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The user, as the server spells it.
    pub user: String,
    /// Their status now.
    pub status: Status,
    /// Their away message; empty unless away.
    pub text: String,
}

impl Presence {
    pub(crate) fn from_wire(user: &WireStr, status: u8, text: &WireStr) -> Self {
        Self {
            user: user.to_string_lossy().into_owned(),
            status: Status::from_wire(status),
            text: text.to_string_lossy().into_owned(),
        }
    }
}

/// A member's role in a room (`USER_ITEM`'s `role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An ordinary member; also every entry of [`Client::user_list`].
    Member,
    /// A room operator, who may kick, mute, invite and set the topic.
    Operator,
    /// The room's owner, who may also grant and revoke operator.
    Owner,
    /// A role number this crate does not know.
    Other(u8),
}

impl Role {
    fn from_wire(role: u8) -> Self {
        match role {
            0 => Self::Member,
            1 => Self::Operator,
            2 => Self::Owner,
            other => Self::Other(other),
        }
    }
}

/// One user of a page of [`Client::user_list`] or [`Client::room_members`] (`USER_ITEM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    /// The user, as they logged in.
    pub user: String,
    /// [`Status::Online`] or [`Status::Away`].
    pub status: Status,
    /// Their role in the room; [`Role::Member`] in a user list.
    pub role: Role,
    /// Their away message.
    pub text: String,
}

impl UserEntry {
    pub(crate) fn from_wire(user: &WireStr, status: u8, role: u8, text: &WireStr) -> Self {
        Self {
            user: user.to_string_lossy().into_owned(),
            status: Status::from_wire(status),
            role: Role::from_wire(role),
            text: text.to_string_lossy().into_owned(),
        }
    }
}

impl Client {
    /// One page of the users online (detached sessions included), in case-folded name order:
    /// those after `after` (the last name of the previous page; `None` for the first), at most
    /// `limit` (1–100). A page shorter than `limit` is the last.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::UserListReq` and e.g.
    /// `INVALID_REQUEST` (a limit of 0 or over 100), `NOT_AUTHENTICATED` or `RATE_LIMITED`;
    /// otherwise any error of a request.
    pub async fn user_list(
        &self,
        after: Option<&str>,
        limit: u8,
    ) -> Result<Vec<UserEntry>, ClientError> {
        let payload = self
            .with_payload(Packet::UserListReq {
                after: after.unwrap_or_default().into(),
                limit,
            })
            .await?;
        match payload {
            Payload::Users(users) => Ok(users),
            _ => Err(mismatch(PacketType::UserListReq)),
        }
    }

    /// Sets this user's status: `None` for online (which clears the away message), or
    /// `Some(text)` for away with `text` (at most 128 bytes; may be empty). Watchers get a
    /// [`Event::Presence`](crate::Event::Presence).
    ///
    /// With reconnecting on, the status set last is set again when the client has to log in
    /// again as a new session (see [`Event::Reconnected`](crate::Event::Reconnected)).
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::SetStatusReq` and e.g.
    /// `INVALID_MESSAGE` (too long, or control characters) or `NOT_AUTHENTICATED`.
    pub async fn set_status(&self, away: Option<&str>) -> Result<(), ClientError> {
        self.checked(Packet::SetStatusReq {
            status: u8::from(away.is_some()),
            text: away.unwrap_or_default().into(),
        })
        .await
        .map(drop)
    }

    /// Starts watching `user` (online or not, even a name nobody has): from now on, for the
    /// rest of the session, their logins, status changes and logouts arrive as
    /// [`Event::Presence`](crate::Event::Presence). Returns their presence now.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::WatchReq` and e.g.
    /// `NOT_AVAILABLE` (the watch list is full), `USER_NOT_FOUND` (a name that cannot be a
    /// username) or `NOT_AUTHENTICATED`.
    pub async fn watch(&self, user: &str) -> Result<Presence, ClientError> {
        self.watch_request(1, user).await
    }

    /// Stops watching `user`; returns their presence now.
    ///
    /// # Errors
    /// As for [`watch`](Self::watch).
    pub async fn unwatch(&self, user: &str) -> Result<Presence, ClientError> {
        self.watch_request(0, user).await
    }

    async fn watch_request(&self, watch: u8, user: &str) -> Result<Presence, ClientError> {
        let payload = self
            .with_payload(Packet::WatchReq {
                watch,
                user: user.into(),
            })
            .await?;
        match payload {
            Payload::Presence(presence) => Ok(presence),
            _ => Err(mismatch(PacketType::WatchReq)),
        }
    }
}

/// `SET_STATUS_REQ` with status 0, which opts a session in to the notifications of protocol
/// 1.3 (docs/PROTOCOL.md §13, "Opting in") without changing anything else.
pub(crate) fn opt_in_request() -> Packet {
    Packet::SetStatusReq {
        status: 0,
        text: WireStr::from(""),
    }
}
