//! One client session: its state machine and the chat requests it serves.
//!
//! A session moves from *connected* (only `LOGIN_REQ` and `PING` are served) to *authenticated*
//! to *closing*. Each session is one task on the shard that accepted it; the task waits on
//! three things at once — the socket becoming readable, its outbox having something to write,
//! and its next deadline — so one session never needs a second task.
//!
//! Within one read, every complete packet is handled before the socket is touched again, and the
//! broadcasts among them are encoded back to back into one buffer that crosses to the other
//! shards once, so a sender pipelining fifty messages costs its recipients one queue push.
//!
//! Request handlers live in `login` and `chat`.

mod chat;
mod login;

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use suda_protocol::{DecodeError, ErrorCode, Packet, PacketType, ResultCode, WireStr};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span};

use crate::connection::{CLOSE_LINGER, Connection, ReadOutcome, TlsFailure};
use crate::limits::TokenBucket;
use crate::outbox::Pushed;
use crate::server::{ConnectionGuard, ReaderGuard};
use crate::shard::{Member, Shard};
use crate::stats::{CloseKind, bump};

/// A session's id: unique across the server's lifetime (and, carrying the node id, a cluster's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a session ended.
#[derive(Debug)]
enum CloseReason {
    PeerClosed,
    Io(io::Error),
    Tls(String),
    Malformed(DecodeError),
    Unexpected(PacketType),
    LoginTimeout,
    IdleTimeout,
    PacketTimeout,
    WriteTimeout,
    SlowConsumer,
    Flooding,
    Shutdown,
}

impl CloseReason {
    /// The `ERROR_NOTIFY` that tells the peer, when there is still a peer to tell.
    fn notice(&self) -> Option<(ErrorCode, String)> {
        Some(match self {
            Self::PeerClosed | Self::Io(_) | Self::Tls(_) => return None,
            Self::Malformed(err) => (err.code(), err.to_string()),
            Self::Unexpected(ty) => (
                ErrorCode::UNEXPECTED_PACKET,
                format!("{} is sent by servers, not clients", ty.wire_name()),
            ),
            Self::LoginTimeout => (ErrorCode::LOGIN_TIMEOUT, "no login in time".into()),
            Self::IdleTimeout => (ErrorCode::IDLE_TIMEOUT, "idle for too long".into()),
            Self::PacketTimeout => (
                ErrorCode::PACKET_TIMEOUT,
                "a packet took too long to arrive".into(),
            ),
            Self::Flooding => (
                ErrorCode::FLOODING,
                "kept sending after being rate limited".into(),
            ),
            Self::WriteTimeout => (ErrorCode::WRITE_TIMEOUT, "not reading".into()),
            Self::SlowConsumer => (
                ErrorCode::SLOW_CONSUMER,
                "send queue limit exceeded: reading too slowly".into(),
            ),
            Self::Shutdown => (ErrorCode::SERVER_SHUTDOWN, "server shutting down".into()),
        })
    }
}

