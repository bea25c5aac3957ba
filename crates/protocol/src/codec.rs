//! Encoding packets and framing them out of a byte stream.
//!
//! A packet is a 4-byte header, `size u16` (the whole packet, header included) and `type u16`,
//! followed by the body; every integer is little-endian. [`decode`] is the only way bytes become
//! packets: it answers `Ok(None)` while a packet is still incomplete, which is not an error, and
//! `Err` only when the bytes can never become a valid packet.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::MAX_PACKET_LIMIT;
use crate::codes::{ErrorCode, ResultCode};
use crate::packet::{Packet, PacketType};
use crate::wire_str::WireStr;

/// Bytes in a packet header.
pub const HEADER_LEN: usize = 4;

/// Why bytes from a peer can never be a valid packet. The stream cannot be resynchronised after
/// one of these, so the connection must end (the server says why with `ERROR_NOTIFY`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The header's `size` is smaller than the header itself.
    #[error("packet size {size} is smaller than the {HEADER_LEN}-byte header")]
    TooShort {
        /// The declared size.
        size: usize,
    },
    /// The header's `size` is above the receiver's limit.
    #[error("packet size {size} exceeds the limit of {max} bytes")]
    TooLarge {
        /// The declared size.
        size: usize,
        /// The receiver's `max_packet`.
        max: usize,
    },
    /// The header's `type` is not a known packet type.
    #[error("unknown packet type {0:#06x}")]
    UnknownType(u16),
    /// The body ends before one of its fields does.
    #[error("{} body ends inside its `{field}` field", .packet.wire_name())]
    Truncated {
        /// The packet being decoded.
        packet: PacketType,
        /// The field that did not fit.
        field: &'static str,
    },
    /// The body has bytes left over after its last field.
    #[error("{} body has {extra} unexpected bytes after its last field", .packet.wire_name())]
    TrailingBytes {
        /// The packet being decoded.
        packet: PacketType,
        /// How many bytes were left.
        extra: usize,
    },
}

impl DecodeError {
    /// The `ERROR_NOTIFY` code that reports this error to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooShort { .. } => ErrorCode::PACKET_TOO_SHORT,
            Self::TooLarge { .. } => ErrorCode::PACKET_TOO_LARGE,
            Self::UnknownType(_) => ErrorCode::UNKNOWN_PACKET_TYPE,
            Self::Truncated { .. } | Self::TrailingBytes { .. } => ErrorCode::MALFORMED_BODY,
        }
    }
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A string is longer than its length prefix can say.
    #[error("`{field}` is {len} bytes, more than its length prefix allows ({max})")]
    FieldTooLong {
        /// The field's name.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The most its prefix can say.
        max: usize,
    },
    /// The whole packet does not fit the `u16` size.
    #[error("packet would be {size} bytes, more than the protocol's {MAX_PACKET_LIMIT}")]
    PacketTooLarge {
        /// The size it would have had.
        size: usize,
    },
}

/// A packet header, read before its body has arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whole packet size, header included.
    pub size: usize,
    /// Its type.
    pub packet_type: PacketType,
}

/// Reads and validates the header at the front of `buf` without consuming anything.
///
/// `Ok(None)` when fewer than [`HEADER_LEN`] bytes are there. Everything that can be judged from
/// the header alone is judged here, so an oversized or unknown packet is refused as soon as its
/// first four bytes arrive instead of after the peer has sent (and we have buffered) its body.
pub fn peek_header(buf: &[u8], max_packet: usize) -> Result<Option<Header>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let size = usize::from(u16::from_le_bytes([header[0], header[1]]));
    let raw_type = u16::from_le_bytes([header[2], header[3]]);
    if size < HEADER_LEN {
        return Err(DecodeError::TooShort { size });
    }
    if size > max_packet {
        return Err(DecodeError::TooLarge {
            size,
            max: max_packet,
        });
    }
    let packet_type = PacketType::from_u16(raw_type).ok_or(DecodeError::UnknownType(raw_type))?;
    Ok(Some(Header { size, packet_type }))
}

/// Takes the next complete packet off the front of `buf`.
///
/// - `Ok(Some(packet))`: one packet was removed from `buf`; call again, more may be complete.
/// - `Ok(None)`: `buf` holds only part of a packet (or nothing); read more and call again. Nothing
///   is reserved on the strength of the declared size: the buffer grows only as bytes arrive.
/// - `Err(_)`: the stream is malformed and cannot be resynchronised; abandon `buf`.
///
/// Removing a packet is a cursor move, not a copy: string fields of the result share `buf`'s
/// allocation. `max_packet` is the largest accepted packet, header included.
pub fn decode(buf: &mut BytesMut, max_packet: usize) -> Result<Option<Packet>, DecodeError> {
    let Some(header) = peek_header(buf, max_packet)? else {
        return Ok(None);
    };
    if buf.len() < header.size {
        return Ok(None);
    }
    let mut frame = buf.split_to(header.size).freeze();
    frame.advance(HEADER_LEN);
    decode_body(header.packet_type, frame).map(Some)
}

