//! Numeric codes carried on the wire.
//!
//! Both are open newtypes rather than enums: a peer built against an older crate must still be able
//! to decode, show and forward a code that a newer peer sends.

use std::fmt;

/// The `result u8` of a `*_RES` packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultCode(pub u8);

impl ResultCode {
    /// The request succeeded.
    pub const OK: Self = Self(0);
    /// The password (or token) does not prove the claimed identity.
    pub const INVALID_CREDENTIALS: Self = Self(1);
    /// LOGIN_REQ on a connection that is already logged in.
    pub const ALREADY_AUTHENTICATED: Self = Self(2);
    /// The username breaks the naming rules (1–32 of `A-Z a-z 0-9 _ -`).
    pub const INVALID_USERNAME: Self = Self(3);
    /// The request needs a logged-in session.
    pub const NOT_AUTHENTICATED: Self = Self(4);
    /// Whisper target is unknown or offline.
    pub const USER_NOT_FOUND: Self = Self(5);
    /// The sender exceeded a rate limit.
    pub const RATE_LIMITED: Self = Self(6);
    /// Text empty, too long, or not UTF-8.
    pub const INVALID_MESSAGE: Self = Self(7);
    /// The server cannot take the request now.
    pub const SERVER_BUSY: Self = Self(8);
    /// The username is already online.
    pub const NAME_IN_USE: Self = Self(9);
    /// The resume token is unknown, expired, or belongs to another user.
    pub const INVALID_TOKEN: Self = Self(10);
    /// Resumed, but some messages since the client's last one could not be replayed.
    pub const RESUMED_WITH_GAP: Self = Self(11);
    /// The feature is turned off on this server, or at its capacity.
    pub const NOT_AVAILABLE: Self = Self(12);
    /// `REGISTER_REQ` for a name that already has an account.
    pub const USERNAME_TAKEN: Self = Self(13);
    /// The new password breaks the password rules (8 to 128 bytes).
    pub const WEAK_PASSWORD: Self = Self(14);
    /// The server does not let clients register themselves.
    pub const REGISTRATION_CLOSED: Self = Self(15);
    /// The room does not exist.
    pub const ROOM_NOT_FOUND: Self = Self(16);
    /// The caller lacks the role the request needs (server or room operator, room owner).
    pub const NOT_PERMITTED: Self = Self(17);
    /// The user or address is banned; an `ERROR_NOTIFY BANNED` with the reason follows, and the
    /// connection closes.
    pub const BANNED: Self = Self(18);
    /// The sender is muted, server-wide or in the room.
    pub const MUTED: Self = Self(19);
    /// `CREATE_ROOM_REQ` for a name that is taken.
    pub const ROOM_EXISTS: Self = Self(20);
    /// The room name breaks the naming rules (1–32 of `A-Z a-z 0-9 _ - .`).
    pub const INVALID_ROOM_NAME: Self = Self(21);
    /// The room is at its member limit.
    pub const ROOM_FULL: Self = Self(22);
    /// The user is in as many rooms as the server allows, or the server has as many rooms as it
    /// allows.
    pub const TOO_MANY_ROOMS: Self = Self(23);
    /// The request needs the caller (or the target) to be a member of the room.
    pub const NOT_IN_ROOM: Self = Self(24);
    /// `JOIN_ROOM_REQ` for a room the user is in.
    pub const ALREADY_IN_ROOM: Self = Self(25);
    /// The room's password does not match.
    pub const BAD_ROOM_PASSWORD: Self = Self(26);
    /// The room is invite-only and the user has no invitation.
    pub const INVITE_ONLY: Self = Self(27);
    /// A field of the request is out of its documented range (an unknown action, a limit of 0).
    pub const INVALID_REQUEST: Self = Self(28);

