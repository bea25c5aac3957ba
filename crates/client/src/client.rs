//! The cloneable handle applications send requests through.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use suda_protocol::codec::encoded_len;
use suda_protocol::{Packet, PacketType, ResultCode};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ClientConfig;
use crate::connection::{Connection, Request};
use crate::error::ClientError;
use crate::event::Events;
use crate::event::StoredMessage;
use crate::pending::{Answer, Payload, mismatch};
use crate::transport::{self, Connector, ServerAddr, Transport};

/// A handle to one connection to a suda server.
///
/// Cloning is cheap (two reference counts) and every clone drives the same connection, so
/// requests can be made from many tasks at once; they are pipelined, and each caller gets the
/// response to its own request. The connection lives until [`close`](Self::close) is called, the
/// server or the network ends it, or every handle *and* the [`Events`] stream are dropped.
///
/// Every request method is cancel-safe in the sense that dropping its future never breaks the
/// connection: if the request was already queued it is still sent and its response discarded.
#[derive(Debug, Clone)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

/// What handles and the connection task both see. Nothing in it is locked across an `.await`.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Why the connection ended; set by the connection task before it stops taking requests, so a
    /// handle that finds the channel closed can always say why.
    disconnect: OnceLock<ClientError>,
    /// Asks the connection task to stop.
    pub(crate) close: CancellationToken,
    /// Nonces for `PING`s, shared so that keep-alive pings never reuse a caller's.
    next_nonce: AtomicU64,
    /// Whether a connection is up: cleared while reconnecting and once the client has ended.
    connected: AtomicBool,
    max_packet: usize,
}

impl Shared {
    pub(crate) fn next_nonce(&self) -> u64 {
        self.next_nonce.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub(crate) fn set_disconnect(&self, reason: ClientError) {
        let _ = self.disconnect.set(reason);
    }

    fn disconnect_reason(&self) -> ClientError {
        self.disconnect
            .get()
            .cloned()
            .unwrap_or(ClientError::Closed)
    }
}

impl Client {
    /// Connects to the server at `addr` and starts the connection task.
    ///
    /// `addr` is anything tokio can resolve (`"host:port"`, a `SocketAddr`...; see
    /// [`ServerAddr`]). With [`ClientConfig::tls`] set, the TLS handshake is made here too, and
    /// the server's certificate is verified for the host in `addr` unless
    /// [`TlsOptions::with_server_name`](crate::TlsOptions::with_server_name) names another.
    ///
    /// Returns the handle and the connection's [`Events`]. The connection is not logged in yet:
    /// call [`login`](Self::login). Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`ClientError::Io`] if the TCP connection cannot be made within
    /// [`ClientConfig::connect_timeout`] (the error kind is then `TimedOut`);
    /// `ClientError::Tls` if TLS cannot be set up or the handshake fails or does not finish
    /// within what is left of that timeout (see [`TlsErrorKind`](crate::TlsErrorKind)).
    pub async fn connect(
        addr: impl ServerAddr,
        config: ClientConfig,
    ) -> Result<(Client, Events), ClientError> {
        let config = config.normalized();
        // Owned, so that the connection task can connect again the same way to reconnect.
        let target = sealed_target(&addr);
        #[cfg(feature = "tls")]
        if let Some(tls) = &config.tls {
            let connector = crate::tls::connector(target, tls.clone(), config.connect_timeout);
            let stream = connector().await?;
            return Ok(Self::start(stream, config, connector));
        }
        let connector = transport::tcp_connector(target, config.connect_timeout);
        let stream = connector().await?;
        Ok(Self::start(stream, config, connector))
    }

    /// Starts the connection task on an established stream.
    fn start<S: Transport>(
        stream: S,
        config: ClientConfig,
        connector: Connector<S>,
    ) -> (Client, Events) {
        let (requests_tx, requests_rx) = mpsc::channel(config.command_capacity);
        let (events_tx, events_rx) = mpsc::channel(config.event_capacity);
        let shared = Arc::new(Shared {
            disconnect: OnceLock::new(),
            close: CancellationToken::new(),
            next_nonce: AtomicU64::new(1),
            connected: AtomicBool::new(true),
            max_packet: config.max_packet,
        });
        let connection = Connection::new(
            stream,
            config,
            requests_rx,
            events_tx,
            shared.clone(),
            connector,
        );
        tokio::spawn(connection.run());
        (
            Client {
                requests: requests_tx,
                shared,
            },
            Events::new(events_rx),
        )
    }