fn decode_body(packet_type: PacketType, body: Bytes) -> Result<Packet, DecodeError> {
    let mut r = BodyReader {
        packet: packet_type,
        body,
    };
    let packet = match packet_type {
        PacketType::LoginReq => Packet::LoginReq {
            username: r.str8("username")?,
            password: r.str8("password")?,
        },
        PacketType::LoginRes => Packet::LoginRes {
            result: ResultCode(r.u8("result")?),
            session_id: r.u64("session_id")?,
        },
        PacketType::BroadcastReq => Packet::BroadcastReq {
            text: r.str16("text")?,
        },
        PacketType::BroadcastRes => Packet::BroadcastRes {
            result: ResultCode(r.u8("result")?),
            message_id: r.u64("message_id")?,
        },
        PacketType::WhisperReq => Packet::WhisperReq {
            to: r.str8("to")?,
            text: r.str16("text")?,
        },
        PacketType::WhisperRes => Packet::WhisperRes {
            result: ResultCode(r.u8("result")?),
            message_id: r.u64("message_id")?,
        },
        PacketType::Ping => Packet::Ping {
            nonce: r.u64("nonce")?,
        },
        PacketType::Pong => Packet::Pong {
            nonce: r.u64("nonce")?,
        },
        PacketType::BroadcastNotify => Packet::BroadcastNotify {
            message_id: r.u64("message_id")?,
            sent_at_ms: r.u64("sent_at_ms")?,
            from: r.str8("from")?,
            text: r.str16("text")?,
        },
        PacketType::WhisperNotify => Packet::WhisperNotify {
            message_id: r.u64("message_id")?,
            sent_at_ms: r.u64("sent_at_ms")?,
            from: r.str8("from")?,
            text: r.str16("text")?,
        },
        PacketType::ErrorNotify => Packet::ErrorNotify {
            code: ErrorCode(r.u16("code")?),
            reason: r.str8("reason")?,
        },
        PacketType::RegisterReq => Packet::RegisterReq {
            username: r.str8("username")?,
            password: r.str8("password")?,
        },
        PacketType::RegisterRes => Packet::RegisterRes {
            result: ResultCode(r.u8("result")?),
        },
        PacketType::ChangePasswordReq => Packet::ChangePasswordReq {
            old_password: r.str8("old_password")?,
            new_password: r.str8("new_password")?,
        },
        PacketType::ChangePasswordRes => Packet::ChangePasswordRes {
            result: ResultCode(r.u8("result")?),
        },
        PacketType::HistoryReq => Packet::HistoryReq {
            channel: r.u8("channel")?,
            peer: r.str8("peer")?,
            before_id: r.u64("before_id")?,
            limit: r.u8("limit")?,
        },
        PacketType::HistoryRes => Packet::HistoryRes {
            result: ResultCode(r.u8("result")?),
            count: r.u16("count")?,
        },
        PacketType::HistoryItem => Packet::HistoryItem {
            message_id: r.u64("message_id")?,
            sent_at_ms: r.u64("sent_at_ms")?,
            kind: r.u8("kind")?,
            from: r.str8("from")?,
            to: r.str8("to")?,
            text: r.str16("text")?,
        },
        PacketType::SessionTokenReq => Packet::SessionTokenReq,
        PacketType::SessionTokenRes => Packet::SessionTokenRes {
            result: ResultCode(r.u8("result")?),
            token: r.str8("token")?,
            grace_ms: r.u32("grace_ms")?,
        },
        PacketType::ResumeReq => Packet::ResumeReq {
            username: r.str8("username")?,
            token: r.str8("token")?,
            last_message_id: r.u64("last_message_id")?,
        },
        PacketType::ResumeRes => Packet::ResumeRes {
            result: ResultCode(r.u8("result")?),
            session_id: r.u64("session_id")?,
            token: r.str8("token")?,
            replayed: r.u32("replayed")?,
        },
        PacketType::LogoutReq => Packet::LogoutReq,
        PacketType::LogoutRes => Packet::LogoutRes {
            result: ResultCode(r.u8("result")?),
        },
        PacketType::CreateRoomReq => Packet::CreateRoomReq {
            room: r.str8("room")?,
            flags: r.u8("flags")?,
            password: r.str8("password")?,
            topic: r.str16("topic")?,
        },
        PacketType::CreateRoomRes => Packet::CreateRoomRes {
            result: ResultCode(r.u8("result")?),
            room: r.str8("room")?,
        },
        PacketType::JoinRoomReq => Packet::JoinRoomReq {
            room: r.str8("room")?,
            password: r.str8("password")?,
        },
        PacketType::JoinRoomRes => Packet::JoinRoomRes {
            result: ResultCode(r.u8("result")?),
            room: r.str8("room")?,
            flags: r.u8("flags")?,
            members: r.u32("members")?,
            topic: r.str16("topic")?,
        },
        PacketType::LeaveRoomReq => Packet::LeaveRoomReq {
            room: r.str8("room")?,
        },
        PacketType::LeaveRoomRes => Packet::LeaveRoomRes {
            result: ResultCode(r.u8("result")?),
            room: r.str8("room")?,
        },
        PacketType::ListRoomsReq => Packet::ListRoomsReq {
            after: r.str8("after")?,
            limit: r.u8("limit")?,
        },
        PacketType::ListRoomsRes => Packet::ListRoomsRes {
            result: ResultCode(r.u8("result")?),
            count: r.u16("count")?,
        },
        PacketType::RoomMembersReq => Packet::RoomMembersReq {
            room: r.str8("room")?,
            after: r.str8("after")?,
            limit: r.u8("limit")?,
        },
        PacketType::RoomMembersRes => Packet::RoomMembersRes {
            result: ResultCode(r.u8("result")?),
            count: r.u16("count")?,
        },
        PacketType::RoomChatReq => Packet::RoomChatReq {
            room: r.str8("room")?,
            text: r.str16("text")?,
        },
        PacketType::RoomChatRes => Packet::RoomChatRes {
            result: ResultCode(r.u8("result")?),
            message_id: r.u64("message_id")?,
        },
        PacketType::RoomModerateReq => Packet::RoomModerateReq {
            room: r.str8("room")?,
            action: r.u8("action")?,
            user: r.str8("user")?,
            duration_s: r.u32("duration_s")?,
            text: r.str16("text")?,
        },
        PacketType::RoomModerateRes => Packet::RoomModerateRes {
            result: ResultCode(r.u8("result")?),
        },
        PacketType::RoomItem => Packet::RoomItem {
            room: r.str8("room")?,
            flags: r.u8("flags")?,
            members: r.u32("members")?,
            topic: r.str16("topic")?,
        },
        PacketType::RoomChatNotify => Packet::RoomChatNotify {
            message_id: r.u64("message_id")?,
            sent_at_ms: r.u64("sent_at_ms")?,
            room: r.str8("room")?,
            from: r.str8("from")?,
            text: r.str16("text")?,
        },
        PacketType::RoomEventNotify => Packet::RoomEventNotify {
            event_id: r.u64("event_id")?,
            sent_at_ms: r.u64("sent_at_ms")?,
            room: r.str8("room")?,
            kind: r.u8("kind")?,
            user: r.str8("user")?,
            actor: r.str8("actor")?,
            text: r.str16("text")?,
        },
        PacketType::UserListReq => Packet::UserListReq {
            after: r.str8("after")?,
            limit: r.u8("limit")?,
        },
        PacketType::UserListRes => Packet::UserListRes {
            result: ResultCode(r.u8("result")?),
            count: r.u16("count")?,
        },
        PacketType::SetStatusReq => Packet::SetStatusReq {
            status: r.u8("status")?,
            text: r.str8("text")?,
        },
        PacketType::SetStatusRes => Packet::SetStatusRes {
            result: ResultCode(r.u8("result")?),
        },
        PacketType::WatchReq => Packet::WatchReq {
            watch: r.u8("watch")?,
            user: r.str8("user")?,
        },
        PacketType::WatchRes => Packet::WatchRes {
            result: ResultCode(r.u8("result")?),
            user: r.str8("user")?,
            status: r.u8("status")?,
            text: r.str8("text")?,
        },
        PacketType::UserItem => Packet::UserItem {
            user: r.str8("user")?,
            status: r.u8("status")?,
            role: r.u8("role")?,
            text: r.str8("text")?,
        },
        PacketType::PresenceNotify => Packet::PresenceNotify {
            user: r.str8("user")?,
            status: r.u8("status")?,
            text: r.str8("text")?,
        },
        PacketType::ModerateReq => Packet::ModerateReq {
            action: r.u8("action")?,
            target: r.str8("target")?,
            duration_s: r.u32("duration_s")?,
            reason: r.str16("reason")?,
        },
        PacketType::ModerateRes => Packet::ModerateRes {
            result: ResultCode(r.u8("result")?),
        },
        PacketType::SystemNoticeReq => Packet::SystemNoticeReq {
            text: r.str16("text")?,
        },
        PacketType::SystemNoticeRes => Packet::SystemNoticeRes {
            result: ResultCode(r.u8("result")?),
            message_id: r.u64("message_id")?,
        },
        PacketType::SystemNoticeNotify => Packet::SystemNoticeNotify {
            message_id: r.u64("message_id")?,
            sent_at_ms: r.u64("sent_at_ms")?,
            from: r.str8("from")?,
            text: r.str16("text")?,
        },
        PacketType::ModerationNotify => Packet::ModerationNotify {
            action: r.u8("action")?,
            actor: r.str8("actor")?,
            expires_at_ms: r.u64("expires_at_ms")?,
            reason: r.str16("reason")?,
        },
    };
    r.finish()?;
    Ok(packet)
}

