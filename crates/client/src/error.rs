//! What requests and connections fail with.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use suda_protocol::{DecodeError, EncodeError, ErrorCode, PacketType, ResultCode};
use thiserror::Error;

/// Why a request failed, or why a connection ended.
///
/// The variants fall in three groups:
/// - about one request, the connection stays usable: [`Rejected`](Self::Rejected),
///   [`TooLarge`](Self::TooLarge), [`Encode`](Self::Encode);
/// - the connection is over, and every pending and later request on it fails with the same
///   value, which [`Event::Disconnected`](crate::Event::Disconnected) also carries:
///   [`Timeout`](Self::Timeout), [`Io`](Self::Io), [`Protocol`](Self::Protocol),
///   [`ServerClosed`](Self::ServerClosed), [`Eof`](Self::Eof), [`Closed`](Self::Closed);
/// - no connection was made: [`Client::connect`](crate::Client::connect) returns `Io` or, with
///   TLS, `Tls`;
/// - with reconnecting on ([`ClientConfig::with_reconnect`](crate::ClientConfig::with_reconnect)),
///   a connection was lost but the client goes on: [`ConnectionLost`](Self::ConnectionLost),
///   [`ReconnectTimeout`](Self::ReconnectTimeout); and when it stops trying,
///   [`ReconnectFailed`](Self::ReconnectFailed), which ends it like the second group.
///
/// It is `Clone` because one connection failure is reported to many waiters.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered the request with a result other than `OK`.
    #[error("the server refused {}: {result}", .request.wire_name())]
    Rejected {
        /// The request that was refused, e.g. [`PacketType::WhisperReq`].
        request: PacketType,
        /// The server's reason, e.g. [`ResultCode::USER_NOT_FOUND`].
        result: ResultCode,
    },
    /// The request would be larger than [`ClientConfig::max_packet`](crate::ClientConfig);
    /// it was not sent.
    #[error("{} would be {size} bytes, over the {max}-byte packet limit", .request.wire_name())]
    TooLarge {
        /// The request that was not sent.
        request: PacketType,
        /// Its encoded size, header included.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The request cannot be encoded at all (a field is longer than its length prefix allows);
    /// it was not sent.
    #[error("cannot encode {}: {source}", .request.wire_name())]
    Encode {
        /// The request that was not sent.
        request: PacketType,
        /// What is wrong with it.
        #[source]
        source: EncodeError,
    },
    /// The oldest pending request got no response within
    /// [`ClientConfig::request_timeout`](crate::ClientConfig); the connection was closed.
    #[error("no response to {} within {after:?}", .request.wire_name())]
    Timeout {
        /// The request that was not answered in time.
        request: PacketType,
        /// The timeout that passed.
        after: Duration,
    },
    /// Connecting, reading or writing failed.
    // The detail is in `source()` only, so that error chains (anyhow's `{:#}`) print it once.
    #[error("I/O error")]
    Io(#[source] Arc<io::Error>),
    /// TLS could not be set up, or the handshake failed: an untrusted certificate, one for
    /// another name, a server that does not speak TLS... [`TlsError::kind`](crate::TlsError::kind)
    /// says which. Only [`Client::connect`](crate::Client::connect) returns it.
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Tls(crate::tls::TlsError),
    /// The server sent something this client cannot accept; the connection was closed.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The server said why with `ERROR_NOTIFY` and closed the connection.
    #[error("the server closed the connection: {code}: {reason}")]
    ServerClosed {
        /// Machine-readable reason, e.g. [`ErrorCode::SERVER_SHUTDOWN`].
        code: ErrorCode,
        /// The server's explanation, lossily decoded as UTF-8.
        reason: String,
    },
    /// The server closed the connection without saying why.
    #[error("the server closed the connection")]
    Eof,
    /// This client closed the connection: [`Client::close`](crate::Client::close) or
    /// [`Client::logout`](crate::Client::logout) was called, or every handle and the event
    /// stream were dropped.
    #[error("the connection was closed by the client")]
    Closed,
    /// With reconnecting on: the connection was lost (the inner error says how) after this
    /// request was handed to it and before its response came. The server may or may not have
    /// carried it out: a broadcast may have gone out. The client is reconnecting; requests made
    /// from now on are sent once it is back.
    #[error(
        "the connection was lost before the answer came; the request may or may not have been carried out"
    )]
    ConnectionLost(#[source] Box<ClientError>),
    /// With reconnecting on: the request waited for a new connection for
    /// [`ClientConfig::request_timeout`](crate::ClientConfig) and none came. It was never
    /// sent. The client goes on trying to reconnect.
    #[error("{} not sent: no connection within {after:?} (reconnecting)", .request.wire_name())]
    ReconnectTimeout {
        /// The request that was not sent.
        request: PacketType,
        /// How long it waited.
        after: Duration,
    },
    /// With reconnecting on: the client gave up getting its connection back, after `attempts`
    /// attempts; `last` is why the last one failed (e.g. `Io` for a refused connection, or
    /// `Rejected` when logging in again was refused). The client is over.
    #[error("gave up reconnecting after {attempts} attempt(s)")]
    ReconnectFailed {
        /// Attempts made since the connection was lost.
        attempts: u32,
        /// Why the last attempt failed.
        #[source]
        last: Box<ClientError>,
    },
}

