//! The seed corpus: a few meaningful inputs per target, written as the bytes that `arbitrary`
//! parses back into them.
//!
//! `cargo test -- --ignored write_seed_corpus` (from `fuzz/`) rewrites `corpus/*/seed-*`;
//! `seeds_parse_back` checks that the encoder below still matches `arbitrary`'s format.

use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use suda_protocol::{ErrorCode, Packet, ResultCode};

use crate::codec::FramingInput;
use crate::session::{
    AccountOp, Cursor, Malformed, Name, Op, PresenceOp, RoomName, RoomOp, Secret, SessionInput,
    Text, Topic,
};

/// Writes a value the way `arbitrary` 1.x reads it. Continuation-passing: `tail` is the encoding
/// of everything parsed after this value, because lengths of byte slices are read from the end of
/// the remaining input.
trait Encode {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8>;
}

fn prepend(front: &[u8], tail: Vec<u8>) -> Vec<u8> {
    let mut out = front.to_vec();
    out.extend(tail);
    out
}

impl Encode for u8 {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        prepend(&[*self], tail)
    }
}

impl Encode for u16 {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        prepend(&self.to_le_bytes(), tail)
    }
}

impl Encode for bool {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        prepend(&[u8::from(*self)], tail)
    }
}

impl Encode for u64 {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        prepend(&self.to_le_bytes(), tail)
    }
}

/// A byte slice that is not the last field: its bytes, the rest, then its length at the end.
impl Encode for &[u8] {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        let len = self.len();
        let body = len + tail.len();
        let mut out = prepend(self, tail);
        if body == 0 {
            // A single byte left is read as length 0.
            out.push(0);
            return out;
        }
        let width = if body < 256 {
            1
        } else if body + 2 <= usize::from(u16::MAX) + 2 {
            2
        } else {
            4
        };
        // Only as many bytes as the largest possible length needs are read, big-endian.
        let needed = (usize::BITS - body.leading_zeros()).div_ceil(8) as usize;
        let be = (len as u64).to_be_bytes();
        let mut size = be[8 - needed..].to_vec();
        size.resize(width, 0);
        out.extend(size);
        out
    }
}

/// A collection that is not the last field: a `1` before each element, a `0` after the last.
fn encode_vec<T: Encode>(items: &[T], tail: Vec<u8>) -> Vec<u8> {
    items.iter().rev().fold(prepend(&[0], tail), |rest, item| {
        prepend(&[1], item.encode(rest))
    })
}

/// A collection that is the last field: the same without the final `0`.
fn encode_vec_last<T: Encode>(items: &[T]) -> Vec<u8> {
    items
        .iter()
        .rev()
        .fold(Vec::new(), |rest, item| prepend(&[1], item.encode(rest)))
}

/// The `u32` that `arbitrary`'s derive maps to variant `index` of `count`.
fn variant(index: u32, count: u32, tail: Vec<u8>) -> Vec<u8> {
    let raw = ((u64::from(index) << 32).div_ceil(u64::from(count))) as u32;
    prepend(&raw.to_le_bytes(), tail)
}

impl Encode for FramingInput<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        assert!(tail.is_empty(), "the top-level input takes the rest");
        self.max_packet
            .encode(encode_vec(&self.chunk_lens, self.stream.to_vec()))
    }
}

impl Encode for SessionInput<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        assert!(tail.is_empty(), "the top-level input takes the rest");
        self.connections.encode(encode_vec_last(&self.ops))
    }
}

impl Encode for Op<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 13;
        match self {
            Op::Login {
                conn,
                name,
                password_len,
            } => variant(0, N, conn.encode(name.encode(password_len.encode(tail)))),
            Op::Broadcast { conn, text } => variant(1, N, conn.encode(text.encode(tail))),
            Op::Whisper { conn, to, text } => {
                variant(2, N, conn.encode(to.encode(text.encode(tail))))
            }
            Op::Ping { conn, nonce } => variant(3, N, conn.encode(nonce.encode(tail))),
            Op::Malformed { conn, kind } => variant(4, N, conn.encode(kind.encode(tail))),
            Op::Raw { conn, bytes } => variant(5, N, conn.encode(bytes.encode(tail))),
            Op::Reconnect { conn } => variant(6, N, conn.encode(tail)),
            Op::Abort { conn } => variant(7, N, conn.encode(tail)),
            Op::Logout { conn } => variant(8, N, conn.encode(tail)),
            Op::Account { conn, request } => variant(9, N, conn.encode(request.encode(tail))),
            Op::Room { conn, request } => variant(10, N, conn.encode(request.encode(tail))),
            Op::Presence { conn, request } => variant(11, N, conn.encode(request.encode(tail))),
            Op::Operator {
                conn,
                notice,
                action,
                target,
                text,
            } => variant(
                12,
                N,
                conn.encode(notice.encode(action.encode(target.encode(text.encode(tail))))),
            ),
        }
    }
}