/// Cursor over one packet body that names the field it failed on.
/// A packet body as [`BodyReader`] reads it: owned ([`Bytes`], whose string fields share its
/// allocation) or borrowed (`&[u8]`, to read a packet where it lies).
trait Body: Buf + Sized {
    /// The next `len` bytes (at most what remains), taken off the front.
    fn take_front(&mut self, len: usize) -> Self;
}

impl Body for Bytes {
    fn take_front(&mut self, len: usize) -> Self {
        self.split_to(len)
    }
}

impl Body for &[u8] {
    fn take_front(&mut self, len: usize) -> Self {
        let (front, rest) = self.split_at(len);
        *self = rest;
        front
    }
}

struct BodyReader<B> {
    packet: PacketType,
    body: B,
}

impl<B: Body> BodyReader<B> {
    fn need(&self, n: usize, field: &'static str) -> Result<(), DecodeError> {
        if self.body.remaining() < n {
            return Err(DecodeError::Truncated {
                packet: self.packet,
                field,
            });
        }
        Ok(())
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(1, field)?;
        Ok(self.body.get_u8())
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(2, field)?;
        Ok(self.body.get_u16_le())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(4, field)?;
        Ok(self.body.get_u32_le())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(8, field)?;
        Ok(self.body.get_u64_le())
    }

