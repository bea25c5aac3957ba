//! Async client library for the suda chat server, on tokio.
//!
//! ```no_run
//! # async fn demo() -> Result<(), suda_client::ClientError> {
//! use suda_client::{Client, ClientConfig, ClientError, Event, ResultCode};
//!
//! let (client, mut events) = Client::connect("127.0.0.1:7000", ClientConfig::default()).await?;
//! match client.login("alice", "secret").await {
//!     Ok(session_id) => println!("logged in, session {session_id}"),
//!     Err(ClientError::Rejected { result: ResultCode::NAME_IN_USE, .. }) => println!("taken"),
//!     Err(e) => return Err(e),
//! }
//! // Consume events concurrently with requests: see `Events` on backpressure.
//! tokio::spawn(async move {
//!     while let Some(event) = events.next().await {
//!         if let Event::Broadcast(msg) = event {
//!             println!("<{}> {}", msg.from, msg.text);
//!         }
//!     }
//! });
//! client.broadcast("hello").await?;
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! Over TLS (feature `tls`, on by default), here trusting a private CA besides the system's:
//!
//! ```no_run
//! # #[cfg(feature = "tls")]
//! # async fn demo() -> Result<(), suda_client::ClientError> {
//! use suda_client::{Client, ClientConfig, ClientError, TlsErrorKind, TlsOptions};
//!
//! let config = ClientConfig::default().with_tls(TlsOptions::new().with_ca_file("ca.pem"));
//! match Client::connect("chat.example.com:7443", config).await {
//!     Ok((client, events)) => { /* as above */ }
//!     Err(ClientError::Tls(e)) if e.kind() == TlsErrorKind::UntrustedCertificate => {
//!         eprintln!("not the server you think: {e}");
//!     }
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! Surviving lost connections (see [`ClientConfig::with_reconnect`]):
//!
//! ```no_run
//! # async fn demo() -> Result<(), suda_client::ClientError> {
//! use suda_client::{Client, ClientConfig, Event, ReconnectPolicy};
//!
//! let config = ClientConfig::default().with_reconnect(ReconnectPolicy::default());
//! let (client, mut events) = Client::connect("127.0.0.1:7000", config).await?;
//! client.login("alice", "secret").await?;
//! while let Some(event) = events.next().await {
//!     match event {
//!         Event::ConnectionLost(reason) => println!("connection lost: {reason}"),
//!         Event::Resumed { replayed } => println!("back; {replayed} missed messages follow"),
//!         Event::Disconnected(reason) => println!("over: {reason}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Modules (private; everything they export is re-exported here):
//! - `config`: [`ClientConfig`], timeouts, keep-alive, buffer sizes and TLS.
//! - `error`: [`ClientError`], what a request or a connection can fail with, and
//!   [`ProtocolError`], the ways a server can break the protocol.
//! - `event`: [`Event`] and [`ChatMessage`], what the server pushes, and [`Events`], the stream
//!   that carries them.
//! - `client`: [`Client`], the cloneable handle that sends requests.
//! - `connection`: the task that owns the socket, its buffers and the pending requests, and
//!   (`connection/recover.rs`) gets a lost connection back when reconnecting is on.
//! - `reconnect`: [`ReconnectPolicy`] and [`Jitter`], when to try again, and which failures are
//!   worth it.
//! - `resume`: what is kept to resume a session (credentials, token, last message received) and
//!   the filter that drops a replayed message already delivered.
//! - `handshake`: resuming (or logging in again) on a new connection.
//! - `transport`: the byte stream under a connection (TCP, or TLS over TCP) and [`ServerAddr`],
//!   the addresses [`Client::connect`] takes.
//! - `tls` (feature `tls`, on by default): [`TlsOptions`], what to trust and which name to
//!   verify, and [`TlsError`], how TLS fails; built on rustls with the *ring* provider.
//! - `rooms`, `presence`, `moderation` (protocol 1.3): the requests of rooms
//!   ([`Client::join_room`], [`Client::room_chat`]...), of presence ([`Client::user_list`],
//!   [`Client::set_status`], [`Client::watch`]) and of server operators
//!   ([`Client::moderate`], [`Client::system_notice`]), with the types they take and return and
//!   the notifications they bring ([`RoomEvent`], [`Presence`], [`ModerationNotice`]).
//! - `pending`: the FIFO that matches responses to requests, kept apart from I/O so it can be
//!   tested without sockets.
//!
//! One task per connection owns the socket; handles and the event stream talk to it over bounded
//! channels, so no lock is ever held across an `.await` and a slow application slows the
//! connection down instead of growing a queue.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
mod config;
mod connection;
mod error;
mod event;
mod handshake;
mod moderation;
mod pending;
mod presence;
mod reconnect;
mod resume;
mod rooms;
#[cfg(feature = "tls")]
mod tls;
mod transport;

pub use client::Client;
pub use config::ClientConfig;
pub use error::{ClientError, ProtocolError};
pub use event::{ChatMessage, Event, Events, MessageKind, StoredMessage};
pub use moderation::{ModerationAction, ModerationKind, ModerationNotice};
pub use presence::{Presence, Role, Status, UserEntry};
pub use reconnect::{Jitter, ReconnectPolicy};
pub use rooms::{RoomAction, RoomEvent, RoomEventKind, RoomInfo, RoomMessage, RoomOptions};
/// Protocol types that appear in this crate's API, re-exported so callers can match on them
/// without depending on `suda-protocol` themselves.
pub use suda_protocol::{ErrorCode, PacketType, ResultCode};
#[cfg(feature = "tls")]
pub use tls::{TlsError, TlsErrorKind, TlsOptions};
pub use transport::ServerAddr;