    /// The symbolic name of a known code, `None` for codes this crate does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::OK => "OK",
            Self::INVALID_CREDENTIALS => "INVALID_CREDENTIALS",
            Self::ALREADY_AUTHENTICATED => "ALREADY_AUTHENTICATED",
            Self::INVALID_USERNAME => "INVALID_USERNAME",
            Self::NOT_AUTHENTICATED => "NOT_AUTHENTICATED",
            Self::USER_NOT_FOUND => "USER_NOT_FOUND",
            Self::RATE_LIMITED => "RATE_LIMITED",
            Self::INVALID_MESSAGE => "INVALID_MESSAGE",
            Self::SERVER_BUSY => "SERVER_BUSY",
            Self::NAME_IN_USE => "NAME_IN_USE",
            Self::INVALID_TOKEN => "INVALID_TOKEN",
            Self::RESUMED_WITH_GAP => "RESUMED_WITH_GAP",
            Self::NOT_AVAILABLE => "NOT_AVAILABLE",
            Self::USERNAME_TAKEN => "USERNAME_TAKEN",
            Self::WEAK_PASSWORD => "WEAK_PASSWORD",
            Self::REGISTRATION_CLOSED => "REGISTRATION_CLOSED",
            Self::ROOM_NOT_FOUND => "ROOM_NOT_FOUND",
            Self::NOT_PERMITTED => "NOT_PERMITTED",
            Self::BANNED => "BANNED",
            Self::MUTED => "MUTED",
            Self::ROOM_EXISTS => "ROOM_EXISTS",
            Self::INVALID_ROOM_NAME => "INVALID_ROOM_NAME",
            Self::ROOM_FULL => "ROOM_FULL",
            Self::TOO_MANY_ROOMS => "TOO_MANY_ROOMS",
            Self::NOT_IN_ROOM => "NOT_IN_ROOM",
            Self::ALREADY_IN_ROOM => "ALREADY_IN_ROOM",
            Self::BAD_ROOM_PASSWORD => "BAD_ROOM_PASSWORD",
            Self::INVITE_ONLY => "INVITE_ONLY",
            Self::INVALID_REQUEST => "INVALID_REQUEST",
            _ => return None,
        })
    }

    /// Whether the request succeeded: [`ResultCode::OK`], or [`ResultCode::RESUMED_WITH_GAP`]
    /// (a resume that succeeded with a gap).
    pub fn is_ok(self) -> bool {
        self == Self::OK || self == Self::RESUMED_WITH_GAP
    }
}

impl fmt::Debug for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ResultCode({})", self.0),
        }
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The `code u16` of an `ERROR_NOTIFY`, the reason the server is about to close the connection.
///
/// Ranges: `0x0001..=0x00FF` the peer broke the protocol; `0x0100..=0x01FF` a limit or policy
/// ended the connection; `0x0200..=0x02FF` the server itself is going away.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// Header `size` below the 4-byte header.
    pub const PACKET_TOO_SHORT: Self = Self(0x0001);
    /// Header `size` above the server's `max_packet`.
    pub const PACKET_TOO_LARGE: Self = Self(0x0002);
    /// Header `type` is not a known packet type.
    pub const UNKNOWN_PACKET_TYPE: Self = Self(0x0003);
    /// The body is shorter than its fields claim, or has bytes left after them.
    pub const MALFORMED_BODY: Self = Self(0x0004);
    /// A known packet that only the server sends arrived from a client.
    pub const UNEXPECTED_PACKET: Self = Self(0x0005);
    /// The connection did not log in within the login deadline.
    pub const LOGIN_TIMEOUT: Self = Self(0x0100);
    /// Nothing arrived within the idle timeout (clients keep alive with PING).
    pub const IDLE_TIMEOUT: Self = Self(0x0101);
    /// The peer stopped reading and a write made no progress within the write deadline.
    pub const WRITE_TIMEOUT: Self = Self(0x0102);
    /// The peer's send queue passed its byte limit: it reads slower than it is sent to.
    pub const SLOW_CONSUMER: Self = Self(0x0103);
    /// The server is at its connection limit.
    pub const SERVER_BUSY: Self = Self(0x0104);
    /// Too many connections, or new connections too fast, from this address.
    pub const TOO_MANY_CONNECTIONS: Self = Self(0x0105);
    /// The client kept sending after being told `RATE_LIMITED`.
    pub const FLOODING: Self = Self(0x0106);
    /// A packet did not arrive completely within the packet deadline (slow sender).
    pub const PACKET_TIMEOUT: Self = Self(0x0107);
    /// Another connection resumed this session (with its token).
    pub const SESSION_TAKEN_OVER: Self = Self(0x0108);
    /// A server operator kicked this user; the reason follows in the text.
    pub const KICKED: Self = Self(0x0109);
    /// A server operator banned this user or address; the reason follows in the text.
    pub const BANNED: Self = Self(0x010A);
    /// The server is shutting down.
    pub const SERVER_SHUTDOWN: Self = Self(0x0200);

    /// The symbolic name of a known code, `None` for codes this crate does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::PACKET_TOO_SHORT => "PACKET_TOO_SHORT",
            Self::PACKET_TOO_LARGE => "PACKET_TOO_LARGE",
            Self::UNKNOWN_PACKET_TYPE => "UNKNOWN_PACKET_TYPE",
            Self::MALFORMED_BODY => "MALFORMED_BODY",
            Self::UNEXPECTED_PACKET => "UNEXPECTED_PACKET",
            Self::LOGIN_TIMEOUT => "LOGIN_TIMEOUT",
            Self::IDLE_TIMEOUT => "IDLE_TIMEOUT",
            Self::WRITE_TIMEOUT => "WRITE_TIMEOUT",
            Self::SLOW_CONSUMER => "SLOW_CONSUMER",
            Self::SERVER_BUSY => "SERVER_BUSY",
            Self::TOO_MANY_CONNECTIONS => "TOO_MANY_CONNECTIONS",
            Self::FLOODING => "FLOODING",
            Self::PACKET_TIMEOUT => "PACKET_TIMEOUT",
            Self::SESSION_TAKEN_OVER => "SESSION_TAKEN_OVER",
            Self::KICKED => "KICKED",
            Self::BANNED => "BANNED",
            Self::SERVER_SHUTDOWN => "SERVER_SHUTDOWN",
            _ => return None,
        })
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "ErrorCode({:#06x})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_have_names_and_unknown_ones_still_print() {
        assert_eq!(ResultCode::NAME_IN_USE.to_string(), "NAME_IN_USE");
        assert_eq!(ResultCode(200).to_string(), "ResultCode(200)");
        assert_eq!(ErrorCode::SLOW_CONSUMER.to_string(), "SLOW_CONSUMER");
        assert_eq!(ErrorCode(0x7777).to_string(), "ErrorCode(0x7777)");
        assert!(ResultCode::OK.is_ok());
        assert!(!ResultCode::RATE_LIMITED.is_ok());
    }
}