    fn raw(&mut self, len: usize, field: &'static str) -> Result<B, DecodeError> {
        self.need(len, field)?;
        Ok(self.body.take_front(len))
    }

    fn raw8(&mut self, field: &'static str) -> Result<B, DecodeError> {
        let len = usize::from(self.u8(field)?);
        self.raw(len, field)
    }

    fn raw16(&mut self, field: &'static str) -> Result<B, DecodeError> {
        let len = usize::from(self.u16(field)?);
        self.raw(len, field)
    }

    fn finish(self) -> Result<(), DecodeError> {
        if !self.body.has_remaining() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet: self.packet,
                extra: self.body.remaining(),
            })
        }
    }
}

impl BodyReader<Bytes> {
    fn str8(&mut self, field: &'static str) -> Result<WireStr, DecodeError> {
        self.raw8(field).map(WireStr::from)
    }

    fn str16(&mut self, field: &'static str) -> Result<WireStr, DecodeError> {
        self.raw16(field).map(WireStr::from)
    }
}

/// A chat notification (`BROADCAST_NOTIFY`, `WHISPER_NOTIFY` or `ROOM_CHAT_NOTIFY`) read where it
/// lies in the receive buffer, by [`peek_chat_notification`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatNotification<'a> {
    /// Which of the three notifications it is.
    pub packet_type: PacketType,
    /// The message's id.
    pub message_id: u64,
    /// When the server accepted it, Unix milliseconds.
    pub sent_at_ms: u64,
    /// The room's name; empty unless a `ROOM_CHAT_NOTIFY`.
    pub room: &'a [u8],
    /// The sender's name.
    pub from: &'a [u8],
    /// The text.
    pub text: &'a [u8],
    /// Bytes the packet takes, header included: advance the buffer by this much to consume it.
    pub size: usize,
}

