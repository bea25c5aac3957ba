//! Every packet of protocol version 1 and the numbers that identify them.

use crate::codes::{ErrorCode, ResultCode};
use crate::wire_str::WireStr;

/// Which way a packet type travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by clients, served by the server.
    ClientToServer,
    /// Sent by the server.
    ServerToClient,
}

/// The `type u16` of the packet header.
///
/// Reserved ranges for packets that later protocol versions add (see `docs/PROTOCOL.md`):
/// `0x0001..=0x00FF` core requests and responses, `0x0100..=0x01FF` core notifications,
/// `0x0200..` accounts, `0x0300..` history, `0x0400..` rooms, `0x0500..` presence,
/// `0x0600..` moderation, `0x0700..` session resume and logout (in use since protocol 1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum PacketType {
    /// `LOGIN_REQ`, C→S.
    LoginReq = 0x0001,
    /// `LOGIN_RES`, S→C.
    LoginRes = 0x0002,
    /// `BROADCAST_REQ`, C→S.
    BroadcastReq = 0x0003,
    /// `BROADCAST_RES`, S→C.
    BroadcastRes = 0x0004,
    /// `WHISPER_REQ`, C→S.
    WhisperReq = 0x0005,
    /// `WHISPER_RES`, S→C.
    WhisperRes = 0x0006,
    /// `PING`, C→S.
    Ping = 0x0007,
    /// `PONG`, S→C.
    Pong = 0x0008,
    /// `BROADCAST_NOTIFY`, S→C.
    BroadcastNotify = 0x0101,
    /// `WHISPER_NOTIFY`, S→C.
    WhisperNotify = 0x0102,
    /// `ERROR_NOTIFY`, S→C, sent right before the server closes the connection.
    ErrorNotify = 0x01FF,
    /// `REGISTER_REQ`, C→S: create an account.
    RegisterReq = 0x0201,
    /// `REGISTER_RES`, S→C.
    RegisterRes = 0x0202,
    /// `CHANGE_PASSWORD_REQ`, C→S.
    ChangePasswordReq = 0x0203,
    /// `CHANGE_PASSWORD_RES`, S→C.
    ChangePasswordRes = 0x0204,
    /// `HISTORY_REQ`, C→S: read stored messages.
    HistoryReq = 0x0301,
    /// `HISTORY_RES`, S→C, followed by its `HISTORY_ITEM`s.
    HistoryRes = 0x0302,
    /// `HISTORY_ITEM`, S→C: one stored message.
    HistoryItem = 0x0380,
    /// `SESSION_TOKEN_REQ`, C→S: ask for a resume token.
    SessionTokenReq = 0x0701,
    /// `SESSION_TOKEN_RES`, S→C.
    SessionTokenRes = 0x0702,
    /// `RESUME_REQ`, C→S: re-attach a detached session.
    ResumeReq = 0x0703,
    /// `RESUME_RES`, S→C.
    ResumeRes = 0x0704,
    /// `LOGOUT_REQ`, C→S: end the session for good.
    LogoutReq = 0x0705,
    /// `LOGOUT_RES`, S→C.
    LogoutRes = 0x0706,
}

impl PacketType {
    /// The packet type for a header's `type` field, `None` when it is not a known type.
    pub fn from_u16(raw: u16) -> Option<Self> {
        Some(match raw {
            0x0001 => Self::LoginReq,
            0x0002 => Self::LoginRes,
            0x0003 => Self::BroadcastReq,
            0x0004 => Self::BroadcastRes,
            0x0005 => Self::WhisperReq,
            0x0006 => Self::WhisperRes,
            0x0007 => Self::Ping,
            0x0008 => Self::Pong,
            0x0101 => Self::BroadcastNotify,
            0x0102 => Self::WhisperNotify,
            0x01FF => Self::ErrorNotify,
            0x0201 => Self::RegisterReq,
            0x0202 => Self::RegisterRes,
            0x0203 => Self::ChangePasswordReq,
            0x0204 => Self::ChangePasswordRes,
            0x0301 => Self::HistoryReq,
            0x0302 => Self::HistoryRes,
            0x0380 => Self::HistoryItem,
            0x0701 => Self::SessionTokenReq,
            0x0702 => Self::SessionTokenRes,
            0x0703 => Self::ResumeReq,
            0x0704 => Self::ResumeRes,
            0x0705 => Self::LogoutReq,
            0x0706 => Self::LogoutRes,
            _ => return None,
        })
    }

