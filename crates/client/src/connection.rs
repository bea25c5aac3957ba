//! The task that owns one connection: its socket, buffers and pending requests.
//!
//! Handles send [`Request`]s over a bounded channel; the task encodes them into one write
//! buffer, writes whatever is queued in one call, decodes what the server sends from a reused
//! read buffer, answers requests through the [`Pending`] FIFO and forwards notifications to the
//! bounded [`Events`](crate::Events) channel. When that channel is full it stops reading (see
//! [`Events`](crate::Events) on backpressure) but keeps writing and keeps its timers.
//!
//! The task is generic over the [`Transport`] (plain TCP or TLS); nothing else in it knows which.
//!
//! The socket's life is [`State::drive`]; what outlives a socket (the request and event channels,
//! the pending FIFO, the session kept for resuming) is owned by [`Connection::run`]. With
//! reconnecting on, `run` loops: when `drive` returns a reason worth retrying, `recover` (in
//! `connection/recover.rs`) gets a new socket and the session back, and `drive` goes on with it;
//! the handles and the event stream notice no more than a few events and the requests that were
//! in flight.

mod recover;

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt as _;
use suda_protocol::{MAX_PACKET_LIMIT, Packet, ResultCode, decode, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

use crate::client::Shared;
use crate::config::ClientConfig;
use crate::error::{ClientError, ProtocolError};
use crate::event::{ChatMessage, Event};
use crate::moderation::ModerationNotice;
use crate::pending::{Completed, Pending, Reply};
use crate::presence::{self, Presence};
use crate::reconnect::{ReconnectPolicy, worth_retrying};
use crate::resume::{RECENT_IDS, RecentIds, Session};
use crate::rooms::{RoomEvent, RoomMessage};
use crate::transport::{Connector, Transport};

/// Bytes the read buffer makes room for before each read.
const READ_CHUNK: usize = 8 * 1024;
/// Requests wait in their channel (so callers feel the backpressure) while this many encoded
/// bytes are still unwritten, typically because the server is not reading.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// Most requests taken off the channel in one wake-up, so a flood of requests cannot starve
/// reading.
const MAX_BATCH: usize = 128;
/// Longest timeout honoured; anything longer is treated as this, so adding it to `now` cannot
/// overflow an `Instant`.
const MAX_WAIT: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// One request from a handle.
pub(crate) struct Request {
    /// The request packet, already checked to be encodable within `max_packet`.
    pub(crate) packet: Packet,
    /// Where its answer goes.
    pub(crate) reply: Reply,
    /// When the caller made it; a request waiting for a new connection gives up
    /// `request_timeout` after this.
    pub(crate) issued: Instant,
}

/// Everything the connection task owns.
pub(crate) struct Connection<S> {
    stream: S,
    requests: mpsc::Receiver<Request>,
    state: State,
    /// How to get a new connection; `None` when reconnecting is off.
    reconnect: Option<Reconnect<S>>,
}

/// What reconnecting needs besides the state.
struct Reconnect<S> {
    policy: ReconnectPolicy,
    connector: Connector<S>,
}

/// The connection's state apart from the socket and the request channel, which `drive` borrows
/// separately so that `select!` branches can use them side by side.
struct State {
    request_timeout: Duration,
    keepalive: Option<Duration>,
    shared: Arc<Shared>,
    read_buf: BytesMut,
    write_buf: BytesMut,
    pending: Pending,
    events: mpsc::Sender<Event>,
    /// A notification decoded while the event channel was full. Reading waits until it is
    /// delivered, which is how a slow application slows the connection down.
    stalled: Option<Event>,
    /// When something was last queued for sending; keep-alive pings count from here.
    last_queued: Instant,
    /// Whether any handle is left to send requests.
    requests_open: bool,
    /// Whether a successful login starts a [`Session`] (reconnecting is on).
    keeps_session: bool,
    /// The session to resume after a lost connection; set by a successful login when
    /// reconnecting is on.
    session: Option<Session>,
    /// Recent message ids, to drop a notification seen twice across a resume; only when
    /// reconnecting is on, since without it the server delivers each message exactly once.
    recent: Option<RecentIds>,
    /// A `LOGOUT_REQ` was sent: however the connection ends now, it is not reconnected.
    logging_out: bool,
    /// Requests made while reconnecting, oldest first, waiting for the new connection.
    held: VecDeque<Request>,
    /// Most requests held; beyond it, they wait in the channel.
    held_capacity: usize,
    /// Opt every login in to protocol 1.3 notifications ([`ClientConfig::opt_in`]).
    opt_in: bool,
    /// Whether the session has sent a protocol 1.3 request (and so gets 1.3 notifications); a
    /// new login after a reconnect opts in again then, even with `opt_in` off.
    spoke_v13: bool,
    /// The last `SET_STATUS_REQ` the application sent, to set again on a new login after a
    /// reconnect.
    status: Option<Packet>,
}

impl<S: Transport> Connection<S> {
    pub(crate) fn new(
        stream: S,
        config: ClientConfig,
        requests: mpsc::Receiver<Request>,
        events: mpsc::Sender<Event>,
        shared: Arc<Shared>,
        connector: Connector<S>,
    ) -> Self {
        let reconnect = config
            .reconnect
            .clone()
            .map(|policy| Reconnect { policy, connector });
        let keeps_session = reconnect.is_some();
        Self {
            stream,
            requests,
            reconnect,
            state: State {
                request_timeout: config.request_timeout.min(MAX_WAIT),
                keepalive: config.keepalive.map(|every| every.min(MAX_WAIT)),
                shared,
                read_buf: BytesMut::with_capacity(READ_CHUNK),
                write_buf: BytesMut::new(),
                pending: Pending::default(),
                events,
                stalled: None,
                last_queued: Instant::now(),
                requests_open: true,
                keeps_session,
                session: None,
                recent: keeps_session.then(|| RecentIds::new(RECENT_IDS)),
                logging_out: false,
                held: VecDeque::new(),
                held_capacity: config.command_capacity,
                opt_in: config.opt_in,
                spoke_v13: false,
                status: None,
            },
        }
    }

    /// Runs the connection, and with reconnecting on every connection after it, to the end;
    /// then tells every waiter why it ended.
    pub(crate) async fn run(self) {
        let Self {
            mut stream,
            mut requests,
            mut state,
            reconnect,
        } = self;
        loop {
            let reason = state.drive(&mut stream, &mut requests).await;
            tracing::debug!(%reason, "suda connection ended");
            let reconnect = match &reconnect {
                Some(reconnect) if state.may_reconnect(&reason) => reconnect,
                _ => {
                    state.finish(reason, Some(stream), requests).await;
                    return;
                }
            };
            drop(stream);
            match state.recover(reason, reconnect, &mut requests).await {
                Ok(new_stream) => stream = new_stream,
                Err(reason) => {
                    tracing::debug!(%reason, "suda client stops reconnecting");
                    state.finish(reason, None::<S>, requests).await;
                    return;
                }
            }
        }
    }
}

impl State {
    /// Serves the socket until the connection must end, and returns why.
    async fn drive<S: Transport>(
        &mut self,
        stream: &mut S,
        requests: &mut mpsc::Receiver<Request>,
    ) -> ClientError {
        let (mut reader, mut writer) = stream.split();
        let close = self.shared.close.clone();
        // A second sender, so that a `Permit` borrowed from it does not borrow `self` while a
        // branch handler needs `&mut self`.
        let events = self.events.clone();
        // After a resume, replayed notifications may already be buffered.
        if let Err(reason) = self.process_input() {
            return reason;
        }
        loop {
            if self.stalled.is_none() {
                self.read_buf.reserve(READ_CHUNK);
            }
            let taking = self.requests_open && self.write_buf.len() < WRITE_HIGH_WATER;
            let wake = self.next_wake();
            // Every branch is cancel-safe: `read_buf`/`write_buf` keep partial progress in the
            // buffers, `recv`/`reserve`/`closed` lose nothing when dropped.
            let step = tokio::select! {
                () = close.cancelled() => Err(ClientError::Closed),
                written = writer.write_buf(&mut self.write_buf), if !self.write_buf.is_empty() => {
                    match written {
                        Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                        Ok(_) => Ok(()),
                        Err(e) => Err(e.into()),
                    }
                }
                read = reader.read_buf(&mut self.read_buf), if self.stalled.is_none() => {
                    match read {
                        Ok(0) => Err(ClientError::Eof),
                        Ok(_) => self.process_input(),
                        // TLS reports a close without `close_notify` this way. Packets carry
                        // their lengths, so a cut never delivers half a packet: it means what an
                        // EOF means over TCP.
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ClientError::Eof),
                        Err(e) => Err(e.into()),
                    }
                }
                permit = events.reserve(), if self.stalled.is_some() => {
                    let stalled = self.stalled.take();
                    // An error means the application dropped `Events`: nobody wants the event.
                    if let (Ok(permit), Some(event)) = (permit, stalled) {
                        permit.send(event);
                    }
                    self.process_input()
                }
                request = requests.recv(), if taking => match request {
                    Some(request) => {
                        self.queue(request);
                        // Take what else is already waiting so that it leaves in the same write.
                        let mut taken = 1;
                        while taken < MAX_BATCH && self.write_buf.len() < WRITE_HIGH_WATER {
                            let Ok(request) = requests.try_recv() else { break };
                            self.queue(request);
                            taken += 1;
                        }
                        Ok(())
                    }
                    None => {
                        self.requests_open = false;
                        if self.events.is_closed() { Err(ClientError::Closed) } else { Ok(()) }
                    }
                },
                () = sleep_until(wake) => self.on_timer(),
                () = events.closed(), if !self.requests_open => Err(ClientError::Closed),
            };
            if let Err(reason) = step {
                return reason;
            }
        }
    }

    /// Whether the connection, which ended for `reason`, should be got back: only a logged-in
    /// session that did not log out, lost for a reason worth retrying.
    fn may_reconnect(&self, reason: &ClientError) -> bool {
        self.session.is_some() && !self.logging_out && worth_retrying(reason)
    }

    /// Encodes a request for the next write and starts waiting for its response.
    fn queue(&mut self, request: Request) {
        let Request { packet, reply, .. } = request;
        if matches!(packet, Packet::LogoutReq) {
            self.logging_out = true;
        }
        if is_v13(&packet) {
            self.spoke_v13 = true;
            if matches!(packet, Packet::SetStatusReq { .. }) {
                self.status = Some(packet.clone());
            }
        }
        // The handle checked encodability and size; re-checking is cheap and keeps a bad packet
        // from ever reaching the socket.
        match encode(&packet, &mut self.write_buf) {
            Ok(()) => {
                let now = Instant::now();
                self.pending
                    .push(&packet, now + self.request_timeout, Some(reply));
                self.last_queued = now;
            }
            Err(source) => {
                let _ = reply.send(Err(ClientError::Encode {
                    request: packet.packet_type(),
                    source,
                }));
            }
        }
    }

    /// Decodes and handles every complete packet in the read buffer, stopping early if a
    /// notification cannot be delivered yet.
    fn process_input(&mut self) -> Result<(), ClientError> {
        while self.stalled.is_none() {
            // Whatever the server's configured limit, it may send up to the protocol's maximum
            // (docs/PROTOCOL.md §1); the buffer still grows only as bytes arrive.
            let decoded =
                decode(&mut self.read_buf, MAX_PACKET_LIMIT).map_err(ProtocolError::from)?;
            let Some(packet) = decoded else { break };
            self.on_packet(packet)?;
        }
        Ok(())
    }

    fn on_packet(&mut self, packet: Packet) -> Result<(), ClientError> {
        tracing::trace!(packet = packet.packet_type().wire_name(), "received");
        match packet {
            Packet::BroadcastNotify {
                message_id,
                sent_at_ms,
                ref from,
                ref text,
            } => self.notify(message_id, || {
                Event::Broadcast(ChatMessage::from_wire(message_id, sent_at_ms, from, text))
            }),
            Packet::WhisperNotify {
                message_id,
                sent_at_ms,
                ref from,
                ref text,
            } => self.notify(message_id, || {
                Event::Whisper(ChatMessage::from_wire(message_id, sent_at_ms, from, text))
            }),
            Packet::RoomChatNotify {
                message_id,
                sent_at_ms,
                ref room,
                ref from,
                ref text,
            } => self.notify(message_id, || {
                Event::RoomChat(RoomMessage {
                    room: room.to_string_lossy().into_owned(),
                    message: ChatMessage::from_wire(message_id, sent_at_ms, from, text),
                })
            }),
            Packet::RoomEventNotify {
                event_id,
                sent_at_ms,
                ref room,
                kind,
                ref user,
                ref actor,
                ref text,
            } => self.notify(event_id, || {
                Event::RoomEvent(RoomEvent::from_wire(
                    event_id, sent_at_ms, room, kind, user, actor, text,
                ))
            }),
            Packet::SystemNoticeNotify {
                message_id,
                sent_at_ms,
                ref from,
                ref text,
            } => self.notify(message_id, || {
                Event::SystemNotice(ChatMessage::from_wire(message_id, sent_at_ms, from, text))
            }),
            // No id: neither recorded for a resume nor de-duplicated (see `Event::Presence`).
            Packet::PresenceNotify {
                ref user,
                status,
                ref text,
            } => self.deliver(Event::Presence(Presence::from_wire(user, status, text))),
            Packet::ModerationNotify {
                action,
                ref actor,
                expires_at_ms,
                ref reason,
            } => self.deliver(Event::Moderation(ModerationNotice::from_wire(
                action,
                actor,
                expires_at_ms,
                reason,
            ))),
            Packet::ErrorNotify { code, reason } => {
                return Err(ClientError::ServerClosed {
                    code,
                    reason: reason.to_string_lossy().into_owned(),
                });
            }
            // A `RESUME_RES` is only expected during a reconnect, which reads it itself: here
            // `complete` refuses it like any response nobody asked for.
            Packet::LoginRes { .. }
            | Packet::BroadcastRes { .. }
            | Packet::WhisperRes { .. }
            | Packet::Pong { .. }
            | Packet::SessionTokenRes { .. }
            | Packet::ResumeRes { .. }
            | Packet::LogoutRes { .. }
            | Packet::RegisterRes { .. }
            | Packet::ChangePasswordRes { .. }
            | Packet::HistoryRes { .. }
            | Packet::HistoryItem { .. }
            | Packet::CreateRoomRes { .. }
            | Packet::JoinRoomRes { .. }
            | Packet::LeaveRoomRes { .. }
            | Packet::ListRoomsRes { .. }
            | Packet::RoomMembersRes { .. }
            | Packet::RoomChatRes { .. }
            | Packet::RoomModerateRes { .. }
            | Packet::RoomItem { .. }
            | Packet::UserListRes { .. }
            | Packet::SetStatusRes { .. }
            | Packet::WatchRes { .. }
            | Packet::UserItem { .. }
            | Packet::ModerateRes { .. }
            | Packet::SystemNoticeRes { .. } => {
                let completed = self.pending.complete(&packet)?;
                return self.on_completed(completed);
            }
            Packet::LoginReq { .. }
            | Packet::BroadcastReq { .. }
            | Packet::WhisperReq { .. }
            | Packet::Ping { .. }
            | Packet::SessionTokenReq
            | Packet::ResumeReq { .. }
            | Packet::LogoutReq
            | Packet::RegisterReq { .. }
            | Packet::ChangePasswordReq { .. }
            | Packet::HistoryReq { .. }
            | Packet::CreateRoomReq { .. }
            | Packet::JoinRoomReq { .. }
            | Packet::LeaveRoomReq { .. }
            | Packet::ListRoomsReq { .. }
            | Packet::RoomMembersReq { .. }
            | Packet::RoomChatReq { .. }
            | Packet::RoomModerateReq { .. }
            | Packet::UserListReq { .. }
            | Packet::SetStatusReq { .. }
            | Packet::WatchReq { .. }
            | Packet::ModerateReq { .. }
            | Packet::SystemNoticeReq { .. } => {
                return Err(ProtocolError::UnexpectedPacket(packet.packet_type()).into());
            }
        }
        Ok(())
    }

    /// Acts on what a response means for the session.
    fn on_completed(&mut self, completed: Completed) -> Result<(), ClientError> {
        match completed {
            Completed::Answered => {}
            Completed::LoggedIn { username, password } => {
                // A new session: whatever an earlier one on this connection said does not count.
                self.spoke_v13 = false;
                self.status = None;
                if self.opt_in {
                    self.send_own(presence::opt_in_request());
                    self.spoke_v13 = true;
                }
                if self.keeps_session {
                    self.session = Some(Session::new(username, password));
                    self.request_token();
                }
            }
            Completed::Token { result, token } => {
                if let Some(session) = &mut self.session {
                    if result == ResultCode::OK {
                        session.set_token(token);
                    } else {
                        tracing::debug!(%result, "no session token: a lost connection will log in again");
                        session.clear_token();
                    }
                }
            }
            // The server closes the connection after this; ending it here first makes the end
            // ours, so it reads as `Closed` rather than as a lost connection.
            Completed::LoggedOut => return Err(ClientError::Closed),
        }
        Ok(())
    }

    /// Asks for a session token, for resuming after a lost connection. Nobody waits for the
    /// answer but this task.
    fn request_token(&mut self) {
        self.send_own(Packet::SessionTokenReq);
    }

    /// On a new login after a reconnect: opts the new session in to protocol 1.3 notifications
    /// if the old one was (or the application always wants it), setting the status the
    /// application set last, or online.
    fn restore_status(&mut self) {
        if self.opt_in || self.spoke_v13 {
            let status = self.status.clone().unwrap_or_else(presence::opt_in_request);
            self.send_own(status);
            self.spoke_v13 = true;
        }
    }

    /// Queues a request the connection makes on its own: nobody waits for the answer.
    fn send_own(&mut self, request: Packet) {
        if encode(&request, &mut self.write_buf).is_ok() {
            let now = Instant::now();
            self.pending
                .push(&request, now + self.request_timeout, None);
            self.last_queued = now;
        }
    }

    /// Records a notification as received and delivers it, unless it is a duplicate of one
    /// delivered before a resume.
    fn notify(&mut self, message_id: u64, event: impl FnOnce() -> Event) {
        if let Some(session) = &mut self.session {
            session.saw(message_id);
        }
        if let Some(recent) = &mut self.recent {
            if !recent.insert(message_id) {
                tracing::debug!(message_id, "dropped a duplicate notification");
                return;
            }
        }
        self.deliver(event());
    }

    fn deliver(&mut self, event: Event) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => self.stalled = Some(event),
            // The application dropped `Events`, saying it does not want notifications.
            Err(TrySendError::Closed(_)) => {}
        }
    }

    /// When the timer branch must wake: the oldest request's deadline or the next keep-alive.
    fn next_wake(&self) -> Option<Instant> {
        let deadline = self.pending.oldest_deadline().map(|(at, _)| at);
        let keepalive = self.keepalive.map(|every| self.last_queued + every);
        match (deadline, keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timer(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        if let Some((deadline, request)) = self.pending.oldest_deadline() {
            if now >= deadline {
                return Err(ClientError::Timeout {
                    request,
                    after: self.request_timeout,
                });
            }
        }
        if self
            .keepalive
            .is_some_and(|every| now >= self.last_queued + every)
        {
            let ping = Packet::Ping {
                nonce: self.shared.next_nonce(),
            };
            encode(&ping, &mut self.write_buf).map_err(|source| ClientError::Encode {
                request: ping.packet_type(),
                source,
            })?;
            self.pending.push(&ping, now + self.request_timeout, None);
            self.last_queued = now;
        }
        Ok(())
    }

    /// Tells everyone why the connection ended: pending and queued requests, later requests
    /// (through `Shared`), and the event stream, after the events it has not seen yet.
    async fn finish<S: Transport>(
        mut self,
        reason: ClientError,
        stream: Option<S>,
        mut requests: mpsc::Receiver<Request>,
    ) {
        // Set before anything can observe the end, so a handle woken by a closed channel or a
        // dropped reply always finds the reason.
        self.shared.set_disconnect(reason.clone());
        self.shared.set_connected(false);
        self.pending.fail_all(&reason);
        for request in self.held.drain(..) {
            let _ = request.reply.send(Err(reason.clone()));
        }
        if let Some(mut stream) = stream {
            if matches!(reason, ClientError::Closed) {
                // An orderly close from this side: over TLS, `close_notify` tells the server
                // the stream was not cut short. Best effort and never waited for (the alert fits
                // any socket buffer that is not full), so `close` cannot hang on a server that
                // stopped reading.
                let _ = stream.shutdown().now_or_never();
            }
        }
        requests.close();
        while let Ok(request) = requests.try_recv() {
            let _ = request.reply.send(Err(reason.clone()));
        }
        // `Client::close` returns once this is gone, i.e. after the socket is closed.
        drop(requests);

        if let Some(event) = self.stalled.take() {
            if self.events.send(event).await.is_err() {
                return;
            }
        }
        if let ClientError::ServerClosed { code, reason } = &reason {
            let closing = Event::ServerClosing {
                code: *code,
                reason: reason.clone(),
            };
            if self.events.send(closing).await.is_err() {
                return;
            }
        }
        let _ = self.events.send(Event::Disconnected(reason)).await;
    }
}

/// Whether `packet` is a request of protocol 1.3, which opts the session in to 1.3
/// notifications (its type is in `0x0400..=0x06FF`).
fn is_v13(packet: &Packet) -> bool {
    (0x0400..=0x06FF).contains(&(packet.packet_type() as u16))
}

/// Sleeps until `at`, or forever when there is nothing to wake for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
