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