    /// Logs in, returning the new session's id.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::LoginReq` and e.g.
    /// `INVALID_CREDENTIALS`, `INVALID_USERNAME`, `NAME_IN_USE` or `ALREADY_AUTHENTICATED`;
    /// otherwise any error of a request (see [`ClientError`]).
    pub async fn login(&self, username: &str, password: &str) -> Result<u64, ClientError> {
        self.checked(Packet::LoginReq {
            username: username.into(),
            password: password.into(),
        })
        .await
    }

    /// Sends `text` to every other logged-in user, returning the message id they see.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::BroadcastReq` and e.g.
    /// `NOT_AUTHENTICATED`, `INVALID_MESSAGE` or `RATE_LIMITED`; [`ClientError::TooLarge`] if the
    /// packet would exceed [`ClientConfig::max_packet`]; otherwise any error of a request.
    pub async fn broadcast(&self, text: &str) -> Result<u64, ClientError> {
        self.checked(Packet::BroadcastReq { text: text.into() })
            .await
    }

    /// Sends `text` to the user `to` (matched case-insensitively by the server), returning the
    /// message id the recipient sees.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::WhisperReq` and e.g.
    /// `USER_NOT_FOUND`; otherwise as for [`broadcast`](Self::broadcast).
    pub async fn whisper(&self, to: &str, text: &str) -> Result<u64, ClientError> {
        self.checked(Packet::WhisperReq {
            to: to.into(),
            text: text.into(),
        })
        .await
    }

    /// Creates an account (allowed before login).
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::RegisterReq` and e.g.
    /// `USERNAME_TAKEN`, `WEAK_PASSWORD` (passwords are 8 to 128 bytes), `REGISTRATION_CLOSED`
    /// or `NOT_AVAILABLE` (a server without accounts).
    pub async fn register(&self, username: &str, password: &str) -> Result<(), ClientError> {
        self.checked(Packet::RegisterReq {
            username: username.into(),
            password: password.into(),
        })
        .await
        .map(drop)
    }

    /// Changes the logged-in account's password.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `INVALID_CREDENTIALS` for a wrong old password,
    /// `WEAK_PASSWORD`, `NOT_AUTHENTICATED` or `NOT_AVAILABLE`.
    pub async fn change_password(&self, old: &str, new: &str) -> Result<(), ClientError> {
        self.checked(Packet::ChangePasswordReq {
            old_password: old.into(),
            new_password: new.into(),
        })
        .await
        .map(drop)
    }

    /// Stored messages, oldest first: broadcasts (`peer` = `None`) or the whispers between the
    /// logged-in user and `peer`; only those with an id below `before` if given; at most
    /// `limit` (1–100).
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `NOT_AUTHENTICATED`, `NOT_AVAILABLE` (a server without
    /// history) or `USER_NOT_FOUND` (a `peer` that cannot be a username).
    pub async fn history(
        &self,
        peer: Option<&str>,
        before: Option<u64>,
        limit: u8,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        let channel = u8::from(peer.is_some());
        self.history_request(channel, peer.unwrap_or_default(), before, limit)
            .await
    }

    /// `HISTORY_REQ` on `channel` (0 broadcasts, 1 whispers with `peer`, 2 the room `peer`).
    pub(crate) async fn history_request(
        &self,
        channel: u8,
        peer: &str,
        before: Option<u64>,
        limit: u8,
    ) -> Result<Vec<StoredMessage>, ClientError> {
        let payload = self
            .with_payload(Packet::HistoryReq {
                channel,
                peer: peer.into(),
                before_id: before.unwrap_or(0),
                limit,
            })
            .await?;
        match payload {
            Payload::History(items) => Ok(items),
            _ => Err(mismatch(PacketType::HistoryReq)),
        }
    }

    /// Measures a round trip to the server with `PING`/`PONG`; allowed before login.
    ///
    /// The time includes waiting behind requests queued before this one.
    ///
    /// # Errors
    /// Any error of a request except `Rejected` (a `PONG` has no result code).
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let started = Instant::now();
        self.request(Packet::Ping {
            nonce: self.shared.next_nonce(),
        })
        .await?;
        Ok(started.elapsed())
    }

    /// Ends the session for good: sends `LOGOUT_REQ`, waits for `LOGOUT_RES`, then closes the
    /// connection as [`close`](Self::close) does, without reconnecting. The server frees the
    /// username at once and keeps nothing to resume (where merely closing, or losing, a
    /// connection with a session token leaves the session resumable for the server's grace
    /// period, the name still taken).
    ///
    /// The client ends whatever the answer. Requests still pending fail with
    /// [`ClientError::Closed`], and the [`Events`] stream ends with
    /// `Event::Disconnected(ClientError::Closed)`. With reconnecting on, a logout made while the
    /// client is reconnecting waits for the connection like any request.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::LogoutReq` if the server refused
    /// (e.g. `NOT_AUTHENTICATED` before login); otherwise any error of a request, e.g. the
    /// reason the connection ended if it ended before the answer came.
    pub async fn logout(&self) -> Result<(), ClientError> {
        let outcome = self.checked(Packet::LogoutReq).await;
        self.close().await;
        outcome.map(drop)
    }

