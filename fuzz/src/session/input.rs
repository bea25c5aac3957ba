//! What a `session` input is made of, and the bytes each of its operations sends.

use arbitrary::Arbitrary;
use bytes::BytesMut;
use suda_protocol::{ErrorCode, Packet, PacketType, ResultCode, WireStr, encode};

/// Valid names an input logs in with (the last one is the longest allowed).
pub const NAMES: [&str; 4] = [
    "alice",
    "Bob",
    "carol-9",
    "z_234567890123456789012345678901",
];
/// Names that break the naming rules.
pub(crate) const INVALID_NAMES: [&[u8]; 6] = [
    b"",
    b"a b",
    b"x23456789012345678901234567890123",
    "\u{e9}".as_bytes(),
    b"bad.name",
    b"\xffok",
];
/// Valid room names an input uses (the last one is the longest allowed; `.` is allowed in room
/// names but not in usernames).
pub const ROOMS: [&str; 4] = [
    "lobby",
    "Dev.Team",
    "x-1",
    "r2345678901234567890123456789012",
];
/// Room names that break the naming rules.
pub(crate) const INVALID_ROOMS: [&[u8]; 5] = [
    b"",
    b"a b",
    b"r23456789012345678901234567890123",
    "\u{e9}".as_bytes(),
    b"no/slash",
];
/// The password of rooms created with [`Secret::Right`].
pub(crate) const ROOM_PASSWORD: &str = "s3cret";
/// Longest raw text or name sent, so that every packet stays encodable.
const MAX_RAW_TEXT: usize = 60_000;

/// One fuzz input: how many connections, and what to do on them.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct SessionInput<'a> {
    /// `1 + connections % 3` connections are open at once.
    pub connections: u8,
    /// What to do, in order (at most [`MAX_OPS`]).
    pub ops: Vec<Op<'a>>,
}

/// One step. `conn` picks a connection, modulo how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Op<'a> {
    /// Send `LOGIN_REQ` with a password of `password_len` bytes.
    Login {
        /// Which connection.
        conn: u8,
        /// Who to log in as.
        name: Name<'a>,
        /// Length of the (ignored) password.
        password_len: u8,
    },
    /// Send `BROADCAST_REQ`.
    Broadcast {
        /// Which connection.
        conn: u8,
        /// What to say.
        text: Text<'a>,
    },
    /// Send `WHISPER_REQ`.
    Whisper {
        /// Which connection.
        conn: u8,
        /// To whom.
        to: Name<'a>,
        /// What to say.
        text: Text<'a>,
    },
    /// Send `PING`.
    Ping {
        /// Which connection.
        conn: u8,
        /// Echoed in `PONG`.
        nonce: u64,
    },
    /// Send something the server must refuse, or only part of a packet.
    Malformed {
        /// Which connection.
        conn: u8,
        /// What.
        kind: Malformed,
    },
    /// Send these bytes as they are.
    Raw {
        /// Which connection.
        conn: u8,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// Close the connection politely (half-close, read to the end), then open a new one.
    Reconnect {
        /// Which connection.
        conn: u8,
    },
    /// Drop the connection without reading what is pending (the kernel may reset it), then open
    /// a new one.
    Abort {
        /// Which connection.
        conn: u8,
    },
    /// Send `LOGOUT_REQ` (version 1.1): a logged-in session ends and the server closes.
    Logout {
        /// Which connection.
        conn: u8,
    },
    /// Send a request of the accounts, history or resume features, which the harness's server
    /// (no storage, no resume grace) must refuse without closing.
    Account {
        /// Which connection.
        conn: u8,
        /// What to ask.
        request: AccountOp<'a>,
    },
    /// Send a rooms request (protocol 1.3).
    Room {
        /// Which connection.
        conn: u8,
        /// What to ask.
        request: RoomOp<'a>,
    },
    /// Send a presence request (protocol 1.3).
    Presence {
        /// Which connection.
        conn: u8,
        /// What to ask.
        request: PresenceOp<'a>,
    },
    /// Send `MODERATE_REQ` (or, with `notice`, `SYSTEM_NOTICE_REQ`): nobody is a server operator
    /// on a server without accounts, so it must be refused.
    Operator {
        /// Which connection.
        conn: u8,
        /// `SYSTEM_NOTICE_REQ` instead of `MODERATE_REQ`.
        notice: bool,
        /// The moderation action, `% 9` (0 and 8 are unknown).
        action: u8,
        /// Whom.
        target: Name<'a>,
        /// The reason, or the notice.
        text: Text<'a>,
    },
}