impl CloseReason {
    fn kind(&self) -> CloseKind {
        match self {
            Self::PeerClosed => CloseKind::PeerClosed,
            Self::Io(_) => CloseKind::Io,
            Self::Tls(_) => CloseKind::Tls,
            Self::Malformed(_) | Self::Unexpected(_) => CloseKind::ProtocolError,
            Self::LoginTimeout => CloseKind::LoginTimeout,
            Self::IdleTimeout => CloseKind::IdleTimeout,
            Self::PacketTimeout => CloseKind::PacketTimeout,
            Self::WriteTimeout => CloseKind::WriteTimeout,
            Self::SlowConsumer => CloseKind::SlowConsumer,
            Self::Flooding => CloseKind::Flooding,
            Self::Shutdown => CloseKind::Shutdown,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed => f.write_str("peer closed the connection"),
            Self::Io(err) => write!(f, "i/o error: {err}"),
            Self::Tls(err) => write!(f, "TLS error: {err}"),
            Self::Malformed(err) => write!(f, "protocol error: {err}"),
            Self::Unexpected(ty) => write!(f, "protocol error: unexpected {}", ty.wire_name()),
            Self::LoginTimeout => f.write_str("login timeout"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::PacketTimeout => f.write_str("packet timeout: a packet arrived too slowly"),
            Self::Flooding => f.write_str("flooding: kept sending after being rate limited"),
            Self::WriteTimeout => f.write_str("write timeout: peer stopped reading"),
            Self::SlowConsumer => f.write_str("slow consumer: send queue limit exceeded"),
            Self::Shutdown => f.write_str("server shutdown"),
        }
    }
}

/// Who a session is once logged in.
#[derive(Debug)]
struct Identity {
    name: Arc<str>,
    /// The name as it goes on the wire, shared by every notification this session sends.
    wire_name: WireStr,
}

/// Serves one accepted connection until it ends.
pub(crate) async fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    tls: Option<rustls::ServerConnection>,
    peer: SocketAddr,
    guard: ConnectionGuard,
    reader: ReaderGuard,
) {
    let shared = shard.shared.clone();
    let id = SessionId(shared.session_ids.next());
    let encrypted = tls.is_some();
    let span = info_span!("conn", %peer, session = %id, user = tracing::field::Empty);
    async move {
        info!(tls = encrypted, "connected");
        let now = Instant::now();
        let config = &shared.config;
        let mut session = Session {
            me: Member::new(id, config.send_queue_limit),
            shard,
            conn: Connection::new(stream, tls),
            identity: None,
            connected_at: now,
            last_activity: now,
            write_stalled_since: None,
            timer_deadline: now + config.login_timeout.min(config.idle_timeout),
            partial_since: None,
            broadcasts: BytesMut::new(),
            batched_broadcasts: 0,
            peer_ip: peer.ip(),
            message_tokens: TokenBucket::new(config.message_rate, config.message_burst, now),
            byte_tokens: TokenBucket::new(config.byte_rate, config.byte_burst, now),
            strikes: TokenBucket::new(
                config.message_rate.max(1.0),
                f64::from(config.flood_strikes).max(1.0),
                now,
            ),
            flooding: false,
        };
        let reason = session.read_loop().await;
        drop(reader);
        session.finish(reason).await;
        drop(guard);
    }
    .instrument(span)
    .await;
}

struct Session {
    shard: Rc<Shard>,
    conn: Connection,
    me: Rc<Member>,
    identity: Option<Identity>,
    connected_at: Instant,
    last_activity: Instant,
    /// When queued output last stopped making progress, if it has.
    write_stalled_since: Option<Instant>,
    timer_deadline: Instant,
    /// When the incomplete packet held between reads began, if one is held.
    partial_since: Option<Instant>,
    /// Broadcast notifications of the current read, not yet handed to the fan-out.
    broadcasts: BytesMut,
    /// How many notifications `broadcasts` holds.
    batched_broadcasts: u32,
    peer_ip: IpAddr,
    message_tokens: TokenBucket,
    byte_tokens: TokenBucket,
    /// Requests refused as rate limited, draining over time; empty means flooding.
    strikes: TokenBucket,
    flooding: bool,
}

/// Ready when the outbox (or TLS) has bytes and the socket can take them, or the outbox
/// overflowed.
async fn output_ready(me: &Member, conn: &Connection) -> io::Result<()> {
    if !conn.tls_pending() {
        poll_fn(|cx| me.outbox.borrow_mut().poll_pending(cx)).await;
        if me.outbox.borrow().overflowed() {
            return Ok(());
        }
    }
    conn.writable().await
}