/// The `kind u8` of a `ROOM_EVENT_NOTIFY` (protocol 1.3).
pub mod room_event {
    /// A user joined the room.
    pub const JOINED: u8 = 1;
    /// A user left the room.
    pub const LEFT: u8 = 2;
    /// A user was kicked out of the room.
    pub const KICKED: u8 = 3;
    /// The topic changed.
    pub const TOPIC: u8 = 4;
    /// A member was muted in the room.
    pub const MUTED: u8 = 5;
    /// A member's mute was lifted.
    pub const UNMUTED: u8 = 6;
    /// A member was made a room operator.
    pub const OP_GRANTED: u8 = 7;
    /// A member stopped being a room operator.
    pub const OP_REVOKED: u8 = 8;
    /// A user was invited to the room.
    pub const INVITED: u8 = 9;
}

/// The `action u8` of a `ROOM_MODERATE_REQ` (protocol 1.3).
pub mod room_action {
    /// Remove a member from the room.
    pub const KICK: u8 = 1;
    /// Set the room's topic.
    pub const TOPIC: u8 = 2;
    /// Mute a member in the room.
    pub const MUTE: u8 = 3;
    /// Lift a member's mute.
    pub const UNMUTE: u8 = 4;
    /// Invite a user.
    pub const INVITE: u8 = 5;
    /// Make a member a room operator.
    pub const OP: u8 = 6;
    /// Take a member's room operator role away.
    pub const DEOP: u8 = 7;
}

/// The `action u8` of a `MODERATE_REQ` (protocol 1.3, server operators).
pub mod moderation_action {
    /// Disconnect a user.
    pub const KICK: u8 = 1;
    /// Ban a username.
    pub const BAN_USER: u8 = 2;
    /// Ban an address (or network).
    pub const BAN_IP: u8 = 3;
    /// Lift a username's ban.
    pub const UNBAN_USER: u8 = 4;
    /// Lift an address's ban.
    pub const UNBAN_IP: u8 = 5;
    /// Mute a user server-wide.
    pub const MUTE: u8 = 6;
    /// Lift a server-wide mute.
    pub const UNMUTE: u8 = 7;
}