    /// Which peer sends this type.
    pub fn direction(self) -> Direction {
        match self {
            Self::LoginReq
            | Self::BroadcastReq
            | Self::WhisperReq
            | Self::Ping
            | Self::RegisterReq
            | Self::ChangePasswordReq
            | Self::HistoryReq
            | Self::SessionTokenReq
            | Self::ResumeReq
            | Self::LogoutReq => Direction::ClientToServer,
            _ => Direction::ServerToClient,
        }
    }

    /// The name used in `docs/PROTOCOL.md`, e.g. `LOGIN_REQ`.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::LoginReq => "LOGIN_REQ",
            Self::LoginRes => "LOGIN_RES",
            Self::BroadcastReq => "BROADCAST_REQ",
            Self::BroadcastRes => "BROADCAST_RES",
            Self::WhisperReq => "WHISPER_REQ",
            Self::WhisperRes => "WHISPER_RES",
            Self::Ping => "PING",
            Self::Pong => "PONG",
            Self::BroadcastNotify => "BROADCAST_NOTIFY",
            Self::WhisperNotify => "WHISPER_NOTIFY",
            Self::ErrorNotify => "ERROR_NOTIFY",
            Self::RegisterReq => "REGISTER_REQ",
            Self::RegisterRes => "REGISTER_RES",
            Self::ChangePasswordReq => "CHANGE_PASSWORD_REQ",
            Self::ChangePasswordRes => "CHANGE_PASSWORD_RES",
            Self::HistoryReq => "HISTORY_REQ",
            Self::HistoryRes => "HISTORY_RES",
            Self::HistoryItem => "HISTORY_ITEM",
            Self::SessionTokenReq => "SESSION_TOKEN_REQ",
            Self::SessionTokenRes => "SESSION_TOKEN_RES",
            Self::ResumeReq => "RESUME_REQ",
            Self::ResumeRes => "RESUME_RES",
            Self::LogoutReq => "LOGOUT_REQ",
            Self::LogoutRes => "LOGOUT_RES",
        }
    }
}