impl Encode for AccountOp<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 5;
        match self {
            AccountOp::Register { name, password_len } => {
                variant(0, N, name.encode(password_len.encode(tail)))
            }
            AccountOp::ChangePassword { old_len, new_len } => {
                variant(1, N, old_len.encode(new_len.encode(tail)))
            }
            AccountOp::History {
                channel,
                peer,
                before_id,
                limit,
            } => variant(
                2,
                N,
                channel.encode(peer.encode(before_id.encode(limit.encode(tail)))),
            ),
            AccountOp::SessionToken => variant(3, N, tail),
            AccountOp::Resume {
                name,
                token_len,
                last_message_id,
            } => variant(
                4,
                N,
                name.encode(token_len.encode(last_message_id.encode(tail))),
            ),
        }
    }
}

impl Encode for RoomOp<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 7;
        match self {
            RoomOp::Create {
                room,
                flags,
                password,
                topic,
            } => variant(
                0,
                N,
                room.encode(flags.encode(password.encode(topic.encode(tail)))),
            ),
            RoomOp::Join { room, password } => variant(1, N, room.encode(password.encode(tail))),
            RoomOp::Leave { room } => variant(2, N, room.encode(tail)),
            RoomOp::Chat { room, text } => variant(3, N, room.encode(text.encode(tail))),
            RoomOp::List { after, limit } => variant(4, N, after.encode(limit.encode(tail))),
            RoomOp::Members { room, after, limit } => {
                variant(5, N, room.encode(after.encode(limit.encode(tail))))
            }
            RoomOp::Moderate {
                room,
                action,
                user,
                for_an_hour,
                text,
            } => variant(
                6,
                N,
                room.encode(action.encode(user.encode(for_an_hour.encode(text.encode(tail))))),
            ),
        }
    }
}

impl Encode for PresenceOp<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 3;
        match self {
            PresenceOp::List { after, limit } => variant(0, N, after.encode(limit.encode(tail))),
            PresenceOp::SetStatus { status, text } => {
                variant(1, N, status.encode(text.encode(tail)))
            }
            PresenceOp::Watch { watch, user } => variant(2, N, watch.encode(user.encode(tail))),
        }
    }
}

impl Encode for RoomName<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 4;
        match self {
            RoomName::Known(i) => variant(0, N, i.encode(tail)),
            RoomName::Shouted(i) => variant(1, N, i.encode(tail)),
            RoomName::Invalid(i) => variant(2, N, i.encode(tail)),
            RoomName::Raw(bytes) => variant(3, N, bytes.encode(tail)),
        }
    }
}

impl Encode for Secret<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 4;
        match self {
            Secret::None => variant(0, N, tail),
            Secret::Right => variant(1, N, tail),
            Secret::Wrong => variant(2, N, tail),
            Secret::Raw(bytes) => variant(3, N, bytes.encode(tail)),
        }
    }
}

impl Encode for Topic<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 6;
        match self {
            Topic::Empty => variant(0, N, tail),
            Topic::Short => variant(1, N, tail),
            Topic::Filled(n) => variant(2, N, n.encode(tail)),
            Topic::Control => variant(3, N, tail),
            Topic::NotUtf8 => variant(4, N, tail),
            Topic::Raw(bytes) => variant(5, N, bytes.encode(tail)),
        }
    }
}