impl<'a> ChatNotification<'a> {
    /// The same view of a decoded `packet`: what [`peek_chat_notification`] reads from its
    /// encoding. `None` for any other packet, or one too large to encode.
    pub fn of(packet: &'a Packet) -> Option<Self> {
        let (message_id, sent_at_ms, room, from, text) = match packet {
            Packet::BroadcastNotify {
                message_id,
                sent_at_ms,
                from,
                text,
            }
            | Packet::WhisperNotify {
                message_id,
                sent_at_ms,
                from,
                text,
            } => (*message_id, *sent_at_ms, &[][..], from, text),
            Packet::RoomChatNotify {
                message_id,
                sent_at_ms,
                room,
                from,
                text,
            } => (*message_id, *sent_at_ms, room.as_bytes(), from, text),
            _ => return None,
        };
        Some(Self {
            packet_type: packet.packet_type(),
            message_id,
            sent_at_ms,
            room,
            from: from.as_bytes(),
            text: text.as_bytes(),
            size: encoded_len(packet).ok()?,
        })
    }
}

/// Reads the next packet in `buf` in place if it is a complete chat notification, the packets a
/// busy client receives most; anything else is left to [`decode`].
///
/// - `Ok(Some(notification))`: nothing is taken off `buf`; the caller consumes
///   `notification.size` bytes once done with it.
/// - `Ok(None)`: the next packet is incomplete or of another type.
/// - `Err(_)`: exactly the error [`decode`] gives for the same bytes.
///
/// For a receiver this saves what [`decode`] costs per packet beyond reading the fields: taking
/// the frame off the buffer and sharing its allocation with each string field (reference
/// counts), then releasing them.
pub fn peek_chat_notification(
    buf: &[u8],
    max_packet: usize,
) -> Result<Option<ChatNotification<'_>>, DecodeError> {
    let Some(header) = peek_header(buf, max_packet)? else {
        return Ok(None);
    };
    if buf.len() < header.size {
        return Ok(None);
    }
    let mut r = BodyReader {
        packet: header.packet_type,
        body: &buf[HEADER_LEN..header.size],
    };
    let (message_id, sent_at_ms, room, from, text) = match header.packet_type {
        PacketType::BroadcastNotify | PacketType::WhisperNotify => (
            r.u64("message_id")?,
            r.u64("sent_at_ms")?,
            &[][..],
            r.raw8("from")?,
            r.raw16("text")?,
        ),
        PacketType::RoomChatNotify => (
            r.u64("message_id")?,
            r.u64("sent_at_ms")?,
            r.raw8("room")?,
            r.raw8("from")?,
            r.raw16("text")?,
        ),
        _ => return Ok(None),
    };
    r.finish()?;
    Ok(Some(ChatNotification {
        packet_type: header.packet_type,
        message_id,
        sent_at_ms,
        room,
        from,
        text,
        size: header.size,
    }))
}