impl ClientError {
    /// Whether this error means the client is over (every later request fails too), as opposed
    /// to one request being refused or unsendable, or, with reconnecting on, one request lost
    /// with a connection the client is getting back.
    pub fn ends_connection(&self) -> bool {
        !matches!(
            self,
            Self::Rejected { .. }
                | Self::TooLarge { .. }
                | Self::Encode { .. }
                | Self::ConnectionLost(_)
                | Self::ReconnectTimeout { .. }
        )
    }
}

#[cfg(feature = "tls")]
impl From<crate::tls::TlsError> for ClientError {
    fn from(error: crate::tls::TlsError) -> Self {
        Self::Tls(error)
    }
}

impl From<io::Error> for ClientError {
    fn from(error: io::Error) -> Self {
        Self::Io(Arc::new(error))
    }
}

/// How the server broke the protocol. Any of these ends the connection, since the byte stream or
/// the request/response pairing can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes are not a valid packet.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The next response is not of the type the oldest pending request expects.
    #[error("expected {} but the server sent {}", .expected.wire_name(), .got.wire_name())]
    UnexpectedResponse {
        /// The response type the oldest pending request needs.
        expected: PacketType,
        /// What arrived instead.
        got: PacketType,
    },
    /// A response arrived while no request was pending.
    #[error("the server sent {} with no request pending", .0.wire_name())]
    UnsolicitedResponse(PacketType),
    /// The server sent a packet type that only clients send.
    #[error("the server sent {}, which only clients send", .0.wire_name())]
    UnexpectedPacket(PacketType),
    /// A `PONG` echoed a different nonce than the `PING` it answers.
    #[error("PONG nonce {got} does not match PING nonce {expected}")]
    PongMismatch {
        /// The nonce that was sent.
        expected: u64,
        /// The nonce that came back.
        got: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_request_and_the_code() {
        let rejected = ClientError::Rejected {
            request: PacketType::WhisperReq,
            result: ResultCode::USER_NOT_FOUND,
        };
        assert_eq!(
            rejected.to_string(),
            "the server refused WHISPER_REQ: USER_NOT_FOUND"
        );
        let mismatch = ClientError::from(ProtocolError::UnexpectedResponse {
            expected: PacketType::LoginRes,
            got: PacketType::Pong,
        });
        assert_eq!(
            mismatch.to_string(),
            "protocol error: expected LOGIN_RES but the server sent PONG"
        );
        assert!(!rejected.ends_connection());
        assert!(mismatch.ends_connection());
        assert!(ClientError::Eof.ends_connection());
        let lost = ClientError::ConnectionLost(Box::new(ClientError::Eof));
        assert!(!lost.ends_connection());
        assert_eq!(
            std::error::Error::source(&lost).map(ToString::to_string),
            Some("the server closed the connection".to_owned())
        );
        let gave_up = ClientError::ReconnectFailed {
            attempts: 3,
            last: Box::new(ClientError::Eof),
        };
        assert!(gave_up.ends_connection());
        assert_eq!(
            gave_up.to_string(),
            "gave up reconnecting after 3 attempt(s)"
        );
    }
}