impl Encode for Cursor<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 4;
        match self {
            Cursor::Start => variant(0, N, tail),
            Cursor::Room(i) => variant(1, N, i.encode(tail)),
            Cursor::User(i) => variant(2, N, i.encode(tail)),
            Cursor::Raw(bytes) => variant(3, N, bytes.encode(tail)),
        }
    }
}

impl Encode for Name<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 4;
        match self {
            Name::Known(i) => variant(0, N, i.encode(tail)),
            Name::Shouted(i) => variant(1, N, i.encode(tail)),
            Name::Invalid(i) => variant(2, N, i.encode(tail)),
            Name::Raw(bytes) => variant(3, N, bytes.encode(tail)),
        }
    }
}

impl Encode for Text<'_> {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 10;
        match self {
            Text::Hi => variant(0, N, tail),
            Text::Unicode => variant(1, N, tail),
            Text::Empty => variant(2, N, tail),
            Text::Longest => variant(3, N, tail),
            Text::TooLong => variant(4, N, tail),
            Text::NotUtf8 => variant(5, N, tail),
            Text::Control => variant(6, N, tail),
            Text::Multiline => variant(7, N, tail),
            Text::Oversize => variant(8, N, tail),
            Text::Raw(bytes) => variant(9, N, bytes.encode(tail)),
        }
    }
}

impl Encode for Malformed {
    fn encode(&self, tail: Vec<u8>) -> Vec<u8> {
        const N: u32 = 7;
        match self {
            Malformed::TooShort(n) => variant(0, N, n.encode(tail)),
            Malformed::TooLarge => variant(1, N, tail),
            Malformed::UnknownType(t) => variant(2, N, t.encode(tail)),
            Malformed::ServerOnly(i) => variant(3, N, i.encode(tail)),
            Malformed::Truncated => variant(4, N, tail),
            Malformed::Trailing => variant(5, N, tail),
            Malformed::PartialHeader(n) => variant(6, N, n.encode(tail)),
        }
    }
}

fn wire(packet: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    suda_protocol::encode(packet, &mut out).expect("encodable");
    out.to_vec()
}

/// The byte-exact examples of `docs/PROTOCOL.md` (also in the protocol crate's codec tests).
fn documented_examples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "login_req",
            wire(&Packet::LoginReq {
                username: "alice".into(),
                password: "pw".into(),
            }),
        ),
        (
            "login_res",
            wire(&Packet::LoginRes {
                result: ResultCode::OK,
                session_id: 7,
            }),
        ),
        (
            "broadcast_req",
            wire(&Packet::BroadcastReq { text: "hi".into() }),
        ),
        (
            "broadcast_res",
            wire(&Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: 0x0102,
            }),
        ),
        (
            "whisper_req",
            wire(&Packet::WhisperReq {
                to: "bob".into(),
                text: "yo".into(),
            }),
        ),
        (
            "whisper_res",
            wire(&Packet::WhisperRes {
                result: ResultCode::USER_NOT_FOUND,
                message_id: 0,
            }),
        ),
        ("ping", wire(&Packet::Ping { nonce: 42 })),
        ("pong", wire(&Packet::Pong { nonce: 42 })),
        (
            "broadcast_notify",
            wire(&Packet::BroadcastNotify {
                message_id: 0x0102,
                sent_at_ms: 1_700_000_000_000,
                from: "alice".into(),
                text: "hi".into(),
            }),
        ),
        (
            "whisper_notify",
            wire(&Packet::WhisperNotify {
                message_id: 3,
                sent_at_ms: 0,
                from: "bob".into(),
                text: "".into(),
            }),
        ),
        (
            "error_notify",
            wire(&Packet::ErrorNotify {
                code: ErrorCode::SERVER_SHUTDOWN,
                reason: "bye".into(),
            }),
        ),
    ]
}