/// Rooms requests (`docs/PROTOCOL.md` §13).
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum RoomOp<'a> {
    /// `CREATE_ROOM_REQ`; `flags % 8`: bit 0 persistent (not available here), bit 1 invite-only,
    /// bit 2 unknown.
    Create {
        /// Which room.
        room: RoomName<'a>,
        /// Flags.
        flags: u8,
        /// The password needed to join.
        password: Secret<'a>,
        /// The topic.
        topic: Topic<'a>,
    },
    /// `JOIN_ROOM_REQ`.
    Join {
        /// Which room.
        room: RoomName<'a>,
        /// The password given.
        password: Secret<'a>,
    },
    /// `LEAVE_ROOM_REQ`.
    Leave {
        /// Which room.
        room: RoomName<'a>,
    },
    /// `ROOM_CHAT_REQ`.
    Chat {
        /// Which room.
        room: RoomName<'a>,
        /// What to say.
        text: Text<'a>,
    },
    /// `LIST_ROOMS_REQ`.
    List {
        /// Names after this one.
        after: Cursor<'a>,
        /// Page size (1–100 is acceptable).
        limit: u8,
    },
    /// `ROOM_MEMBERS_REQ`.
    Members {
        /// Which room.
        room: RoomName<'a>,
        /// Names after this one.
        after: Cursor<'a>,
        /// Page size (1–100 is acceptable).
        limit: u8,
    },
    /// `ROOM_MODERATE_REQ`; `action % 9` (0 and 8 are unknown).
    Moderate {
        /// Which room.
        room: RoomName<'a>,
        /// Kick, topic, mute, unmute, invite, op, deop.
        action: u8,
        /// Whom.
        user: Name<'a>,
        /// A mute for an hour instead of until unmuted. Never shorter: a mute that could run out
        /// during an input would make the model depend on the clock.
        for_an_hour: bool,
        /// The reason, or the topic.
        text: Topic<'a>,
    },
}

/// Presence requests (`docs/PROTOCOL.md` §13).
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum PresenceOp<'a> {
    /// `USER_LIST_REQ`.
    List {
        /// Names after this one.
        after: Cursor<'a>,
        /// Page size (1–100 is acceptable).
        limit: u8,
    },
    /// `SET_STATUS_REQ`; `status % 3` (0 online, 1 away, 2 unknown).
    SetStatus {
        /// The status.
        status: u8,
        /// The away message.
        text: Topic<'a>,
    },
    /// `WATCH_REQ`; `watch % 3` (0 stop, 1 start, 2 unknown).
    Watch {
        /// Start or stop.
        watch: u8,
        /// Whom.
        user: Name<'a>,
    },
}

/// A room name as sent in a request.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum RoomName<'a> {
    /// One of [`ROOMS`].
    Known(u8),
    /// One of [`ROOMS`] in capitals: the same room, compared case-insensitively.
    Shouted(u8),
    /// A name that breaks the rules.
    Invalid(u8),
    /// Any bytes (at most 255).
    Raw(&'a [u8]),
}

/// A room password, as set or as given.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Secret<'a> {
    /// Empty: no password.
    None,
    /// [`ROOM_PASSWORD`].
    Right,
    /// Another password.
    Wrong,
    /// Any bytes (at most 255; over 64 or not UTF-8 is `INVALID_REQUEST` for a new room).
    Raw(&'a [u8]),
}

