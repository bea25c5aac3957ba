//! Tuning knobs of one client connection.

use std::time::Duration;

use suda_protocol::{DEFAULT_MAX_PACKET, HEADER_LEN, MAX_PACKET_LIMIT};

use crate::reconnect::ReconnectPolicy;
#[cfg(feature = "tls")]
use crate::tls::TlsOptions;

/// How a connection made by [`Client::connect`](crate::Client::connect) behaves.
///
/// Start from [`ClientConfig::default()`] and change what you need with the `with_*` methods; the
/// struct is `#[non_exhaustive]` so that later options are not breaking.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// How long establishing the connection may take: the TCP connection and, with TLS, the
    /// handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// How long a request may wait for its response. Default 30 s.
    ///
    /// Responses are matched to requests by order, so a response that never comes cannot be
    /// skipped: when the oldest pending request passes this deadline the connection ends with
    /// [`ClientError::Timeout`](crate::ClientError::Timeout) and every other pending request
    /// fails with it too.
    pub request_timeout: Duration,
    /// Send a `PING` after this long without sending anything, so that the server's idle timeout
    /// does not close a quiet connection and a dead server is noticed (its missing `PONG` hits
    /// `request_timeout`). `None` disables it. Default 20 s.
    pub keepalive: Option<Duration>,
    /// Largest packet, header included, this client sends. Default 8192, the server's default;
    /// keep it equal to the server's `max_packet`, because the server closes the connection on a
    /// larger packet, while this client refuses one locally
    /// ([`ClientError::TooLarge`](crate::ClientError::TooLarge)) and keeps the connection.
    /// Received packets may be up to 65535 bytes whatever this says, as the protocol requires.
    pub max_packet: usize,
    /// Notifications buffered for [`Events`](crate::Events) before the connection stops reading
    /// from the socket. Default 256; at least 1.
    pub event_capacity: usize,
    /// Requests queued between [`Client`](crate::Client) handles and the connection before
    /// callers wait. Default 64; at least 1.
    pub command_capacity: usize,
    /// Speak TLS with these options; `None` (the default) for plain TCP. The server must listen
    /// for TLS on the port connected to: TLS is not negotiated on a plain suda port.
    #[cfg(feature = "tls")]
    pub tls: Option<TlsOptions>,
    /// Reconnect, and resume the session, when the connection is lost after login; `None` (the
    /// default) to end the client instead. See [`with_reconnect`](Self::with_reconnect).
    pub reconnect: Option<ReconnectPolicy>,
    /// Opt in to the notifications of protocol 1.3 (system notices, moderation notices) as soon
    /// as the session is logged in: the client sends `SET_STATUS_REQ` (status online) right
    /// after each successful login, its own and a new login after a reconnect. Default `true`.
    ///
    /// A session gets 1.3 notifications only once it has sent a 1.3 request (docs/PROTOCOL.md
    /// §13, "Opting in"): without this, a system notice reaches it as a broadcast from
    /// `*notice*`, and a mute goes unannounced, until it first joins a room, watches someone...
    /// Turn it off for a server older than protocol 1.3, which closes the connection on
    /// a packet type it does not know.
    pub opt_in: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            keepalive: Some(Duration::from_secs(20)),
            max_packet: DEFAULT_MAX_PACKET,
            event_capacity: 256,
            command_capacity: 64,
            #[cfg(feature = "tls")]
            tls: None,
            reconnect: None,
            opt_in: true,
        }
    }
}

impl ClientConfig {
    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`keepalive`](Self::keepalive).
    pub fn with_keepalive(mut self, interval: Option<Duration>) -> Self {
        self.keepalive = interval;
        self
    }

    /// Sets [`max_packet`](Self::max_packet).
    pub fn with_max_packet(mut self, max_packet: usize) -> Self {
        self.max_packet = max_packet;
        self
    }

    /// Sets [`event_capacity`](Self::event_capacity).
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Sets [`command_capacity`](Self::command_capacity).
    pub fn with_command_capacity(mut self, capacity: usize) -> Self {
        self.command_capacity = capacity;
        self
    }

    /// Sets [`tls`](Self::tls): connect with TLS, as `options` say.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, options: TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    /// Sets [`reconnect`](Self::reconnect): once logged in, survive lost connections.
    ///
    /// After a successful [`login`](crate::Client::login) the client asks the server for a
    /// session token (`SESSION_TOKEN_REQ`, pipelined behind the login). When the connection is
    /// then lost (end of stream, an I/O error, a request or keep-alive timeout, or an
    /// `ERROR_NOTIFY` other than a protocol violation, `FLOODING`, `SESSION_TAKEN_OVER`,
    /// `KICKED` or `BANNED`), the connection task reconnects with `policy`'s backoff and
    /// resumes the session with `RESUME_REQ`, naming the last message it received, so the
    /// server replays what was missed and messages are neither lost nor doubled. If the session cannot be resumed (the server
    /// gave no token, or the token expired), it logs in again with the same credentials (kept in
    /// memory for that) as a new session; see [`Event::Reconnected`](crate::Event::Reconnected).
    ///
    /// What requests see: those in flight when the connection is lost fail with
    /// [`ClientError::ConnectionLost`](crate::ClientError::ConnectionLost) (they may or may not
    /// have been carried out); those made while reconnecting wait and are sent once the session
    /// is back, or fail with [`ClientError::ReconnectTimeout`](crate::ClientError::ReconnectTimeout)
    /// after [`request_timeout`](Self::request_timeout). What the application sees is in
    /// [`Event`](crate::Event).
    ///
    /// Only a connection that has logged in is reconnected: [`Client::connect`](crate::Client::connect)
    /// failing, or a connection lost before login, ends as without this option. A new
    /// connection goes to the same address, resolved again, with the same TLS options.
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = Some(policy);
        self
    }

    /// Sets [`opt_in`](Self::opt_in).
    pub fn with_opt_in(mut self, opt_in: bool) -> Self {
        self.opt_in = opt_in;
        self
    }

    /// The same settings pulled into the ranges the connection can work with, so that a zero
    /// capacity or an impossible packet size cannot panic a channel constructor or wedge the
    /// decoder.
    pub(crate) fn normalized(mut self) -> Self {
        self.max_packet = self.max_packet.clamp(HEADER_LEN, MAX_PACKET_LIMIT);
        self.event_capacity = self.event_capacity.max(1);
        self.command_capacity = self.command_capacity.max(1);
        if self.keepalive == Some(Duration::ZERO) {
            self.keepalive = None;
        }
        if self
            .reconnect
            .as_ref()
            .is_some_and(|policy| policy.max_attempts == Some(0))
        {
            self.reconnect = None;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_keeps_values_in_workable_ranges() {
        let config = ClientConfig::default()
            .with_max_packet(usize::MAX)
            .with_event_capacity(0)
            .with_command_capacity(0)
            .with_keepalive(Some(Duration::ZERO))
            .normalized();
        assert_eq!(config.max_packet, MAX_PACKET_LIMIT);
        assert_eq!(config.event_capacity, 1);
        assert_eq!(config.command_capacity, 1);
        assert_eq!(config.keepalive, None);
        let never = ReconnectPolicy::new().with_max_attempts(Some(0));
        assert!(
            ClientConfig::default()
                .with_reconnect(never)
                .normalized()
                .reconnect
                .is_none()
        );
        assert_eq!(
            ClientConfig::default()
                .with_max_packet(0)
                .normalized()
                .max_packet,
            HEADER_LEN
        );
    }
}
