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
/// Within a range, `0x..80` and up are items and notifications (protocol 1.3: rooms, presence,
/// moderation).
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
    /// `CREATE_ROOM_REQ`, C→S.
    CreateRoomReq = 0x0401,
    /// `CREATE_ROOM_RES`, S→C.
    CreateRoomRes = 0x0402,
    /// `JOIN_ROOM_REQ`, C→S.
    JoinRoomReq = 0x0403,
    /// `JOIN_ROOM_RES`, S→C.
    JoinRoomRes = 0x0404,
    /// `LEAVE_ROOM_REQ`, C→S.
    LeaveRoomReq = 0x0405,
    /// `LEAVE_ROOM_RES`, S→C.
    LeaveRoomRes = 0x0406,
    /// `LIST_ROOMS_REQ`, C→S.
    ListRoomsReq = 0x0407,
    /// `LIST_ROOMS_RES`, S→C.
    ListRoomsRes = 0x0408,
    /// `ROOM_MEMBERS_REQ`, C→S.
    RoomMembersReq = 0x0409,
    /// `ROOM_MEMBERS_RES`, S→C.
    RoomMembersRes = 0x040A,
    /// `ROOM_CHAT_REQ`, C→S.
    RoomChatReq = 0x040B,
    /// `ROOM_CHAT_RES`, S→C.
    RoomChatRes = 0x040C,
    /// `ROOM_MODERATE_REQ`, C→S.
    RoomModerateReq = 0x040D,
    /// `ROOM_MODERATE_RES`, S→C.
    RoomModerateRes = 0x040E,
    /// `ROOM_ITEM`, S→C.
    RoomItem = 0x0480,
    /// `ROOM_CHAT_NOTIFY`, S→C.
    RoomChatNotify = 0x0481,
    /// `ROOM_EVENT_NOTIFY`, S→C.
    RoomEventNotify = 0x0482,
    /// `USER_LIST_REQ`, C→S.
    UserListReq = 0x0501,
    /// `USER_LIST_RES`, S→C.
    UserListRes = 0x0502,
    /// `SET_STATUS_REQ`, C→S.
    SetStatusReq = 0x0503,
    /// `SET_STATUS_RES`, S→C.
    SetStatusRes = 0x0504,
    /// `WATCH_REQ`, C→S.
    WatchReq = 0x0505,
    /// `WATCH_RES`, S→C.
    WatchRes = 0x0506,
    /// `USER_ITEM`, S→C.
    UserItem = 0x0580,
    /// `PRESENCE_NOTIFY`, S→C.
    PresenceNotify = 0x0581,
    /// `MODERATE_REQ`, C→S.
    ModerateReq = 0x0601,
    /// `MODERATE_RES`, S→C.
    ModerateRes = 0x0602,
    /// `SYSTEM_NOTICE_REQ`, C→S.
    SystemNoticeReq = 0x0603,
    /// `SYSTEM_NOTICE_RES`, S→C.
    SystemNoticeRes = 0x0604,
    /// `SYSTEM_NOTICE_NOTIFY`, S→C.
    SystemNoticeNotify = 0x0681,
    /// `MODERATION_NOTIFY`, S→C.
    ModerationNotify = 0x0682,
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
            0x0401 => Self::CreateRoomReq,
            0x0402 => Self::CreateRoomRes,
            0x0403 => Self::JoinRoomReq,
            0x0404 => Self::JoinRoomRes,
            0x0405 => Self::LeaveRoomReq,
            0x0406 => Self::LeaveRoomRes,
            0x0407 => Self::ListRoomsReq,
            0x0408 => Self::ListRoomsRes,
            0x0409 => Self::RoomMembersReq,
            0x040A => Self::RoomMembersRes,
            0x040B => Self::RoomChatReq,
            0x040C => Self::RoomChatRes,
            0x040D => Self::RoomModerateReq,
            0x040E => Self::RoomModerateRes,
            0x0480 => Self::RoomItem,
            0x0481 => Self::RoomChatNotify,
            0x0482 => Self::RoomEventNotify,
            0x0501 => Self::UserListReq,
            0x0502 => Self::UserListRes,
            0x0503 => Self::SetStatusReq,
            0x0504 => Self::SetStatusRes,
            0x0505 => Self::WatchReq,
            0x0506 => Self::WatchRes,
            0x0580 => Self::UserItem,
            0x0581 => Self::PresenceNotify,
            0x0601 => Self::ModerateReq,
            0x0602 => Self::ModerateRes,
            0x0603 => Self::SystemNoticeReq,
            0x0604 => Self::SystemNoticeRes,
            0x0681 => Self::SystemNoticeNotify,
            0x0682 => Self::ModerationNotify,
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
            | Self::LogoutReq
            | Self::CreateRoomReq
            | Self::JoinRoomReq
            | Self::LeaveRoomReq
            | Self::ListRoomsReq
            | Self::RoomMembersReq
            | Self::RoomChatReq
            | Self::RoomModerateReq
            | Self::UserListReq
            | Self::SetStatusReq
            | Self::WatchReq
            | Self::ModerateReq
            | Self::SystemNoticeReq => Direction::ClientToServer,
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
            Self::CreateRoomReq => "CREATE_ROOM_REQ",
            Self::CreateRoomRes => "CREATE_ROOM_RES",
            Self::JoinRoomReq => "JOIN_ROOM_REQ",
            Self::JoinRoomRes => "JOIN_ROOM_RES",
            Self::LeaveRoomReq => "LEAVE_ROOM_REQ",
            Self::LeaveRoomRes => "LEAVE_ROOM_RES",
            Self::ListRoomsReq => "LIST_ROOMS_REQ",
            Self::ListRoomsRes => "LIST_ROOMS_RES",
            Self::RoomMembersReq => "ROOM_MEMBERS_REQ",
            Self::RoomMembersRes => "ROOM_MEMBERS_RES",
            Self::RoomChatReq => "ROOM_CHAT_REQ",
            Self::RoomChatRes => "ROOM_CHAT_RES",
            Self::RoomModerateReq => "ROOM_MODERATE_REQ",
            Self::RoomModerateRes => "ROOM_MODERATE_RES",
            Self::RoomItem => "ROOM_ITEM",
            Self::RoomChatNotify => "ROOM_CHAT_NOTIFY",
            Self::RoomEventNotify => "ROOM_EVENT_NOTIFY",
            Self::UserListReq => "USER_LIST_REQ",
            Self::UserListRes => "USER_LIST_RES",
            Self::SetStatusReq => "SET_STATUS_REQ",
            Self::SetStatusRes => "SET_STATUS_RES",
            Self::WatchReq => "WATCH_REQ",
            Self::WatchRes => "WATCH_RES",
            Self::UserItem => "USER_ITEM",
            Self::PresenceNotify => "PRESENCE_NOTIFY",
            Self::ModerateReq => "MODERATE_REQ",
            Self::ModerateRes => "MODERATE_RES",
            Self::SystemNoticeReq => "SYSTEM_NOTICE_REQ",
            Self::SystemNoticeRes => "SYSTEM_NOTICE_RES",
            Self::SystemNoticeNotify => "SYSTEM_NOTICE_NOTIFY",
            Self::ModerationNotify => "MODERATION_NOTIFY",
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
        /// 0: broadcasts; 1: whispers between the caller and `peer`; 2: the room `peer`.
        channel: u8,
        /// The other user of a whisper conversation, or the room; empty for broadcasts.
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
        /// 1: broadcast; 2: whisper; 3: room message.
        kind: u8,
        /// Sender.
        from: WireStr,
        /// Whisper recipient, or the room of a room message; empty for broadcasts.
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
    /// Create a room and join it as its owner: `room str8, flags u8, password str8, topic str16`.
    CreateRoomReq {
        /// The room's name.
        room: WireStr,
        /// Bit 0 persistent, bit 1 invite-only.
        flags: u8,
        /// Join password; empty for none.
        password: WireStr,
        /// Initial topic; may be empty.
        topic: WireStr,
    },
    /// Answer to `CREATE_ROOM_REQ`: `result u8, room str8`.
    CreateRoomRes {
        /// Outcome.
        result: ResultCode,
        /// The room's name as created.
        room: WireStr,
    },
    /// Join a room: `room str8, password str8`.
    JoinRoomReq {
        /// The room, matched case-insensitively.
        room: WireStr,
        /// The room's password, if it has one.
        password: WireStr,
    },
    /// Answer to `JOIN_ROOM_REQ`: `result u8, room str8, flags u8, members u32, topic str16`.
    JoinRoomRes {
        /// Outcome.
        result: ResultCode,
        /// The room's name as created.
        room: WireStr,
        /// The room's flags (see `CREATE_ROOM_REQ`; bit 2: has a password).
        flags: u8,
        /// Members after joining.
        members: u32,
        /// The topic.
        topic: WireStr,
    },
    /// Leave a room: `room str8`.
    LeaveRoomReq {
        /// The room.
        room: WireStr,
    },
    /// Answer to `LEAVE_ROOM_REQ`: `result u8, room str8`.
    LeaveRoomRes {
        /// Outcome.
        result: ResultCode,
        /// The room.
        room: WireStr,
    },
    /// List rooms by name, a page at a time: `after str8, limit u8`.
    ListRoomsReq {
        /// Only rooms whose folded name sorts after this; empty for the first page.
        after: WireStr,
        /// How many at most (1–100).
        limit: u8,
    },
    /// Answer to `LIST_ROOMS_REQ`, followed by `count` `ROOM_ITEM`s: `result u8, count u16`.
    ListRoomsRes {
        /// Outcome.
        result: ResultCode,
        /// How many items follow.
        count: u16,
    },
    /// List a room's members by name, a page at a time: `room str8, after str8, limit u8`.
    RoomMembersReq {
        /// The room.
        room: WireStr,
        /// Only members whose folded name sorts after this; empty for the first page.
        after: WireStr,
        /// How many at most (1–100).
        limit: u8,
    },
    /// Answer to `ROOM_MEMBERS_REQ`, followed by `count` `USER_ITEM`s: `result u8, count u16`.
    RoomMembersRes {
        /// Outcome.
        result: ResultCode,
        /// How many items follow.
        count: u16,
    },
    /// Send a text to a room's other members: `room str8, text str16`.
    RoomChatReq {
        /// The room.
        room: WireStr,
        /// The message.
        text: WireStr,
    },
    /// Answer to `ROOM_CHAT_REQ`: `result u8, message_id u64`.
    RoomChatRes {
        /// Outcome.
        result: ResultCode,
        /// The id members see, 0 on failure.
        message_id: u64,
    },
    /// A room owner's or operator's action: `room str8, action u8, user str8, duration_s u32, text str16`.
    RoomModerateReq {
        /// The room.
        room: WireStr,
        /// 1 kick, 2 set topic, 3 mute, 4 unmute, 5 invite, 6 grant operator, 7 revoke operator.
        action: u8,
        /// The member acted on; empty for set topic.
        user: WireStr,
        /// Mute length in seconds, 0 for until unmuted; otherwise 0.
        duration_s: u32,
        /// Reason, or the new topic.
        text: WireStr,
    },
    /// Answer to `ROOM_MODERATE_REQ`: `result u8`.
    RoomModerateRes {
        /// Outcome.
        result: ResultCode,
    },
    /// One room of a `LIST_ROOMS_RES`: `room str8, flags u8, members u32, topic str16`.
    RoomItem {
        /// The room's name.
        room: WireStr,
        /// Its flags (see `JOIN_ROOM_RES`).
        flags: u8,
        /// Members online.
        members: u32,
        /// Its topic.
        topic: WireStr,
    },
    /// A message to a room this user is in: `message_id u64, sent_at_ms u64, room str8, from str8, text str16`.
    RoomChatNotify {
        /// Server-assigned id, unique and increasing.
        message_id: u64,
        /// Server Unix time in milliseconds when the message was accepted.
        sent_at_ms: u64,
        /// The room.
        room: WireStr,
        /// Sender's username.
        from: WireStr,
        /// The message.
        text: WireStr,
    },
    /// Something happened in a room this user is in: `event_id u64, sent_at_ms u64, room str8, kind u8, user str8, actor str8, text str16`.
    RoomEventNotify {
        /// Server-assigned id, from the same sequence as message ids.
        event_id: u64,
        /// Server Unix time in milliseconds.
        sent_at_ms: u64,
        /// The room.
        room: WireStr,
        /// 1 joined, 2 left, 3 kicked, 4 topic, 5 muted, 6 unmuted, 7 operator granted, 8 operator revoked, 9 invited.
        kind: u8,
        /// Who it happened to.
        user: WireStr,
        /// Who did it; empty when the user did it themself.
        actor: WireStr,
        /// Reason, new topic, or empty.
        text: WireStr,
    },
    /// List online users by name, a page at a time: `after str8, limit u8`.
    UserListReq {
        /// Only users whose folded name sorts after this; empty for the first page.
        after: WireStr,
        /// How many at most (1–100).
        limit: u8,
    },
    /// Answer to `USER_LIST_REQ`, followed by `count` `USER_ITEM`s: `result u8, count u16`.
    UserListRes {
        /// Outcome.
        result: ResultCode,
        /// How many items follow.
        count: u16,
    },
    /// Set this user's status: `status u8, text str8`.
    SetStatusReq {
        /// 0 online, 1 away.
        status: u8,
        /// Away message; may be empty.
        text: WireStr,
    },
    /// Answer to `SET_STATUS_REQ`: `result u8`.
    SetStatusRes {
        /// Outcome.
        result: ResultCode,
    },
    /// Start or stop receiving a user's presence changes: `watch u8, user str8`.
    WatchReq {
        /// 1 start, 0 stop.
        watch: u8,
        /// The user.
        user: WireStr,
    },
    /// Answer to `WATCH_REQ`, with the user's current presence: `result u8, user str8, status u8, text str8`.
    WatchRes {
        /// Outcome.
        result: ResultCode,
        /// The user.
        user: WireStr,
        /// 0 online, 1 away, 2 offline.
        status: u8,
        /// Away message.
        text: WireStr,
    },
    /// One user of a `USER_LIST_RES` or `ROOM_MEMBERS_RES`: `user str8, status u8, role u8, text str8`.
    UserItem {
        /// The name.
        user: WireStr,
        /// 0 online, 1 away.
        status: u8,
        /// In a room: 0 member, 1 operator, 2 owner; 0 in `USER_LIST_RES`.
        role: u8,
        /// Away message.
        text: WireStr,
    },
    /// A watched user's presence changed: `user str8, status u8, text str8`.
    PresenceNotify {
        /// The user.
        user: WireStr,
        /// 0 online, 1 away, 2 offline.
        status: u8,
        /// Away message.
        text: WireStr,
    },
    /// A server operator's action: `action u8, target str8, duration_s u32, reason str16`.
    ModerateReq {
        /// 1 kick, 2 ban user, 3 ban IP, 4 unban user, 5 unban IP, 6 mute, 7 unmute.
        action: u8,
        /// Username or IP address.
        target: WireStr,
        /// Ban or mute length in seconds, 0 for permanent.
        duration_s: u32,
        /// Why; shown to the target.
        reason: WireStr,
    },
    /// Answer to `MODERATE_REQ`: `result u8`.
    ModerateRes {
        /// Outcome.
        result: ResultCode,
    },
    /// A server operator's notice to everyone: `text str16`.
    SystemNoticeReq {
        /// The notice.
        text: WireStr,
    },
    /// Answer to `SYSTEM_NOTICE_REQ`: `result u8, message_id u64`.
    SystemNoticeRes {
        /// Outcome.
        result: ResultCode,
        /// The notice's id, 0 on failure.
        message_id: u64,
    },
    /// A notice from a server operator: `message_id u64, sent_at_ms u64, from str8, text str16`.
    SystemNoticeNotify {
        /// Server-assigned id, unique and increasing.
        message_id: u64,
        /// Server Unix time in milliseconds.
        sent_at_ms: u64,
        /// The operator.
        from: WireStr,
        /// The notice.
        text: WireStr,
    },
    /// A server operator acted on this user: `action u8, actor str8, expires_at_ms u64, reason str16`.
    ModerationNotify {
        /// 1 kicked, 2 banned, 6 muted, 7 unmuted (the `MODERATE_REQ` actions).
        action: u8,
        /// The operator.
        actor: WireStr,
        /// When a ban or mute ends, Unix ms; 0 for never.
        expires_at_ms: u64,
        /// Why.
        reason: WireStr,
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
            Self::CreateRoomReq { .. } => PacketType::CreateRoomReq,
            Self::CreateRoomRes { .. } => PacketType::CreateRoomRes,
            Self::JoinRoomReq { .. } => PacketType::JoinRoomReq,
            Self::JoinRoomRes { .. } => PacketType::JoinRoomRes,
            Self::LeaveRoomReq { .. } => PacketType::LeaveRoomReq,
            Self::LeaveRoomRes { .. } => PacketType::LeaveRoomRes,
            Self::ListRoomsReq { .. } => PacketType::ListRoomsReq,
            Self::ListRoomsRes { .. } => PacketType::ListRoomsRes,
            Self::RoomMembersReq { .. } => PacketType::RoomMembersReq,
            Self::RoomMembersRes { .. } => PacketType::RoomMembersRes,
            Self::RoomChatReq { .. } => PacketType::RoomChatReq,
            Self::RoomChatRes { .. } => PacketType::RoomChatRes,
            Self::RoomModerateReq { .. } => PacketType::RoomModerateReq,
            Self::RoomModerateRes { .. } => PacketType::RoomModerateRes,
            Self::RoomItem { .. } => PacketType::RoomItem,
            Self::RoomChatNotify { .. } => PacketType::RoomChatNotify,
            Self::RoomEventNotify { .. } => PacketType::RoomEventNotify,
            Self::UserListReq { .. } => PacketType::UserListReq,
            Self::UserListRes { .. } => PacketType::UserListRes,
            Self::SetStatusReq { .. } => PacketType::SetStatusReq,
            Self::SetStatusRes { .. } => PacketType::SetStatusRes,
            Self::WatchReq { .. } => PacketType::WatchReq,
            Self::WatchRes { .. } => PacketType::WatchRes,
            Self::UserItem { .. } => PacketType::UserItem,
            Self::PresenceNotify { .. } => PacketType::PresenceNotify,
            Self::ModerateReq { .. } => PacketType::ModerateReq,
            Self::ModerateRes { .. } => PacketType::ModerateRes,
            Self::SystemNoticeReq { .. } => PacketType::SystemNoticeReq,
            Self::SystemNoticeRes { .. } => PacketType::SystemNoticeRes,
            Self::SystemNoticeNotify { .. } => PacketType::SystemNoticeNotify,
            Self::ModerationNotify { .. } => PacketType::ModerationNotify,
        }
    }
}