impl Session {
    async fn read_loop(&mut self) -> CloseReason {
        let shared = self.shard.shared.clone();
        let sleep = tokio::time::sleep_until(self.timer_deadline);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                () = shared.shutdown.cancelled() => return CloseReason::Shutdown,
                ready = output_ready(&self.me, &self.conn) => {
                    if let Err(err) = ready {
                        return CloseReason::Io(err);
                    }
                    if self.me.outbox.borrow().overflowed() {
                        return CloseReason::SlowConsumer;
                    }
                    if let Err(err) = self.flush() {
                        return CloseReason::Io(err);
                    }
                }
                ready = self.conn.readable() => {
                    if let Err(err) = ready {
                        return CloseReason::Io(err);
                    }
                    if let Some(reason) = self.on_readable().await {
                        return reason;
                    }
                }
                () = &mut sleep => {
                    if let Some(reason) = self.on_timer() {
                        return reason;
                    }
                }
            }
            if sleep.deadline() != self.timer_deadline {
                sleep.as_mut().reset(self.timer_deadline);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut outbox = self.me.outbox.borrow_mut();
        let stats = &self.shard.stats;
        stats.queue_bytes.observe(outbox.queued() as f64);
        let written = self.conn.flush(&mut outbox)?;
        bump(&stats.bytes_out, written as u64);
        if let Some(accepted_at) = outbox.take_completed_since() {
            stats.delay(accepted_at.elapsed());
        }
        if outbox.is_empty() {
            self.write_stalled_since = None;
        } else if written > 0 || self.write_stalled_since.is_none() {
            let now = Instant::now();
            self.write_stalled_since = Some(now);
            self.timer_deadline = self
                .timer_deadline
                .min(now + self.shard.shared.config.write_timeout);
        }
        Ok(())
    }

    fn on_timer(&mut self) -> Option<CloseReason> {
        let config = &self.shard.shared.config;
        let now = Instant::now();
        if self.identity.is_none() && now >= self.connected_at + config.login_timeout {
            return Some(CloseReason::LoginTimeout);
        }
        if now >= self.last_activity + config.idle_timeout {
            return Some(CloseReason::IdleTimeout);
        }
        if let Some(since) = self.write_stalled_since {
            if now >= since + config.write_timeout {
                return Some(CloseReason::WriteTimeout);
            }
        }
        if let Some(since) = self.partial_since {
            if now >= since + config.packet_timeout {
                return Some(CloseReason::PacketTimeout);
            }
        }
        let mut next = self.last_activity + config.idle_timeout;
        if self.identity.is_none() {
            next = next.min(self.connected_at + config.login_timeout);
        }
        if let Some(since) = self.write_stalled_since {
            next = next.min(since + config.write_timeout);
        }
        if let Some(since) = self.partial_since {
            next = next.min(since + config.packet_timeout);
        }
        self.timer_deadline = next;
        None
    }

    async fn on_readable(&mut self) -> Option<CloseReason> {
        let mut buf = self.shard.take_read_buffer();
        let result = match self.conn.try_read(&mut buf) {
            Err(err) => Some(
                match err.get_ref().and_then(|e| e.downcast_ref::<TlsFailure>()) {
                    Some(tls) => CloseReason::Tls(tls.0.to_string()),
                    None => CloseReason::Io(err),
                },
            ),
            // An incomplete packet left in `buf` dies here: nothing half-sent is delivered.
            Ok(ReadOutcome::Closed) => Some(CloseReason::PeerClosed),
            Ok(ReadOutcome::Nothing) => None,
            Ok(ReadOutcome::Data(n)) => {
                bump(&self.shard.stats.bytes_in, n as u64);
                let now = Instant::now();
                self.last_activity = now;
                let (result, completed) = self.handle_packets(&mut buf).await;
                if result.is_none() {
                    self.conn.keep_partial(&buf);
                    self.track_partial(!buf.is_empty(), completed > 0, now);
                }
                result
            }
        };
        self.shard.return_read_buffer(buf);
        result
    }

    /// Starts, keeps or stops the clock on the packet held between reads. A packet must arrive
    /// completely within `packet_timeout` of the moment the previous one completed (or the
    /// first byte, for the first), which is what ends a slow-loris sender.
    fn track_partial(&mut self, partial_held: bool, packet_completed: bool, now: Instant) {
        if !partial_held {
            self.partial_since = None;
        } else if packet_completed || self.partial_since.is_none() {
            self.partial_since = Some(now);
            self.timer_deadline = self
                .timer_deadline
                .min(now + self.shard.shared.config.packet_timeout);
        }
    }