/// Malformed streams, each named for the error it must produce.
fn malformed_examples() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("too_short", vec![0x03, 0x00, 0x07, 0x00]),
        ("too_large_8192", vec![0x01, 0x20, 0x03, 0x00, 0x00]),
        (
            "unknown_type",
            vec![0x0c, 0x00, 0x09, 0x00, 1, 2, 3, 4, 5, 6, 7, 8],
        ),
        ("truncated_ping", vec![0x08, 0x00, 0x07, 0x00, 1, 2, 3, 4]),
        (
            "truncated_username",
            vec![0x08, 0x00, 0x01, 0x00, 0x0a, 0x61, 0x62, 0x63],
        ),
        (
            "broadcast_without_prefix",
            vec![0x05, 0x00, 0x03, 0x00, 0x01],
        ),
        (
            "trailing_ping",
            vec![0x0d, 0x00, 0x07, 0x00, 0x2a, 0, 0, 0, 0, 0, 0, 0, 0xff],
        ),
        (
            "not_utf8_text",
            vec![0x07, 0x00, 0x03, 0x00, 0x01, 0x00, 0xff],
        ),
    ]
}

fn all_examples() -> Vec<u8> {
    documented_examples()
        .into_iter()
        .flat_map(|(_, bytes)| bytes)
        .collect()
}

fn decode_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, bytes) in documented_examples() {
        seeds.push((name.to_owned(), prepend(&[0xff, 0xff], bytes)));
    }
    for (name, bytes) in malformed_examples() {
        seeds.push((name.to_owned(), prepend(&[0x00, 0x20], bytes)));
    }
    seeds.push((
        "all_examples".into(),
        prepend(&[0x00, 0x20], all_examples()),
    ));
    let mut cut = all_examples();
    cut.truncate(40);
    seeds.push(("incomplete".into(), prepend(&[0x00, 0x20], cut)));
    seeds.push((
        "limit_below_packet".into(),
        prepend(&[0x0c, 0x00], all_examples()),
    ));
    seeds
}

fn framing_seeds() -> Vec<(String, Vec<u8>)> {
    let examples = all_examples();
    let with_error = {
        let mut s = wire(&Packet::Ping { nonce: 1 });
        s.extend(malformed_examples()[6].1.clone());
        s.extend(wire(&Packet::Ping { nonce: 2 }));
        s
    };
    let inputs = [
        ("whole", 0xffff, vec![], examples.clone()),
        ("byte_by_byte", 0xffff, vec![1; 120], examples.clone()),
        (
            "ragged",
            0xffff,
            vec![3, 0, 1, 13, 2, 2, 40, 0, 5],
            examples.clone(),
        ),
        ("error_midway", 0x2000, vec![2, 11, 3, 9], with_error),
        (
            "too_large_header",
            0x0100,
            vec![1, 1, 1],
            prepend(&[0x01, 0x01, 0x03, 0x00], vec![0; 8]),
        ),
    ];
    inputs
        .into_iter()
        .map(|(name, max_packet, chunk_lens, stream)| {
            let input = FramingInput {
                max_packet,
                chunk_lens,
                stream: &stream,
            };
            (name.to_owned(), input.encode(Vec::new()))
        })
        .collect()
}