/// A topic, moderation reason or away message (no control characters; 512 bytes at most for a
/// topic or reason, 128 for an away message).
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Topic<'a> {
    /// Empty.
    Empty,
    /// `welcome`.
    Short,
    /// `n % 600` bytes of `x`: on both sides of both limits.
    Filled(u16),
    /// A terminal escape sequence: `INVALID_MESSAGE`.
    Control,
    /// Not UTF-8: `INVALID_MESSAGE`.
    NotUtf8,
    /// Any bytes.
    Raw(&'a [u8]),
}

/// The `after` of a paging request.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Cursor<'a> {
    /// Empty: from the start.
    Start,
    /// One of [`ROOMS`].
    Room(u8),
    /// One of [`NAMES`].
    User(u8),
    /// Any bytes (at most 255).
    Raw(&'a [u8]),
}

/// Requests of protocol versions 1.1 and 1.2 besides `LOGOUT_REQ`.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum AccountOp<'a> {
    /// `REGISTER_REQ` with a password of `password_len` bytes.
    Register {
        /// The account name.
        name: Name<'a>,
        /// Password length (8–128 is acceptable).
        password_len: u8,
    },
    /// `CHANGE_PASSWORD_REQ`.
    ChangePassword {
        /// Old password length.
        old_len: u8,
        /// New password length.
        new_len: u8,
    },
    /// `HISTORY_REQ`.
    History {
        /// 0 broadcasts, 1 whispers with `peer`, anything else invalid.
        channel: u8,
        /// The other party of a whisper history.
        peer: Name<'a>,
        /// Only older messages than this id (0: the newest).
        before_id: u64,
        /// How many (1–100 is acceptable).
        limit: u8,
    },
    /// `SESSION_TOKEN_REQ`.
    SessionToken,
    /// `RESUME_REQ` with a made-up token of `token_len` hex digits.
    Resume {
        /// Whose session.
        name: Name<'a>,
        /// Token length.
        token_len: u8,
        /// Last notification seen.
        last_message_id: u64,
    },
}

/// A username as sent in `LOGIN_REQ` or `WHISPER_REQ`'s `to`.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Name<'a> {
    /// One of [`NAMES`].
    Known(u8),
    /// One of [`NAMES`] in capitals: the same name, compared case-insensitively.
    Shouted(u8),
    /// A name that breaks the rules.
    Invalid(u8),
    /// Any bytes (at most 255).
    Raw(&'a [u8]),
}

/// A chat text.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Text<'a> {
    /// `hi`.
    Hi,
    /// Non-ASCII UTF-8.
    Unicode,
    /// Empty: `INVALID_MESSAGE`.
    Empty,
    /// Exactly the server's `max_text` bytes.
    Longest,
    /// One byte over `max_text`: `INVALID_MESSAGE`.
    TooLong,
    /// Not UTF-8: `INVALID_MESSAGE`.
    NotUtf8,
    /// A terminal escape sequence: `INVALID_MESSAGE`.
    Control,
    /// Newlines and tabs, the only control characters allowed.
    Multiline,
    /// So long that the packet is over `max_packet`: the connection is closed.
    Oversize,
    /// Any bytes.
    Raw(&'a [u8]),
}

/// Bytes that are not a well-formed client packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Arbitrary)]
pub enum Malformed {
    /// A header whose size (`n % 4`) is below the header's own.
    TooShort(u8),
    /// A header announcing one byte over `max_packet`.
    TooLarge,
    /// A `PING`-sized packet of an unknown type.
    UnknownType(u16),
    /// A valid packet of a type only servers send.
    ServerOnly(u8),
    /// `PING` whose nonce is 4 bytes short.
    Truncated,
    /// `PING` with a byte after its nonce.
    Trailing,
    /// The first `1 + n % 3` bytes of a `PING` header: the next bytes complete it, whatever they
    /// are.
    PartialHeader(u8),
}

/// The server settings that the bytes of some operations depend on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_packet: usize,
    pub(crate) max_text: usize,
}