    /// Handles every complete packet in `buf`, leaving an incomplete tail. Returns why the session
    /// must end, if it must, and how many packets were handled.
    async fn handle_packets(&mut self, buf: &mut BytesMut) -> (Option<CloseReason>, usize) {
        let max_packet = self.shard.shared.config.max_packet;
        let mut handled = 0;
        let result = loop {
            match suda_protocol::decode(buf, max_packet) {
                Ok(Some(packet)) => {
                    handled += 1;
                    if let Some(reason) = self.handle(packet).await {
                        break Some(reason);
                    }
                }
                Ok(None) => break None,
                Err(err) => break Some(CloseReason::Malformed(err)),
            }
        };
        self.send_broadcasts().await;
        (result, handled)
    }

    async fn handle(&mut self, packet: Packet) -> Option<CloseReason> {
        self.shard.stats.packet_in(packet.packet_type());
        match packet {
            Packet::Ping { nonce } => self.reply(&Packet::Pong { nonce }),
            Packet::LoginReq { username, password } => self.login(&username, &password).await,
            Packet::BroadcastReq { text } => {
                let (result, message_id) = match self.broadcast(text) {
                    Ok(id) => (ResultCode::OK, id),
                    Err(code) => (code, 0),
                };
                self.reply(&Packet::BroadcastRes { result, message_id });
            }
            Packet::WhisperReq { to, text } => {
                let (result, message_id) = match self.whisper(&to, text).await {
                    Ok(id) => (ResultCode::OK, id),
                    Err(code) => (code, 0),
                };
                self.reply(&Packet::WhisperRes { result, message_id });
            }
            other => return Some(CloseReason::Unexpected(other.packet_type())),
        }
        self.flooding.then_some(CloseReason::Flooding)
    }

    /// Queues a response to this session. Past the queue limit the outbox marks itself
    /// overflowed and the read loop ends the session on its next turn.
    fn reply(&self, packet: &Packet) {
        if self.me.outbox.borrow_mut().push_packet(packet) == Pushed::Queued {
            self.shard.stats.packets_out(packet.packet_type(), 1);
        }
    }

    /// Leaves the server: name freed, no more deliveries, goodbye said, socket closed.
    async fn finish(mut self, reason: CloseReason) {
        let shared = self.shard.shared.clone();
        self.shard.stats.closed(reason.kind());
        match &reason {
            CloseReason::SlowConsumer | CloseReason::Flooding => {
                tracing::warn!(%reason, "disconnected");
            }
            _ => info!(%reason, "disconnected"),
        }
        let deadline = match reason {
            CloseReason::Shutdown => {
                let deadline = Instant::now() + shared.config.shutdown_timeout;
                self.deliver_until_flushed(deadline).await;
                deadline
            }
            _ => Instant::now() + CLOSE_LINGER,
        };
        self.shard.leave(&self.me);
        if let Some(identity) = &self.identity {
            shared.directory.release(&identity.name, self.me.id);
        }
        match reason.notice() {
            Some((code, text)) => self.me.outbox.borrow_mut().seal_with(code, &text),
            // rustls has queued an alert that tells the peer what went wrong.
            None if matches!(reason, CloseReason::Tls(_)) => {}
            None => return,
        }
        self.conn.close(&self.me.outbox, deadline).await;
    }

    /// During shutdown: keeps writing until every shard has queued its last messages.
    async fn deliver_until_flushed(&mut self, deadline: Instant) {
        loop {
            tokio::select! {
                biased;
                () = self.shard.flushed.cancelled() => return,
                () = tokio::time::sleep_until(deadline) => return,
                ready = output_ready(&self.me, &self.conn) => {
                    let failed = ready.is_err()
                        || self.me.outbox.borrow().overflowed()
                        || self.conn.flush(&mut self.me.outbox.borrow_mut()).is_err();
                    if failed {
                        return;
                    }
                }
            }
        }
    }
}
