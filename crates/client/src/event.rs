//! What the server pushes without being asked, and the stream that carries it.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures_util::Stream;
use suda_protocol::{ErrorCode, WireStr};
use tokio::sync::mpsc;

use crate::error::ClientError;
use crate::moderation::ModerationNotice;
use crate::presence::Presence;
use crate::rooms::{RoomEvent, RoomMessage};

/// One chat message from another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Server-assigned id, unique and increasing.
    pub message_id: u64,
    /// Server Unix time in milliseconds when the message was accepted.
    pub sent_at_ms: u64,
    /// The sender's username as they typed it.
    pub from: String,
    /// The text; invalid UTF-8 from the server is replaced with U+FFFD.
    pub text: String,
}

impl ChatMessage {
    pub(crate) fn from_wire(
        message_id: u64,
        sent_at_ms: u64,
        from: &WireStr,
        text: &WireStr,
    ) -> Self {
        Self {
            message_id,
            sent_at_ms,
            from: from.to_string_lossy().into_owned(),
            text: text.to_string_lossy().into_owned(),
        }
    }

    /// [`sent_at_ms`](Self::sent_at_ms) as a [`SystemTime`], `None` if the server sent a time
    /// this platform cannot represent.
    pub fn sent_at(&self) -> Option<SystemTime> {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(self.sent_at_ms))
    }
}

/// Something that happened on the connection.
///
/// Without reconnecting, a connection's events are chat messages (and with protocol 1.3, room
/// traffic, presence and notices), perhaps
/// [`ServerClosing`](Self::ServerClosing), and last [`Disconnected`](Self::Disconnected).
///
/// With reconnecting on ([`ClientConfig::with_reconnect`](crate::ClientConfig::with_reconnect)),
/// a lost connection (after login) shows as
/// [`ConnectionLost`](Self::ConnectionLost), then one [`Reconnecting`](Self::Reconnecting) per
/// attempt, then one of [`Resumed`](Self::Resumed) (followed by the replayed messages, then live
/// ones), [`ResumedWithGap`](Self::ResumedWithGap) or [`Reconnected`](Self::Reconnected); or,
/// when the client gives up, [`Disconnected`](Self::Disconnected). `Disconnected` is the last
/// event in both modes and means the client is over.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// Another user broadcast a message.
    Broadcast(ChatMessage),
    /// Another user whispered to this one.
    Whisper(ChatMessage),
    /// Another member talked in a room this user is in (protocol 1.3).
    RoomChat(RoomMessage),
    /// Something happened in a room this user is in: a member joined, left, was kicked, the
    /// topic changed... (protocol 1.3). In order with the room's messages.
    RoomEvent(RoomEvent),
    /// A watched user's presence changed (protocol 1.3; see
    /// [`Client::watch`](crate::Client::watch)).
    ///
    /// It carries no message id, so unlike the other notifications it can arrive twice across
    /// a resume; it states a presence rather than a change, so that is harmless.
    Presence(Presence),
    /// A server operator's notice to everyone (protocol 1.3); `from` is the operator.
    SystemNotice(ChatMessage),
    /// A server operator acted on this user: muted, unmuted, or (right before the connection
    /// ends with [`ErrorCode::KICKED`] or [`ErrorCode::BANNED`]) kicked or banned
    /// (protocol 1.3). It carries no message id, so it can arrive twice across a resume.
    Moderation(ModerationNotice),
    /// The server sent `ERROR_NOTIFY` and is closing the connection; [`Event::Disconnected`]
    /// follows, or with reconnecting on, [`Event::ConnectionLost`] if the client will try to
    /// come back (it does for a server shutting down, not for a protocol error).
    ServerClosing {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The server's explanation, lossily decoded as UTF-8.
        reason: String,
    },
    /// With reconnecting on: the connection was lost, for this reason, and the client will try
    /// to get it back. Requests in flight failed with
    /// [`ClientError::ConnectionLost`]; requests made from now on wait for the new connection.
    ConnectionLost(ClientError),
    /// With reconnecting on: attempt number `attempt` (from 1) starts after `delay`.
    Reconnecting {
        /// Attempts so far, this one included.
        attempt: u32,
        /// How long the client waits before connecting.
        delay: Duration,
    },
    /// With reconnecting on: the session was resumed without loss; the `replayed` messages that
    /// arrived for this user meanwhile follow as events, in the order they were first sent to
    /// this session, before any live message. (A replayed message the application already had
    /// is not surfaced again, so fewer may follow.)
    Resumed {
        /// How many messages the server replays.
        replayed: u32,
    },
    /// With reconnecting on: the session was resumed, but the server could not replay
    /// everything (its replay log overflowed): some messages were lost; reload history to fill
    /// the gap. The `replayed` messages it still had follow, as for [`Event::Resumed`].
    ResumedWithGap {
        /// How many messages the server replays.
        replayed: u32,
    },
    /// With reconnecting on: the connection is back, but as a *new* session, logged in again
    /// with the same credentials, because the old one could not be resumed (no token was
    /// available, or it had expired). Every message sent to this user while disconnected was
    /// lost; reload history to fill the gap.
    ///
    /// The new session is in no room and watches nobody: join and watch again. (If the old
    /// session had spoken protocol 1.3, or [`ClientConfig::opt_in`](crate::ClientConfig::opt_in)
    /// is on, the client has already opted the new one in and set the status last set with
    /// [`Client::set_status`](crate::Client::set_status) again.)
    Reconnected {
        /// The new session's id.
        session_id: u64,
    },
    /// The client is over; always the last event. [`ClientError::Closed`] when this client
    /// closed it or logged out; with reconnecting on, [`ClientError::ReconnectFailed`] when it
    /// gave up getting the connection back, or the reason the connection ended when that is
    /// not worth reconnecting for (a protocol error, a connection that never logged in).
    Disconnected(ClientError),
}

