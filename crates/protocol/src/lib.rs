//! The suda wire protocol, version 1, with no I/O.
//!
//! Everything that crosses the wire is defined here once and shared by the server, the client
//! library, the terminal client and the load generator, so the protocol cannot drift between them.
//! The crate never touches a socket, a clock or a runtime, which keeps it fuzzable and lets every
//! peer drive it from whatever I/O it likes.
//!
//! Modules:
//! - [`codes`]: the `u8` result codes of responses and the `u16` error codes of `ERROR_NOTIFY`.
//! - [`wire_str`]: [`WireStr`], a length-prefixed string as it came off the wire, UTF-8 or not.
//! - [`packet`]: [`Packet`], every packet type, and [`PacketType`], their numbers.
//! - [`codec`]: [`encode`](codec::encode) and [`decode`](codec::decode), the stream framing that
//!   tells "need more bytes" apart from "malformed", and the limits it enforces.
//!
//! The byte layout of every packet is specified in `docs/PROTOCOL.md` at the repository root.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod codec;
pub mod codes;
pub mod packet;
pub mod wire_str;

pub use codec::{
    ChatNotification, DecodeError, EncodeError, HEADER_LEN, decode, encode, peek_chat_notification,
    peek_header,
};
pub use codes::{ErrorCode, ResultCode};
pub use packet::{Direction, Packet, PacketType};
pub use wire_str::WireStr;

/// Largest packet size any suda peer may be configured to accept: the header's `size` is a `u16`.
pub const MAX_PACKET_LIMIT: usize = u16::MAX as usize;
/// Default largest packet, header included, that a peer accepts.
pub const DEFAULT_MAX_PACKET: usize = 8192;
/// Default largest chat text, in bytes of UTF-8.
pub const DEFAULT_MAX_TEXT: usize = 4096;
/// Longest username, in characters (all ASCII, so also in bytes).
pub const MAX_USERNAME_LEN: usize = 32;