fn session_scenarios() -> Vec<(&'static str, SessionInput<'static>)> {
    use crate::session::Malformed as Bad;
    use Op::*;
    let login = |conn, name| Login {
        conn,
        name: Name::Known(name),
        password_len: 2,
    };
    let raw_login: &'static [u8] = b"\x0d\x00\x01\x00\x05alice\x02pw";
    vec![
        (
            "login_ping",
            SessionInput {
                connections: 0,
                ops: vec![login(0, 0), Ping { conn: 0, nonce: 42 }],
            },
        ),
        (
            "chat",
            SessionInput {
                connections: 1,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    Broadcast {
                        conn: 0,
                        text: Text::Hi,
                    },
                    Whisper {
                        conn: 1,
                        to: Name::Shouted(0),
                        text: Text::Unicode,
                    },
                    Whisper {
                        conn: 0,
                        to: Name::Known(0),
                        text: Text::Longest,
                    },
                    Broadcast {
                        conn: 1,
                        text: Text::Longest,
                    },
                ],
            },
        ),
        (
            "names",
            SessionInput {
                connections: 2,
                ops: vec![
                    login(0, 1),
                    Login {
                        conn: 1,
                        name: Name::Shouted(1),
                        password_len: 0,
                    },
                    Login {
                        conn: 1,
                        name: Name::Invalid(2),
                        password_len: 255,
                    },
                    login(1, 3),
                    login(1, 2),
                    Login {
                        conn: 2,
                        name: Name::Raw(b"Dave_1"),
                        password_len: 1,
                    },
                    Whisper {
                        conn: 2,
                        to: Name::Known(2),
                        text: Text::Hi,
                    },
                ],
            },
        ),
        (
            "refusals",
            SessionInput {
                connections: 1,
                ops: vec![
                    Broadcast {
                        conn: 0,
                        text: Text::Hi,
                    },
                    Whisper {
                        conn: 0,
                        to: Name::Known(1),
                        text: Text::Hi,
                    },
                    login(0, 0),
                    Broadcast {
                        conn: 0,
                        text: Text::Empty,
                    },
                    Broadcast {
                        conn: 0,
                        text: Text::TooLong,
                    },
                    Broadcast {
                        conn: 0,
                        text: Text::NotUtf8,
                    },
                    Broadcast {
                        conn: 0,
                        text: Text::Control,
                    },
                    Whisper {
                        conn: 0,
                        to: Name::Known(0),
                        text: Text::Multiline,
                    },
                    Whisper {
                        conn: 0,
                        to: Name::Invalid(0),
                        text: Text::Hi,
                    },
                    Whisper {
                        conn: 0,
                        to: Name::Known(2),
                        text: Text::Hi,
                    },
                ],
            },
        ),
        (
            "pipelined",
            SessionInput {
                connections: 0,
                ops: (0..12)
                    .map(|nonce| Ping { conn: 0, nonce })
                    .chain([login(0, 0), login(0, 1)])
                    .collect(),
            },
        ),
        (
            "malformed_after_requests",
            SessionInput {
                connections: 1,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    Ping { conn: 0, nonce: 1 },
                    Broadcast {
                        conn: 0,
                        text: Text::Hi,
                    },
                    Malformed {
                        conn: 0,
                        kind: Bad::Trailing,
                    },
                    login(0, 0),
                    Whisper {
                        conn: 1,
                        to: Name::Known(0),
                        text: Text::Hi,
                    },
                ],
            },
        ),
        (
            "every_malformed",
            SessionInput {
                connections: 2,
                ops: vec![
                    Malformed {
                        conn: 0,
                        kind: Bad::TooShort(2),
                    },
                    Malformed {
                        conn: 1,
                        kind: Bad::TooLarge,
                    },
                    Malformed {
                        conn: 2,
                        kind: Bad::UnknownType(0x0103),
                    },
                    Malformed {
                        conn: 0,
                        kind: Bad::ServerOnly(3),
                    },
                    Malformed {
                        conn: 1,
                        kind: Bad::Truncated,
                    },
                    Malformed {
                        conn: 2,
                        kind: Bad::ServerOnly(6),
                    },
                    Broadcast {
                        conn: 0,
                        text: Text::Oversize,
                    },
                ],
            },
        ),
        (
            "partial_header",
            SessionInput {
                connections: 0,
                ops: vec![
                    Malformed {
                        conn: 0,
                        kind: Bad::PartialHeader(1),
                    },
                    Raw {
                        conn: 0,
                        bytes: &[0x00, 0x07, 0x00, 1, 2, 3, 4, 5, 6, 7, 8],
                    },
                    Malformed {
                        conn: 0,
                        kind: Bad::PartialHeader(0),
                    },
                    login(0, 0),
                ],
            },
        ),
        (
            "raw_login",
            SessionInput {
                connections: 1,
                ops: vec![
                    Raw {
                        conn: 0,
                        bytes: raw_login,
                    },
                    Whisper {
                        conn: 1,
                        to: Name::Known(0),
                        text: Text::Raw(b"raw"),
                    },
                    login(1, 0),
                ],
            },
        ),
        (
            "logout",
            SessionInput {
                connections: 1,
                ops: vec![
                    Logout { conn: 0 },
                    login(0, 0),
                    login(1, 1),
                    Whisper {
                        conn: 1,
                        to: Name::Known(0),
                        text: Text::Hi,
                    },
                    Logout { conn: 0 },
                    Whisper {
                        conn: 1,
                        to: Name::Known(0),
                        text: Text::Hi,
                    },
                    login(0, 0),
                ],
            },
        ),
        (
            "accounts_history_resume",
            SessionInput {
                connections: 1,
                ops: vec![
                    Account {
                        conn: 0,
                        request: AccountOp::SessionToken,
                    },
                    Account {
                        conn: 0,
                        request: AccountOp::Resume {
                            name: Name::Known(0),
                            token_len: 32,
                            last_message_id: 0,
                        },
                    },
                    Account {
                        conn: 0,
                        request: AccountOp::Register {
                            name: Name::Known(0),
                            password_len: 12,
                        },
                    },
                    login(0, 0),
                    Account {
                        conn: 0,
                        request: AccountOp::SessionToken,
                    },
                    Account {
                        conn: 0,
                        request: AccountOp::History {
                            channel: 1,
                            peer: Name::Known(1),
                            before_id: 0,
                            limit: 50,
                        },
                    },
                    Account {
                        conn: 0,
                        request: AccountOp::ChangePassword {
                            old_len: 2,
                            new_len: 12,
                        },
                    },
                    Account {
                        conn: 1,
                        request: AccountOp::Resume {
                            name: Name::Known(0),
                            token_len: 32,
                            last_message_id: 7,
                        },
                    },
                ],
            },
        ),
        (
            "whisper_with_several_refusals",
            SessionInput {
                connections: 1,
                ops: vec![
                    login(0, 0),
                    Whisper {
                        conn: 0,
                        to: Name::Known(1),
                        text: Text::Empty,
                    },
                    Whisper {
                        conn: 1,
                        to: Name::Invalid(3),
                        text: Text::Control,
                    },
                ],
            },
        ),
        (
            "reconnect_and_abort",
            SessionInput {
                connections: 1,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    Broadcast {
                        conn: 1,
                        text: Text::Hi,
                    },
                    Reconnect { conn: 0 },
                    login(0, 0),
                    Abort { conn: 1 },
                    login(1, 1),
                    Broadcast {
                        conn: 0,
                        text: Text::Hi,
                    },
                    Abort { conn: 0 },
                ],
            },
        ),
    ]
    .into_iter()
    .chain(room_scenarios())
    .collect()
}

