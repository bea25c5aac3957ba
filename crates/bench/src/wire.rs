//! The protocols the bench speaks, behind one trait so every scenario runs unchanged against
//! suda, Redis pub/sub and NATS.
//!
//! A [`Wire`] is a pure codec for one connection: it appends requests to an output buffer and
//! turns received bytes into [`Event`]s. Sockets, timing and counting stay in the engine, which
//! keeps each speaker small and lets its parser be tested by splitting input at every byte.

pub(crate) mod nats;
pub(crate) mod redis;
pub(crate) mod suda;

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::payload::Stamp;

/// Name of the channel or subject every fan-out subscriber listens on (Redis and NATS).
pub(crate) const FANOUT_CHANNEL: &str = "suda-bench.all";

/// The name of room `room` on every wire: a suda room, a Redis channel, a NATS subject. It is a
/// valid suda room name (at most 32 bytes of `A-Za-z0-9_-.`) for any room index the bench allows.
pub(crate) fn room_name(room: usize) -> String {
    format!("suda-bench.room.{room}")
}

/// Why a connection's byte stream cannot be understood any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// The peer sent bytes that break its protocol.
    #[error("malformed {protocol} input: {detail}")]
    Malformed {
        /// Which protocol.
        protocol: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The server refused to open the session (login refused, subscribe failed).
    #[error("{0}")]
    Refused(String),
}

impl WireError {
    pub(crate) fn malformed(protocol: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            protocol,
            detail: detail.into(),
        }
    }
}

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Role {
    /// Index of the simulated client this connection belongs to.
    pub(crate) client: usize,
    /// Which channel to receive on, `None` for a publish-only connection.
    pub(crate) listen: Option<Listen>,
}

/// The channel a receiving connection listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listen {
    /// Every broadcast.
    Fanout,
    /// Messages addressed to this client alone.
    Personal,
    /// Messages to one room, by index.
    Room {
        /// Which room.
        room: usize,
        /// Whether this connection brings the room into being (suda's `CREATE_ROOM_REQ`);
        /// the other members join only once every room's creator is in.
        creator: bool,
    },
}

/// Where one published message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// Every other client.
    All,
    /// One client, by index.
    Client(usize),
    /// The other members of one room, by index.
    Room(usize),
}

/// Something the server said, as far as the engine cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The session opened by [`Wire::open`] is ready (logged in, subscribed).
    Ready,
    /// This many published messages were accepted by the server.
    Acked(u32),
    /// This many published messages were refused; they will never be delivered.
    Rejected {
        /// How many.
        count: u32,
        /// Why, for the error tally.
        reason: String,
    },
    /// The account asked for by [`Wire::register`] exists now: `created` by this request, or
    /// already there (from an earlier run; the login that follows checks its password).
    Registered {
        /// Whether this request created it.
        created: bool,
    },
    /// A message arrived; `None` when its payload was not one of ours.
    Delivery(Option<Stamp>),
    /// The server reported an error not tied to one request, usually right before closing.
    ServerError(String),
    /// Anything else (server info, keep-alive answers).
    Ignored,
}

/// Settings every speaker of a run shares.
#[derive(Debug, Clone)]
pub(crate) struct WireParams {
    /// Each client's personal address on this wire (suda username, Redis channel, NATS subject),
    /// by client index, shared so a connection does not copy the whole list.
    pub(crate) addresses: Arc<[Bytes]>,
    /// Each room's name ([`room_name`]), by room index; empty without rooms.
    pub(crate) rooms: Arc<[Bytes]>,
    /// Messages a publisher may have unacknowledged at once.
    pub(crate) window: u32,
}

/// One connection's protocol codec.
pub(crate) trait Wire: Send + Sized + 'static {
    /// Short target name used in reports.
    const NAME: &'static str;
    /// Whether a publishing client needs a connection of its own next to its receiving one.
    const SEPARATE_PUBLISHER: bool;

    /// How the personal address of the client called `name` is spelled on this wire.
    fn personal_address(name: &str) -> String;

    /// A codec for one connection.
    fn new(params: WireParams) -> Self;

    /// Appends what opens the session for `role`; [`Event::Ready`] follows once it is open.
    fn open(&mut self, out: &mut BytesMut, role: Role);

    /// Whether the server has accounts with passwords, which [`Wire::register`] creates: only
    /// suda does. The `login` scenario needs them.
    const ACCOUNTS: bool = false;

    /// Appends what registers the account of `client`; [`Event::Registered`] follows. Refused
    /// on a wire without [`Wire::ACCOUNTS`].
    fn register(&mut self, _out: &mut BytesMut, _client: usize) -> Result<(), WireError> {
        Err(WireError::Refused(format!(
            "{} has no accounts to register",
            Self::NAME
        )))
    }

    /// Appends one published message.
    fn publish(&mut self, out: &mut BytesMut, dest: Dest, payload: &[u8]);

    /// Called after a run of [`publish`](Wire::publish) calls, before the bytes are written.
    fn end_batch(&mut self, _out: &mut BytesMut) {}

    /// Appends whatever keeps an otherwise silent connection from being timed out.
    fn keepalive(&mut self, _out: &mut BytesMut) {}

    /// Takes the next event off the front of `input`, `Ok(None)` when more bytes are needed.
    ///
    /// Anything the protocol obliges the client to answer on its own (a NATS `PING`) is
    /// appended to `replies`.
    fn decode(
        &mut self,
        input: &mut BytesMut,
        replies: &mut BytesMut,
    ) -> Result<Option<Event>, WireError>;
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers to check that a decoder gives the same events however its input is split.

    use bytes::BytesMut;

    use super::{Event, Wire, WireError};

    /// Every event decodable from `input` fed in one piece.
    pub(crate) fn decode_all<W: Wire>(
        wire: &mut W,
        input: &[u8],
    ) -> Result<(Vec<Event>, BytesMut), WireError> {
        decode_split(wire, input, input.len())
    }

    /// Every event decodable from `input` fed as two reads split at `at`, and the replies.
    pub(crate) fn decode_split<W: Wire>(
        wire: &mut W,
        input: &[u8],
        at: usize,
    ) -> Result<(Vec<Event>, BytesMut), WireError> {
        let mut buf = BytesMut::new();
        let mut replies = BytesMut::new();
        let mut events = Vec::new();
        for part in [&input[..at], &input[at..]] {
            buf.extend_from_slice(part);
            while let Some(event) = wire.decode(&mut buf, &mut replies)? {
                events.push(event);
            }
        }
        assert!(buf.is_empty(), "input left undecoded: {buf:?}");
        Ok((events, replies))
    }

    /// Asserts that splitting `input` at every byte yields what decoding it whole does.
    pub(crate) fn assert_split_invariant<W: Wire>(mut fresh: impl FnMut() -> W, input: &[u8]) {
        let (whole, whole_replies) = decode_all(&mut fresh(), input).expect("whole input decodes");
        for at in 0..=input.len() {
            let (split, split_replies) =
                decode_split(&mut fresh(), input, at).expect("split input decodes");
            assert_eq!(split, whole, "events differ when split at byte {at}");
            assert_eq!(split_replies, whole_replies, "replies differ at byte {at}");
        }
    }
}