/// One decoded packet.
///
/// Field order in each variant is the order on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Log in: `username str8, password str8`.
    LoginReq {
        /// The name to log in as.
        username: WireStr,
        /// The password; ignored in `open` auth mode.
        password: WireStr,
    },
    /// Answer to `LOGIN_REQ`: `result u8, session_id u64`.
    LoginRes {
        /// Outcome.
        result: ResultCode,
        /// The new session's id, 0 on failure.
        session_id: u64,
    },
    /// Send a text to every other logged-in user: `text str16`.
    BroadcastReq {
        /// The message.
        text: WireStr,
    },
    /// Answer to `BROADCAST_REQ`: `result u8, message_id u64`.
    BroadcastRes {
        /// Outcome.
        result: ResultCode,
        /// The id recipients see, 0 on failure.
        message_id: u64,
    },
    /// Send a text to one user: `to str8, text str16`.
    WhisperReq {
        /// Recipient's username, matched case-insensitively.
        to: WireStr,
        /// The message.
        text: WireStr,
    },
    /// Answer to `WHISPER_REQ`: `result u8, message_id u64`.
    WhisperRes {
        /// Outcome.
        result: ResultCode,
        /// The id the recipient sees, 0 on failure.
        message_id: u64,
    },
    /// Keep-alive and round-trip probe, allowed before login: `nonce u64`.
    Ping {
        /// Echoed back in `PONG`.
        nonce: u64,
    },
    /// Answer to `PING`: `nonce u64`.
    Pong {
        /// The `PING`'s nonce.
        nonce: u64,
    },
    /// A broadcast from another user: `message_id u64, sent_at_ms u64, from str8, text str16`.
    BroadcastNotify {
        /// Server-assigned id, unique and increasing.
        message_id: u64,
        /// Server Unix time in milliseconds when the message was accepted.
        sent_at_ms: u64,
        /// Sender's username as they typed it.
        from: WireStr,
        /// The message.
        text: WireStr,
    },
    /// A whisper to this user: same layout as `BROADCAST_NOTIFY`.
    WhisperNotify {
        /// Server-assigned id, unique and increasing.
        message_id: u64,
        /// Server Unix time in milliseconds when the message was accepted.
        sent_at_ms: u64,
        /// Sender's username as they typed it.
        from: WireStr,
        /// The message.
        text: WireStr,
    },
    /// Why the server is about to close the connection: `code u16, reason str8`.
    ErrorNotify {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail.
        reason: WireStr,
    },
    /// Create an account: `username str8, password str8`.
    RegisterReq {
        /// The name to register.
        username: WireStr,
        /// Its password.
        password: WireStr,
    },
    /// Answer to `REGISTER_REQ`: `result u8`.
    RegisterRes {
        /// Outcome.
        result: ResultCode,
    },
    /// Change the logged-in account's password: `old_password str8, new_password str8`.
    ChangePasswordReq {
        /// The current password.
        old_password: WireStr,
        /// The new one.
        new_password: WireStr,
    },
    /// Answer to `CHANGE_PASSWORD_REQ`: `result u8`.
    ChangePasswordRes {
        /// Outcome.
        result: ResultCode,
    },
    /// Read stored messages: `channel u8, peer str8, before_id u64, limit u8`.
    HistoryReq {
        /// 0: broadcasts; 1: whispers between the caller and `peer`.
        channel: u8,
        /// The other user of a whisper conversation; empty for broadcasts.
        peer: WireStr,
        /// Only messages with a smaller id; 0 for the newest.
        before_id: u64,
        /// How many at most (1–100).
        limit: u8,
    },
    /// Answer to `HISTORY_REQ`: `result u8, count u16`, then `count` `HISTORY_ITEM`s, oldest first.
    HistoryRes {
        /// Outcome.
        result: ResultCode,
        /// How many items follow.
        count: u16,
    },
    /// One stored message: `message_id u64, sent_at_ms u64, kind u8, from str8, to str8,
    /// text str16`.
    HistoryItem {
        /// The message's id.
        message_id: u64,
        /// When the server accepted it.
        sent_at_ms: u64,
        /// 1: broadcast; 2: whisper.
        kind: u8,
        /// Sender.
        from: WireStr,
        /// Whisper recipient; empty for broadcasts.
        to: WireStr,
        /// The message.
        text: WireStr,
    },
    /// Ask for a resume token (after login); empty body.
    SessionTokenReq,
    /// Answer to `SESSION_TOKEN_REQ`: `result u8, token str8, grace_ms u32`.
    SessionTokenRes {
        /// Outcome.
        result: ResultCode,
        /// 32 lowercase hex characters; empty on failure.
        token: WireStr,
        /// How long a dropped connection leaves the session resumable, in milliseconds.
        grace_ms: u32,
    },
    /// Re-attach a detached session: `username str8, token str8, last_message_id u64`.
    ResumeReq {
        /// The session's user.
        username: WireStr,
        /// The token from the last `SESSION_TOKEN_RES` or `RESUME_RES`.
        token: WireStr,
        /// Id of the last notification the client received; 0 if none.
        last_message_id: u64,
    },
    /// Answer to `RESUME_REQ`: `result u8, session_id u64, token str8, replayed u32`; on success
    /// `replayed` notifications follow at once.
    ResumeRes {
        /// Outcome.
        result: ResultCode,
        /// The resumed session's id, 0 on failure.
        session_id: u64,
        /// The new token (the old one is dead); empty on failure.
        token: WireStr,
        /// How many replayed notifications follow.
        replayed: u32,
    },
    /// End the session for good; empty body.
    LogoutReq,
    /// Answer to `LOGOUT_REQ`: `result u8`; then the server closes the connection.
    LogoutRes {
        /// Outcome.
        result: ResultCode,
    },
}

impl Packet {
    /// This packet's header `type`.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::LoginReq { .. } => PacketType::LoginReq,
            Self::LoginRes { .. } => PacketType::LoginRes,
            Self::BroadcastReq { .. } => PacketType::BroadcastReq,
            Self::BroadcastRes { .. } => PacketType::BroadcastRes,
            Self::WhisperReq { .. } => PacketType::WhisperReq,
            Self::WhisperRes { .. } => PacketType::WhisperRes,
            Self::Ping { .. } => PacketType::Ping,
            Self::Pong { .. } => PacketType::Pong,
            Self::BroadcastNotify { .. } => PacketType::BroadcastNotify,
            Self::WhisperNotify { .. } => PacketType::WhisperNotify,
            Self::ErrorNotify { .. } => PacketType::ErrorNotify,
            Self::RegisterReq { .. } => PacketType::RegisterReq,
            Self::RegisterRes { .. } => PacketType::RegisterRes,
            Self::ChangePasswordReq { .. } => PacketType::ChangePasswordReq,
            Self::ChangePasswordRes { .. } => PacketType::ChangePasswordRes,
            Self::HistoryReq { .. } => PacketType::HistoryReq,
            Self::HistoryRes { .. } => PacketType::HistoryRes,
            Self::HistoryItem { .. } => PacketType::HistoryItem,
            Self::SessionTokenReq => PacketType::SessionTokenReq,
            Self::SessionTokenRes { .. } => PacketType::SessionTokenRes,
            Self::ResumeReq { .. } => PacketType::ResumeReq,
            Self::ResumeRes { .. } => PacketType::ResumeRes,
            Self::LogoutReq => PacketType::LogoutReq,
            Self::LogoutRes { .. } => PacketType::LogoutRes,
        }
    }
}