/// Protocol 1.3: rooms, presence, and the operators' requests nobody may make here.
fn room_scenarios() -> Vec<(&'static str, SessionInput<'static>)> {
    use Op::*;
    let login = |conn, name| Login {
        conn,
        name: Name::Known(name),
        password_len: 2,
    };
    let room = |conn, request| Room { conn, request };
    let presence = |conn, request| Presence { conn, request };
    let create = |conn, which, flags, password| Room {
        conn,
        request: RoomOp::Create {
            room: RoomName::Known(which),
            flags,
            password,
            topic: Topic::Short,
        },
    };
    let join = |conn, which, password| Room {
        conn,
        request: RoomOp::Join {
            room: RoomName::Known(which),
            password,
        },
    };
    let chat = |conn, which, text| Room {
        conn,
        request: RoomOp::Chat {
            room: RoomName::Known(which),
            text,
        },
    };
    let moderate = |conn, which, action, user| Room {
        conn,
        request: RoomOp::Moderate {
            room: RoomName::Known(which),
            action,
            user: Name::Known(user),
            for_an_hour: false,
            text: Topic::Short,
        },
    };
    let members = |conn, which| Room {
        conn,
        request: RoomOp::Members {
            room: RoomName::Known(which),
            after: Cursor::Start,
            limit: 10,
        },
    };
    vec![
        (
            "room_chat",
            SessionInput {
                connections: 2,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    login(2, 2),
                    create(0, 0, 0, Secret::None),
                    join(1, 0, Secret::None),
                    chat(0, 0, Text::Hi),
                    chat(2, 0, Text::Hi),
                    room(
                        1,
                        RoomOp::Chat {
                            room: RoomName::Shouted(0),
                            text: Text::Unicode,
                        },
                    ),
                    room(
                        2,
                        RoomOp::List {
                            after: Cursor::Start,
                            limit: 10,
                        },
                    ),
                    members(2, 0),
                    room(
                        1,
                        RoomOp::Leave {
                            room: RoomName::Known(0),
                        },
                    ),
                    chat(0, 0, Text::Multiline),
                    room(
                        0,
                        RoomOp::Leave {
                            room: RoomName::Shouted(0),
                        },
                    ),
                    join(2, 0, Secret::None),
                    create(2, 0, 0, Secret::None),
                ],
            },
        ),
        (
            "room_password_invite",
            SessionInput {
                connections: 2,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    login(2, 2),
                    create(0, 1, 2, Secret::Right),
                    join(1, 1, Secret::None),
                    moderate(0, 1, 5, 1),
                    join(1, 1, Secret::Wrong),
                    members(2, 1),
                    create(0, 2, 0, Secret::Right),
                    join(2, 2, Secret::Wrong),
                    join(2, 2, Secret::Right),
                    chat(2, 2, Text::Hi),
                    members(1, 2),
                ],
            },
        ),
        (
            "room_moderation",
            SessionInput {
                connections: 2,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    login(2, 2),
                    create(0, 0, 0, Secret::None),
                    join(1, 0, Secret::None),
                    join(2, 0, Secret::None),
                    moderate(0, 0, 3, 1),
                    chat(1, 0, Text::Hi),
                    moderate(1, 0, 1, 2),
                    moderate(0, 0, 6, 1),
                    moderate(1, 0, 1, 2),
                    chat(2, 0, Text::Hi),
                    moderate(1, 0, 1, 0),
                    moderate(0, 0, 2, 0),
                    moderate(0, 0, 4, 1),
                    chat(1, 0, Text::Hi),
                    moderate(0, 0, 7, 1),
                    moderate(0, 0, 0, 1),
                    moderate(0, 0, 1, 1),
                    members(0, 0),
                ],
            },
        ),
        (
            "room_limits",
            SessionInput {
                connections: 3,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    login(2, 2),
                    login(3, 3),
                    create(0, 0, 0, Secret::None),
                    create(0, 1, 0, Secret::None),
                    create(0, 2, 0, Secret::None),
                    create(1, 2, 1, Secret::None),
                    create(1, 2, 4, Secret::Raw(&[0xff])),
                    create(1, 2, 0, Secret::None),
                    create(2, 3, 0, Secret::None),
                    join(1, 0, Secret::None),
                    join(2, 0, Secret::None),
                    join(3, 0, Secret::None),
                    join(1, 1, Secret::None),
                    room(
                        3,
                        RoomOp::Chat {
                            room: RoomName::Invalid(0),
                            text: Text::Hi,
                        },
                    ),
                    chat(0, 0, Text::Longest),
                    room(
                        3,
                        RoomOp::List {
                            after: Cursor::Room(0),
                            limit: 1,
                        },
                    ),
                ],
            },
        ),
        (
            "presence",
            SessionInput {
                connections: 1,
                ops: vec![
                    login(0, 0),
                    presence(
                        0,
                        PresenceOp::Watch {
                            watch: 1,
                            user: Name::Known(1),
                        },
                    ),
                    login(1, 1),
                    presence(
                        1,
                        PresenceOp::SetStatus {
                            status: 1,
                            text: Topic::Short,
                        },
                    ),
                    presence(
                        0,
                        PresenceOp::List {
                            after: Cursor::Start,
                            limit: 100,
                        },
                    ),
                    presence(
                        1,
                        PresenceOp::SetStatus {
                            status: 0,
                            text: Topic::Short,
                        },
                    ),
                    presence(
                        0,
                        PresenceOp::Watch {
                            watch: 1,
                            user: Name::Invalid(1),
                        },
                    ),
                    presence(
                        0,
                        PresenceOp::Watch {
                            watch: 1,
                            user: Name::Known(0),
                        },
                    ),
                    presence(
                        0,
                        PresenceOp::Watch {
                            watch: 1,
                            user: Name::Known(2),
                        },
                    ),
                    Reconnect { conn: 1 },
                    presence(
                        0,
                        PresenceOp::Watch {
                            watch: 0,
                            user: Name::Shouted(1),
                        },
                    ),
                    login(1, 1),
                ],
            },
        ),
        (
            "room_departures",
            SessionInput {
                connections: 3,
                ops: vec![
                    login(0, 0),
                    login(1, 1),
                    login(2, 2),
                    login(3, 3),
                    create(0, 0, 0, Secret::None),
                    join(1, 0, Secret::None),
                    join(2, 0, Secret::None),
                    presence(
                        3,
                        PresenceOp::Watch {
                            watch: 1,
                            user: Name::Known(1),
                        },
                    ),
                    chat(1, 0, Text::Hi),
                    Abort { conn: 1 },
                    chat(2, 0, Text::Hi),
                    Logout { conn: 2 },
                    Malformed {
                        conn: 0,
                        kind: crate::session::Malformed::Trailing,
                    },
                    room(
                        3,
                        RoomOp::List {
                            after: Cursor::Start,
                            limit: 5,
                        },
                    ),
                ],
            },
        ),
        (
            "operators",
            SessionInput {
                connections: 0,
                ops: vec![
                    Operator {
                        conn: 0,
                        notice: true,
                        action: 0,
                        target: Name::Known(1),
                        text: Text::Hi,
                    },
                    login(0, 0),
                    Operator {
                        conn: 0,
                        notice: false,
                        action: 1,
                        target: Name::Known(0),
                        text: Text::Hi,
                    },
                    Operator {
                        conn: 0,
                        notice: true,
                        action: 0,
                        target: Name::Known(0),
                        text: Text::Hi,
                    },
                ],
            },
        ),
    ]
}