/// Appends `packet`, header included, to `dst`.
///
/// On error `dst` is left unchanged.
pub fn encode(packet: &Packet, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let size = encoded_len(packet)?;
    if size > MAX_PACKET_LIMIT {
        return Err(EncodeError::PacketTooLarge { size });
    }
    dst.reserve(size);
    // The size fits a u16: checked just above.
    dst.put_u16_le(size as u16);
    dst.put_u16_le(packet.packet_type() as u16);
    match packet {
        Packet::LoginReq { username, password } => {
            put_str8(dst, username);
            put_str8(dst, password);
        }
        Packet::LoginRes { result, session_id } => {
            dst.put_u8(result.0);
            dst.put_u64_le(*session_id);
        }
        Packet::BroadcastReq { text } => put_str16(dst, text),
        Packet::BroadcastRes { result, message_id } | Packet::WhisperRes { result, message_id } => {
            dst.put_u8(result.0);
            dst.put_u64_le(*message_id);
        }
        Packet::WhisperReq { to, text } => {
            put_str8(dst, to);
            put_str16(dst, text);
        }
        Packet::Ping { nonce } | Packet::Pong { nonce } => dst.put_u64_le(*nonce),
        Packet::BroadcastNotify {
            message_id,
            sent_at_ms,
            from,
            text,
        }
        | Packet::WhisperNotify {
            message_id,
            sent_at_ms,
            from,
            text,
        } => {
            dst.put_u64_le(*message_id);
            dst.put_u64_le(*sent_at_ms);
            put_str8(dst, from);
            put_str16(dst, text);
        }
        Packet::ErrorNotify { code, reason } => {
            dst.put_u16_le(code.0);
            put_str8(dst, reason);
        }
        Packet::SessionTokenReq | Packet::LogoutReq => {}
        Packet::RegisterReq { username, password } => {
            put_str8(dst, username);
            put_str8(dst, password);
        }
        Packet::ChangePasswordReq {
            old_password,
            new_password,
        } => {
            put_str8(dst, old_password);
            put_str8(dst, new_password);
        }
        Packet::RegisterRes { result } | Packet::ChangePasswordRes { result } => {
            dst.put_u8(result.0)
        }
        Packet::HistoryReq {
            channel,
            peer,
            before_id,
            limit,
        } => {
            dst.put_u8(*channel);
            put_str8(dst, peer);
            dst.put_u64_le(*before_id);
            dst.put_u8(*limit);
        }
        Packet::HistoryRes { result, count } => {
            dst.put_u8(result.0);
            dst.put_u16_le(*count);
        }
        Packet::HistoryItem {
            message_id,
            sent_at_ms,
            kind,
            from,
            to,
            text,
        } => {
            dst.put_u64_le(*message_id);
            dst.put_u64_le(*sent_at_ms);
            dst.put_u8(*kind);
            put_str8(dst, from);
            put_str8(dst, to);
            put_str16(dst, text);
        }
        Packet::SessionTokenRes {
            result,
            token,
            grace_ms,
        } => {
            dst.put_u8(result.0);
            put_str8(dst, token);
            dst.put_u32_le(*grace_ms);
        }
        Packet::ResumeReq {
            username,
            token,
            last_message_id,
        } => {
            put_str8(dst, username);
            put_str8(dst, token);
            dst.put_u64_le(*last_message_id);
        }
        Packet::ResumeRes {
            result,
            session_id,
            token,
            replayed,
        } => {
            dst.put_u8(result.0);
            dst.put_u64_le(*session_id);
            put_str8(dst, token);
            dst.put_u32_le(*replayed);
        }
        Packet::LogoutRes { result } => dst.put_u8(result.0),
        Packet::CreateRoomReq {
            room,
            flags,
            password,
            topic,
        } => {
            put_str8(dst, room);
            dst.put_u8(*flags);
            put_str8(dst, password);
            put_str16(dst, topic);
        }
        Packet::CreateRoomRes { result, room } => {
            dst.put_u8(result.0);
            put_str8(dst, room);
        }
        Packet::JoinRoomReq { room, password } => {
            put_str8(dst, room);
            put_str8(dst, password);
        }
        Packet::JoinRoomRes {
            result,
            room,
            flags,
            members,
            topic,
        } => {
            dst.put_u8(result.0);
            put_str8(dst, room);
            dst.put_u8(*flags);
            dst.put_u32_le(*members);
            put_str16(dst, topic);
        }
        Packet::LeaveRoomReq { room } => {
            put_str8(dst, room);
        }
        Packet::LeaveRoomRes { result, room } => {
            dst.put_u8(result.0);
            put_str8(dst, room);
        }
        Packet::ListRoomsReq { after, limit } => {
            put_str8(dst, after);
            dst.put_u8(*limit);
        }
        Packet::ListRoomsRes { result, count } => {
            dst.put_u8(result.0);
            dst.put_u16_le(*count);
        }
        Packet::RoomMembersReq { room, after, limit } => {
            put_str8(dst, room);
            put_str8(dst, after);
            dst.put_u8(*limit);
        }
        Packet::RoomMembersRes { result, count } => {
            dst.put_u8(result.0);
            dst.put_u16_le(*count);
        }
        Packet::RoomChatReq { room, text } => {
            put_str8(dst, room);
            put_str16(dst, text);
        }
        Packet::RoomChatRes { result, message_id } => {
            dst.put_u8(result.0);
            dst.put_u64_le(*message_id);
        }
        Packet::RoomModerateReq {
            room,
            action,
            user,
            duration_s,
            text,
        } => {
            put_str8(dst, room);
            dst.put_u8(*action);
            put_str8(dst, user);
            dst.put_u32_le(*duration_s);
            put_str16(dst, text);
        }
        Packet::RoomModerateRes { result } => {
            dst.put_u8(result.0);
        }
        Packet::RoomItem {
            room,
            flags,
            members,
            topic,
        } => {
            put_str8(dst, room);
            dst.put_u8(*flags);
            dst.put_u32_le(*members);
            put_str16(dst, topic);
        }
        Packet::RoomChatNotify {
            message_id,
            sent_at_ms,
            room,
            from,
            text,
        } => {
            dst.put_u64_le(*message_id);
            dst.put_u64_le(*sent_at_ms);
            put_str8(dst, room);
            put_str8(dst, from);
            put_str16(dst, text);
        }
        Packet::RoomEventNotify {
            event_id,
            sent_at_ms,
            room,
            kind,
            user,
            actor,
            text,
        } => {
            dst.put_u64_le(*event_id);
            dst.put_u64_le(*sent_at_ms);
            put_str8(dst, room);
            dst.put_u8(*kind);
            put_str8(dst, user);
            put_str8(dst, actor);
            put_str16(dst, text);
        }
        Packet::UserListReq { after, limit } => {
            put_str8(dst, after);
            dst.put_u8(*limit);
        }
        Packet::UserListRes { result, count } => {
            dst.put_u8(result.0);
            dst.put_u16_le(*count);
        }
        Packet::SetStatusReq { status, text } => {
            dst.put_u8(*status);
            put_str8(dst, text);
        }
        Packet::SetStatusRes { result } => {
            dst.put_u8(result.0);
        }
        Packet::WatchReq { watch, user } => {
            dst.put_u8(*watch);
            put_str8(dst, user);
        }
        Packet::WatchRes {
            result,
            user,
            status,
            text,
        } => {
            dst.put_u8(result.0);
            put_str8(dst, user);
            dst.put_u8(*status);
            put_str8(dst, text);
        }
        Packet::UserItem {
            user,
            status,
            role,
            text,
        } => {
            put_str8(dst, user);
            dst.put_u8(*status);
            dst.put_u8(*role);
            put_str8(dst, text);
        }
        Packet::PresenceNotify { user, status, text } => {
            put_str8(dst, user);
            dst.put_u8(*status);
            put_str8(dst, text);
        }
        Packet::ModerateReq {
            action,
            target,
            duration_s,
            reason,
        } => {
            dst.put_u8(*action);
            put_str8(dst, target);
            dst.put_u32_le(*duration_s);
            put_str16(dst, reason);
        }
        Packet::ModerateRes { result } => {
            dst.put_u8(result.0);
        }
        Packet::SystemNoticeReq { text } => {
            put_str16(dst, text);
        }
        Packet::SystemNoticeRes { result, message_id } => {
            dst.put_u8(result.0);
            dst.put_u64_le(*message_id);
        }
        Packet::SystemNoticeNotify {
            message_id,
            sent_at_ms,
            from,
            text,
        } => {
            dst.put_u64_le(*message_id);
            dst.put_u64_le(*sent_at_ms);
            put_str8(dst, from);
            put_str16(dst, text);
        }
        Packet::ModerationNotify {
            action,
            actor,
            expires_at_ms,
            reason,
        } => {
            dst.put_u8(*action);
            put_str8(dst, actor);
            dst.put_u64_le(*expires_at_ms);
            put_str16(dst, reason);
        }
    }
    Ok(())
}