/// What an operation sends (nothing for `Reconnect` and `Abort`, which are not packets).
pub(crate) fn op_bytes(op: &Op<'_>, limits: Limits) -> Vec<u8> {
    let packet = match op {
        Op::Login {
            name, password_len, ..
        } => Packet::LoginReq {
            username: WireStr::from(&name_bytes(name)[..]),
            password: vec![b'p'; usize::from(*password_len)][..].into(),
        },
        Op::Broadcast { text, .. } => Packet::BroadcastReq {
            text: WireStr::from(&text_bytes(text, limits)[..]),
        },
        Op::Whisper { to, text, .. } => Packet::WhisperReq {
            to: WireStr::from(&name_bytes(to)[..]),
            text: WireStr::from(&text_bytes(text, limits)[..]),
        },
        Op::Ping { nonce, .. } => Packet::Ping { nonce: *nonce },
        Op::Logout { .. } => Packet::LogoutReq,
        Op::Account { request, .. } => account_packet(request),
        Op::Room { request, .. } => room_packet(request, limits),
        Op::Presence { request, .. } => presence_packet(request),
        Op::Operator {
            notice: true, text, ..
        } => Packet::SystemNoticeReq {
            text: WireStr::from(&text_bytes(text, limits)[..]),
        },
        Op::Operator {
            action,
            target,
            text,
            ..
        } => Packet::ModerateReq {
            action: action % 9,
            target: WireStr::from(&name_bytes(target)[..]),
            duration_s: 0,
            reason: WireStr::from(&text_bytes(text, limits)[..]),
        },
        Op::Malformed { kind, .. } => return malformed_bytes(*kind, limits),
        Op::Raw { bytes, .. } => return bytes.to_vec(),
        Op::Reconnect { .. } | Op::Abort { .. } => unreachable!("not a packet"),
    };
    encoded(&packet)
}

fn text_bytes(text: &Text<'_>, limits: Limits) -> Vec<u8> {
    let max_text = limits.max_text;
    match text {
        Text::Hi => b"hi".to_vec(),
        Text::Unicode => "h\u{e9}llo \u{1f980}".as_bytes().to_vec(),
        Text::Empty => Vec::new(),
        Text::Longest => vec![b'x'; max_text],
        Text::TooLong => vec![b'x'; max_text + 1],
        Text::NotUtf8 => b"ok\xff".to_vec(),
        Text::Control => b"\x1b[2Jhi".to_vec(),
        Text::Multiline => b"one\n\ttwo\r\n".to_vec(),
        Text::Oversize => vec![b'y'; limits.max_packet],
        Text::Raw(bytes) => bytes[..bytes.len().min(MAX_RAW_TEXT)].to_vec(),
    }
}