fn corpus_dir(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

#[test]
fn seeds_parse_back() {
    for (name, bytes) in framing_seeds() {
        let parsed = FramingInput::arbitrary_take_rest(Unstructured::new(&bytes))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(parsed.encode(Vec::new()), bytes, "{name}");
    }
    for (name, input) in session_scenarios() {
        let bytes = input.encode(Vec::new());
        let parsed = SessionInput::arbitrary_take_rest(Unstructured::new(&bytes))
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(parsed, input, "{name}");
    }
}

#[test]
fn byte_slice_lengths_round_trip_at_every_width() {
    let rest = [7u8; 300];
    for (len, tail) in [
        (0, 0),
        (1, 0),
        (0, 3),
        (200, 54),
        (255, 0),
        (256, 0),
        (10, 300),
    ] {
        let blob = vec![9u8; len];
        let tail_bytes = 42u16.encode(rest[..tail].to_vec());
        let bytes = blob.as_slice().encode(tail_bytes.clone());
        let mut u = Unstructured::new(&bytes);
        let got = <&[u8]>::arbitrary(&mut u).expect("parses");
        assert_eq!(got, &blob[..], "len {len} tail {tail}");
        assert_eq!(u.take_rest(), &tail_bytes[..], "len {len} tail {tail}");
    }
}

/// Every committed corpus file still passes its target's checks.
#[test]
fn committed_corpus_passes() {
    for (target, check) in [
        ("decode", check_decode_bytes as fn(&[u8])),
        ("framing", check_framing_bytes),
        ("session", check_session_bytes),
    ] {
        let dir = corpus_dir(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
            .map(|entry| entry.expect("dir entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{target}: empty corpus");
        for file in files {
            eprintln!("{target}: {}", file.display());
            check(&std::fs::read(&file).expect("read corpus file"));
        }
    }
}

fn check_decode_bytes(data: &[u8]) {
    crate::codec::check_decode(data);
}

fn check_framing_bytes(data: &[u8]) {
    if let Ok(input) = FramingInput::arbitrary_take_rest(Unstructured::new(data)) {
        crate::codec::check_framing(&input);
    }
}

fn check_session_bytes(data: &[u8]) {
    if let Ok(input) = SessionInput::arbitrary_take_rest(Unstructured::new(data)) {
        crate::session::check_session(&input);
    }
}

#[test]
#[ignore = "rewrites corpus/*/seed-*; run by hand after changing the seeds"]
fn write_seed_corpus() {
    let session = session_scenarios()
        .into_iter()
        .map(|(name, input)| (name.to_owned(), input.encode(Vec::new())))
        .collect();
    for (target, seeds) in [
        ("decode", decode_seeds()),
        ("framing", framing_seeds()),
        ("session", session),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        for entry in std::fs::read_dir(&dir).expect("read corpus dir") {
            let path = entry.expect("dir entry").path();
            let is_seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            if is_seed {
                std::fs::remove_file(&path).expect("remove old seed");
            }
        }
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        }
    }
}