/// The stream of [`Event`]s of one connection, returned by
/// [`Client::connect`](crate::Client::connect).
///
/// **Backpressure:** notifications wait in a buffer of
/// [`ClientConfig::event_capacity`](crate::ClientConfig) events. When it is full the connection
/// stops reading from the socket until the application takes an event, so nothing is dropped and
/// memory stays bounded; the server then sees a slow reader and may close the connection
/// (`SLOW_CONSUMER`). Responses travel on the same socket behind those notifications, so while
/// events are not consumed requests are not answered either and eventually time out. Consume
/// events in their own task, or drop this stream if you do not want them: once it is dropped,
/// notifications are discarded. With reconnecting on, a lost connection is noticed, and got
/// back, only as fast as events are taken, since its events queue behind the others.
///
/// The stream ends (`None`) after [`Event::Disconnected`]. With reconnecting on, the stream
/// outlives connections: it carries the events of every connection the client makes, in order.
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event, `None` after [`Event::Disconnected`] has been returned.
    ///
    /// Cancel-safe: dropping the future before it completes loses no event.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("buffered", &self.rx.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_text_is_decoded_lossily_and_time_never_overflows() {
        let msg = ChatMessage::from_wire(
            7,
            u64::MAX,
            &WireStr::from("bob"),
            &WireStr::from(&[b'h', 0xff, b'i'][..]),
        );
        assert_eq!(msg.text, "h\u{fffd}i");
        assert_eq!(msg.from, "bob");
        // u64::MAX ms is beyond what SystemTime holds on some platforms: it must not panic.
        let _ = msg.sent_at();
        let epoch_plus_one = ChatMessage {
            sent_at_ms: 1000,
            ..msg
        }
        .sent_at();
        assert_eq!(
            epoch_plus_one,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1))
        );
    }
}

/// A message from the server's history (`HISTORY_RES`), oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The message's id.
    pub message_id: u64,
    /// When the server accepted it, Unix milliseconds.
    pub sent_at_ms: u64,
    /// A broadcast, a whisper or a room message.
    pub kind: MessageKind,
    /// The sender's name.
    pub from: String,
    /// The whisper's recipient, or the room of a room message; `None` for a broadcast.
    pub to: Option<String>,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
}

/// Which kind of message a [`StoredMessage`] is (`HISTORY_ITEM`'s `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// To everyone (kind 1).
    Broadcast,
    /// To one user (kind 2).
    Whisper,
    /// To a room (kind 3).
    Room,
    /// A kind this crate does not know.
    Other(u8),
}

impl MessageKind {
    pub(crate) fn from_wire(kind: u8) -> Self {
        match kind {
            1 => Self::Broadcast,
            2 => Self::Whisper,
            3 => Self::Room,
            other => Self::Other(other),
        }
    }
}