fn malformed_bytes(kind: Malformed, limits: Limits) -> Vec<u8> {
    let ping = encoded(&Packet::Ping { nonce: 7 });
    match kind {
        Malformed::TooShort(size) => vec![size % 4, 0, 0x07, 0x00],
        Malformed::TooLarge => {
            let size = u16::try_from(limits.max_packet + 1).unwrap_or(u16::MAX);
            let [lo, hi] = size.to_le_bytes();
            vec![lo, hi, 0x03, 0x00]
        }
        Malformed::UnknownType(raw) => {
            let raw = if PacketType::from_u16(raw).is_some() {
                0x0009
            } else {
                raw
            };
            let mut bytes = ping;
            bytes[2..4].copy_from_slice(&raw.to_le_bytes());
            bytes
        }
        Malformed::ServerOnly(which) => {
            let packets = [
                Packet::LoginRes {
                    result: ResultCode::OK,
                    session_id: 1,
                },
                Packet::BroadcastRes {
                    result: ResultCode::OK,
                    message_id: 1,
                },
                Packet::WhisperRes {
                    result: ResultCode::USER_NOT_FOUND,
                    message_id: 0,
                },
                Packet::Pong { nonce: 1 },
                Packet::BroadcastNotify {
                    message_id: 1,
                    sent_at_ms: 0,
                    from: "x".into(),
                    text: "hi".into(),
                },
                Packet::WhisperNotify {
                    message_id: 1,
                    sent_at_ms: 0,
                    from: "x".into(),
                    text: "hi".into(),
                },
                Packet::ErrorNotify {
                    code: ErrorCode::SERVER_SHUTDOWN,
                    reason: "bye".into(),
                },
                Packet::LogoutRes {
                    result: ResultCode::OK,
                },
                Packet::HistoryItem {
                    message_id: 1,
                    sent_at_ms: 0,
                    kind: 1,
                    from: "x".into(),
                    to: WireStr::default(),
                    text: "hi".into(),
                },
                Packet::RoomItem {
                    room: "lobby".into(),
                    flags: 0,
                    members: 1,
                    topic: WireStr::default(),
                },
                Packet::RoomEventNotify {
                    event_id: 1,
                    sent_at_ms: 0,
                    room: "lobby".into(),
                    kind: 1,
                    user: "x".into(),
                    actor: WireStr::default(),
                    text: WireStr::default(),
                },
                Packet::PresenceNotify {
                    user: "x".into(),
                    status: 0,
                    text: WireStr::default(),
                },
            ];
            encoded(&packets[usize::from(which) % packets.len()])
        }
        Malformed::Truncated => {
            let mut bytes = ping;
            bytes.truncate(8);
            bytes[0] = 8;
            bytes
        }
        Malformed::Trailing => {
            let mut bytes = ping;
            bytes.push(0xff);
            bytes[0] += 1;
            bytes
        }
        Malformed::PartialHeader(n) => ping[..1 + usize::from(n % 3)].to_vec(),
    }
}

/// The packet an [`AccountOp`] sends.
pub(crate) fn account_packet(request: &AccountOp<'_>) -> Packet {
    let filled = |len: u8, fill: u8| WireStr::from(&vec![fill; usize::from(len)][..]);
    match request {
        AccountOp::Register { name, password_len } => Packet::RegisterReq {
            username: WireStr::from(&name_bytes(name)[..]),
            password: filled(*password_len, b'p'),
        },
        AccountOp::ChangePassword { old_len, new_len } => Packet::ChangePasswordReq {
            old_password: filled(*old_len, b'o'),
            new_password: filled(*new_len, b'n'),
        },
        AccountOp::History {
            channel,
            peer,
            before_id,
            limit,
        } => Packet::HistoryReq {
            channel: channel % 3,
            peer: WireStr::from(&name_bytes(peer)[..]),
            before_id: *before_id,
            limit: *limit,
        },
        AccountOp::SessionToken => Packet::SessionTokenReq,
        AccountOp::Resume {
            name,
            token_len,
            last_message_id,
        } => {
            let token: Vec<u8> = b"0123456789abcdef"
                .iter()
                .cycle()
                .take(usize::from(*token_len))
                .copied()
                .collect();
            Packet::ResumeReq {
                username: WireStr::from(&name_bytes(name)[..]),
                token: WireStr::from(&token[..]),
                last_message_id: *last_message_id,
            }
        }
    }
}

/// The packet a [`RoomOp`] sends.
fn room_packet(request: &RoomOp<'_>, limits: Limits) -> Packet {
    match request {
        RoomOp::Create {
            room,
            flags,
            password,
            topic,
        } => Packet::CreateRoomReq {
            room: room_wire(room),
            flags: flags % 8,
            password: secret_wire(password),
            topic: topic_wire(topic),
        },
        RoomOp::Join { room, password } => Packet::JoinRoomReq {
            room: room_wire(room),
            password: secret_wire(password),
        },
        RoomOp::Leave { room } => Packet::LeaveRoomReq {
            room: room_wire(room),
        },
        RoomOp::Chat { room, text } => Packet::RoomChatReq {
            room: room_wire(room),
            text: WireStr::from(&text_bytes(text, limits)[..]),
        },
        RoomOp::List { after, limit } => Packet::ListRoomsReq {
            after: cursor_wire(after),
            limit: *limit,
        },
        RoomOp::Members { room, after, limit } => Packet::RoomMembersReq {
            room: room_wire(room),
            after: cursor_wire(after),
            limit: *limit,
        },
        RoomOp::Moderate {
            room,
            action,
            user,
            for_an_hour,
            text,
        } => Packet::RoomModerateReq {
            room: room_wire(room),
            action: action % 9,
            user: WireStr::from(&name_bytes(user)[..]),
            duration_s: if *for_an_hour { 3600 } else { 0 },
            text: topic_wire(text),
        },
    }
}