    /// Closes the connection and waits until the socket is closed.
    ///
    /// Requests still pending fail with [`ClientError::Closed`], and the [`Events`] stream ends
    /// with `Event::Disconnected(ClientError::Closed)` after the events already received. Calling
    /// it again, or after the connection has ended, does nothing.
    pub async fn close(&self) {
        self.shared.close.cancel();
        self.requests.closed().await;
    }

    /// Whether the client has ended; requests then fail at once with the reason. With
    /// reconnecting on, `false` while it is reconnecting.
    pub fn is_closed(&self) -> bool {
        self.requests.is_closed()
    }

    /// Whether a connection to the server is up now: `false` once the client has ended and,
    /// with reconnecting on, while it is getting a lost connection back (between
    /// [`Event::ConnectionLost`](crate::Event::ConnectionLost) and the event that says it is
    /// back). A hint for the application (say, to leave without waiting on a logout); a
    /// connection can be lost right after this says `true`.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed) && !self.is_closed()
    }

    /// Sends a request whose response carries a result code, turning a refusal into
    /// [`ClientError::Rejected`]; returns the response's id (session or message), if any.
    pub(crate) async fn checked(&self, packet: Packet) -> Result<u64, ClientError> {
        self.accepted(packet).await.map(|answer| answer.value)
    }

    /// [`checked`](Self::checked), returning what the response carried besides its id.
    pub(crate) async fn with_payload(&self, packet: Packet) -> Result<Payload, ClientError> {
        self.accepted(packet).await.map(|answer| answer.payload)
    }

    async fn accepted(&self, packet: Packet) -> Result<Answer, ClientError> {
        let request = packet.packet_type();
        let answer = self.request(packet).await?;
        // Strictly `OK`: any other code, even one that means success elsewhere
        // (`RESUMED_WITH_GAP`), is not a success for these requests (docs/PROTOCOL.md §4).
        if answer.result == ResultCode::OK {
            Ok(answer)
        } else {
            Err(ClientError::Rejected {
                request,
                result: answer.result,
            })
        }
    }

    async fn request(&self, packet: Packet) -> Result<Answer, ClientError> {
        let request: PacketType = packet.packet_type();
        // Checked here, in the caller's task, so a bad request is refused before it can reach
        // the server (which would close the connection on an oversized packet).
        let size =
            encoded_len(&packet).map_err(|source| ClientError::Encode { request, source })?;
        if size > self.shared.max_packet {
            return Err(ClientError::TooLarge {
                request,
                size,
                max: self.shared.max_packet,
            });
        }
        let (reply, answer) = oneshot::channel();
        let issued = Instant::now();
        let request = Request {
            packet,
            reply,
            issued,
        };
        if self.requests.send(request).await.is_err() {
            return Err(self.shared.disconnect_reason());
        }
        // A dropped reply means the connection ended with this request still queued.
        answer
            .await
            .unwrap_or_else(|_| Err(self.shared.disconnect_reason()))
    }
}

/// `addr` as an owned target.
fn sealed_target(addr: &impl ServerAddr) -> transport::Target {
    transport::to_target(addr)
}

#[cfg(test)]
mod tests;