/// The number of bytes [`encode`] writes for `packet`, or why it cannot be encoded.
pub fn encoded_len(packet: &Packet) -> Result<usize, EncodeError> {
    let body = match packet {
        Packet::LoginReq { username, password } => {
            str8_len("username", username)? + str8_len("password", password)?
        }
        Packet::LoginRes { .. } | Packet::BroadcastRes { .. } | Packet::WhisperRes { .. } => 1 + 8,
        Packet::BroadcastReq { text } => str16_len("text", text)?,
        Packet::WhisperReq { to, text } => str8_len("to", to)? + str16_len("text", text)?,
        Packet::Ping { .. } | Packet::Pong { .. } => 8,
        Packet::BroadcastNotify { from, text, .. } | Packet::WhisperNotify { from, text, .. } => {
            8 + 8 + str8_len("from", from)? + str16_len("text", text)?
        }
        Packet::ErrorNotify { reason, .. } => 2 + str8_len("reason", reason)?,
        Packet::SessionTokenReq | Packet::LogoutReq => 0,
        Packet::RegisterReq { username, password } => {
            str8_len("username", username)? + str8_len("password", password)?
        }
        Packet::ChangePasswordReq {
            old_password,
            new_password,
        } => str8_len("old_password", old_password)? + str8_len("new_password", new_password)?,
        Packet::RegisterRes { .. } | Packet::ChangePasswordRes { .. } => 1,
        Packet::HistoryReq { peer, .. } => 1 + str8_len("peer", peer)? + 8 + 1,
        Packet::HistoryRes { .. } => 1 + 2,
        Packet::HistoryItem { from, to, text, .. } => {
            8 + 8 + 1 + str8_len("from", from)? + str8_len("to", to)? + str16_len("text", text)?
        }
        Packet::SessionTokenRes { token, .. } => 1 + str8_len("token", token)? + 4,
        Packet::ResumeReq {
            username, token, ..
        } => str8_len("username", username)? + str8_len("token", token)? + 8,
        Packet::ResumeRes { token, .. } => 1 + 8 + str8_len("token", token)? + 4,
        Packet::LogoutRes { .. } => 1,
        Packet::CreateRoomReq {
            room,
            password,
            topic,
            ..
        } => {
            1 + str8_len("room", room)?
                + str8_len("password", password)?
                + str16_len("topic", topic)?
        }
        Packet::CreateRoomRes { room, .. } => 1 + str8_len("room", room)?,
        Packet::JoinRoomReq { room, password, .. } => {
            str8_len("room", room)? + str8_len("password", password)?
        }
        Packet::JoinRoomRes { room, topic, .. } => {
            6 + str8_len("room", room)? + str16_len("topic", topic)?
        }
        Packet::LeaveRoomReq { room, .. } => str8_len("room", room)?,
        Packet::LeaveRoomRes { room, .. } => 1 + str8_len("room", room)?,
        Packet::ListRoomsReq { after, .. } => 1 + str8_len("after", after)?,
        Packet::ListRoomsRes { .. } => 3,
        Packet::RoomMembersReq { room, after, .. } => {
            1 + str8_len("room", room)? + str8_len("after", after)?
        }
        Packet::RoomMembersRes { .. } => 3,
        Packet::RoomChatReq { room, text, .. } => {
            str8_len("room", room)? + str16_len("text", text)?
        }
        Packet::RoomChatRes { .. } => 9,
        Packet::RoomModerateReq {
            room, user, text, ..
        } => 5 + str8_len("room", room)? + str8_len("user", user)? + str16_len("text", text)?,
        Packet::RoomModerateRes { .. } => 1,
        Packet::RoomItem { room, topic, .. } => {
            5 + str8_len("room", room)? + str16_len("topic", topic)?
        }
        Packet::RoomChatNotify {
            room, from, text, ..
        } => 16 + str8_len("room", room)? + str8_len("from", from)? + str16_len("text", text)?,
        Packet::RoomEventNotify {
            room,
            user,
            actor,
            text,
            ..
        } => {
            17 + str8_len("room", room)?
                + str8_len("user", user)?
                + str8_len("actor", actor)?
                + str16_len("text", text)?
        }
        Packet::UserListReq { after, .. } => 1 + str8_len("after", after)?,
        Packet::UserListRes { .. } => 3,
        Packet::SetStatusReq { text, .. } => 1 + str8_len("text", text)?,
        Packet::SetStatusRes { .. } => 1,
        Packet::WatchReq { user, .. } => 1 + str8_len("user", user)?,
        Packet::WatchRes { user, text, .. } => {
            2 + str8_len("user", user)? + str8_len("text", text)?
        }
        Packet::UserItem { user, text, .. } => {
            2 + str8_len("user", user)? + str8_len("text", text)?
        }
        Packet::PresenceNotify { user, text, .. } => {
            1 + str8_len("user", user)? + str8_len("text", text)?
        }
        Packet::ModerateReq { target, reason, .. } => {
            5 + str8_len("target", target)? + str16_len("reason", reason)?
        }
        Packet::ModerateRes { .. } => 1,
        Packet::SystemNoticeReq { text, .. } => str16_len("text", text)?,
        Packet::SystemNoticeRes { .. } => 9,
        Packet::SystemNoticeNotify { from, text, .. } => {
            16 + str8_len("from", from)? + str16_len("text", text)?
        }
        Packet::ModerationNotify { actor, reason, .. } => {
            9 + str8_len("actor", actor)? + str16_len("reason", reason)?
        }
    };
    Ok(HEADER_LEN + body)
}

fn str8_len(field: &'static str, s: &WireStr) -> Result<usize, EncodeError> {
    prefixed_len(field, s, usize::from(u8::MAX), 1)
}

fn str16_len(field: &'static str, s: &WireStr) -> Result<usize, EncodeError> {
    prefixed_len(field, s, usize::from(u16::MAX), 2)
}

fn prefixed_len(
    field: &'static str,
    s: &WireStr,
    max: usize,
    prefix: usize,
) -> Result<usize, EncodeError> {
    if s.len() > max {
        return Err(EncodeError::FieldTooLong {
            field,
            len: s.len(),
            max,
        });
    }
    Ok(prefix + s.len())
}

fn put_str8(dst: &mut BytesMut, s: &WireStr) {
    // Lengths were checked by `encoded_len` before anything was written.
    dst.put_u8(s.len() as u8);
    dst.put_slice(s.as_bytes());
}

fn put_str16(dst: &mut BytesMut, s: &WireStr) {
    dst.put_u16_le(s.len() as u16);
    dst.put_slice(s.as_bytes());
}

#[cfg(test)]
mod tests;