/// The packet a [`PresenceOp`] sends.
fn presence_packet(request: &PresenceOp<'_>) -> Packet {
    match request {
        PresenceOp::List { after, limit } => Packet::UserListReq {
            after: cursor_wire(after),
            limit: *limit,
        },
        PresenceOp::SetStatus { status, text } => {
            let mut text = topic_wire(text).as_bytes().to_vec();
            text.truncate(usize::from(u8::MAX));
            Packet::SetStatusReq {
                status: status % 3,
                text: WireStr::from(&text[..]),
            }
        }
        PresenceOp::Watch { watch, user } => Packet::WatchReq {
            watch: watch % 3,
            user: WireStr::from(&name_bytes(user)[..]),
        },
    }
}

fn room_wire(room: &RoomName<'_>) -> WireStr {
    let bytes = match room {
        RoomName::Known(i) => ROOMS[usize::from(*i) % ROOMS.len()].as_bytes().to_vec(),
        RoomName::Shouted(i) => ROOMS[usize::from(*i) % ROOMS.len()]
            .to_ascii_uppercase()
            .into_bytes(),
        RoomName::Invalid(i) => INVALID_ROOMS[usize::from(*i) % INVALID_ROOMS.len()].to_vec(),
        RoomName::Raw(bytes) => short(bytes).to_vec(),
    };
    WireStr::from(&bytes[..])
}

fn secret_wire(secret: &Secret<'_>) -> WireStr {
    match secret {
        Secret::None => WireStr::default(),
        Secret::Right => ROOM_PASSWORD.into(),
        Secret::Wrong => "wrong".into(),
        Secret::Raw(bytes) => WireStr::from(short(bytes)),
    }
}

fn topic_wire(topic: &Topic<'_>) -> WireStr {
    match topic {
        Topic::Empty => WireStr::default(),
        Topic::Short => "welcome".into(),
        Topic::Filled(n) => WireStr::from(&vec![b'x'; usize::from(n % 600)][..]),
        Topic::Control => "\x1b]0;owned\x07".into(),
        Topic::NotUtf8 => WireStr::from(&b"caf\xe9"[..]),
        Topic::Raw(bytes) => WireStr::from(&bytes[..bytes.len().min(MAX_RAW_TEXT)]),
    }
}

fn cursor_wire(cursor: &Cursor<'_>) -> WireStr {
    match cursor {
        Cursor::Start => WireStr::default(),
        Cursor::Room(i) => ROOMS[usize::from(*i) % ROOMS.len()].into(),
        Cursor::User(i) => NAMES[usize::from(*i) % NAMES.len()].into(),
        Cursor::Raw(bytes) => WireStr::from(short(bytes)),
    }
}

/// At most the 255 bytes a `str8` holds.
fn short(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(usize::from(u8::MAX))]
}

pub(crate) fn name_bytes(name: &Name<'_>) -> Vec<u8> {
    match name {
        Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].as_bytes().to_vec(),
        Name::Shouted(i) => NAMES[usize::from(*i) % NAMES.len()]
            .to_ascii_uppercase()
            .into_bytes(),
        Name::Invalid(i) => INVALID_NAMES[usize::from(*i) % INVALID_NAMES.len()].to_vec(),
        Name::Raw(bytes) => bytes[..bytes.len().min(usize::from(u8::MAX))].to_vec(),
    }
}

pub(crate) fn encoded(packet: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(packet, &mut out).expect("the harness builds only encodable packets");
    out.to_vec()
}
