//! One client session: its state machine and the chat requests it serves.
//!
//! A session moves from *connected* (only `LOGIN_REQ` and `PING` are served) to *authenticated*
//! to *closing*. Each session is one task on the shard that accepted it; the task waits on
//! three things at once — the socket becoming readable, its outbox having something to write,
//! and its next deadline — so one session never needs a second task. A logged-in session that
//! stays quiet hibernates: its task ends until something wakes it (see `hibernate`).
//!
//! Within one read, every complete packet is handled before the socket is touched again, and the
//! broadcasts among them are encoded back to back into one buffer that crosses to the other
//! shards once, so a sender pipelining fifty messages costs its recipients one queue push.
//!
//! A session that took a resume token survives a dropped connection as *detached* for the grace
//! period, and continues on the connection that resumes it (see [`crate::resume`]).
//!
//! Request handlers live in `login`, `chat`, `accounts`, `resume`, `rooms`, `presence` and
//! `moderation`; why connections end, in `close`; what a resume replays (the replay log, and
//! history before it), in `backfill`.

/// Logs a `tracing` event at `$level` inside the session's span (`conn`: peer, session id,
/// user), as if the session's future were instrumented with it.
///
/// The span is built only for an event that will be recorded: a span kept alive for each
/// session would cost every idle connection ~360 bytes in the subscriber's registry.
macro_rules! session_event {
    ($session:expr, $level:ident, $($event:tt)+) => {
        if tracing::enabled!(tracing::Level::$level) {
            $session
                .span()
                .in_scope(|| tracing::event!(tracing::Level::$level, $($event)+));
        }
    };
}

mod accounts;
mod backfill;
mod chat;
mod close;
mod hibernate;
mod login;
mod moderation;
mod presence;
mod resume;
mod rooms;

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use suda_protocol::{Direction, Packet, ResultCode, WireStr};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use self::close::CloseReason;
pub(crate) use self::hibernate::Hibernating;
#[cfg(unix)]
pub(crate) use self::hibernate::wake_hibernating;
use crate::connection::{CLOSE_LINGER, Connection, ReadOutcome, TlsFailure};
use crate::limits::TokenBucket;
use crate::outbox::Pushed;
use crate::resume::Attach;
use crate::server::{ConnectionGuard, ReaderGuard};
use crate::shard::{Member, Shard};
use crate::stats::bump;

/// A session's id: unique across the server's lifetime (and, carrying the node id, a cluster's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Who a session is once logged in.
#[derive(Debug)]
struct Identity {
    name: Arc<str>,
    /// The name as it goes on the wire, shared by every notification this session sends.
    wire_name: WireStr,
    /// Whether the login proved the identity (an account's password, or a token).
    proven: bool,
    /// A server operator: named in the config, and proven.
    operator: bool,
}

/// Serves one accepted connection until it ends (or, for a resumable session, until its grace
/// period after the last connection ends).
///
/// A plain function returning the session's future: an `async fn` here would keep its
/// arguments beside that future for the session's whole life.
pub(crate) fn serve(
    shard: Rc<Shard>,
    stream: TcpStream,
    tls: Option<Box<rustls::ServerConnection>>,
    peer: SocketAddr,
    guard: ConnectionGuard,
    reader: ReaderGuard,
) -> impl std::future::Future<Output = ()> {
    let shared = shard.shared.clone();
    let id = SessionId(shared.session_ids.next());
    let now = Instant::now();
    let config = &shared.config;
    // Boxed, so that the session's state is not copied into its own future twice.
    let me = Member::new(id, config.send_queue_limit);
    me.set_ip(peer.ip());
    // Every session of a shard holds memory: a slab of 2^32 of them cannot exist.
    let key = u32::try_from(shard.open_session(&me)).expect("fewer than 2^32 sessions");
    let rates = &shared.chat_rates;
    let session = Box::new(Session {
        me,
        key,
        shard,
        identity: None,
        last_activity: now,
        timer_deadline: now + config.login_timeout.min(config.idle_timeout),
        awake: Some(Box::new(Awake {
            connected_at: Some(now),
            ..Awake::default()
        })),
        watching: Box::default(),
        peer_port: peer.port(),
        message_tokens: TokenBucket::new(rates.messages, now),
        byte_tokens: TokenBucket::new(rates.bytes, now),
        strikes: TokenBucket::new(rates.strikes, now),
        flooding: false,
        held_since: 0,
        resumable: None,
        deferred: RefCell::new(None),
        guard: Some(guard),
        reader: Some(reader),
    });
    session_event!(session, INFO, tls = tls.is_some(), "connected");
    session.run(Connection::new(stream, tls))
}

/// What only an awake session needs, boxed apart from the session: a hibernating session is
/// logged in, with nothing batched, half-read or stalled, so it holds none, and one woken
/// makes it again only when it needs it.
#[derive(Default)]
struct Awake {
    /// When the connection was made, until the login: the login timeout's start.
    connected_at: Option<Instant>,
    /// When queued output last stopped making progress, if it has.
    write_stalled_since: Option<Instant>,
    /// When the incomplete packet held between reads began, if one is held.
    partial_since: Option<Instant>,
    batch: ReadBatch,
}

/// What one read batches for the fan-out, handed on at the end of the read (or before
/// anything that must follow it).
#[derive(Default)]
struct ReadBatch {
    /// Broadcast (or one room's) notifications, not yet handed to the fan-out.
    broadcasts: BytesMut,
    /// How many notifications `broadcasts` holds.
    broadcast_count: u32,
    /// The room whose messages `broadcasts` holds; `None` when it holds broadcasts.
    room: Option<Arc<crate::rooms::Room>>,
    /// Whispers for sessions on other workers: each recipient's range of `whisper_packets`.
    whispers: Vec<(crate::directory::Route, std::ops::Range<u32>)>,
    /// Where those whispers are encoded, back to back.
    whisper_packets: BytesMut,
}

/// Why a session's read loop returned.
enum LoopExit {
    /// The connection must end (or move: a resume), for this reason.
    Close(CloseReason),
    /// The session was quiet and asked to hibernate, and nothing holds it awake.
    Hibernate,
}

/// What a session's loop woke for (see `Session::poll_wake`).
enum Wake {
    Attach(Box<Attach>),
    Output,
    Readable,
    Timer,
}

/// A response waiting for a commit, or a response queued behind one.
enum Deferred {
    Commit {
        ticket: suda_store::writer::Ticket,
        then: Packet,
        failed: Packet,
    },
    Reply(Packet),
}

/// Where connections that resume a session are handed to it.
type AttachChannel = (mpsc::Sender<Box<Attach>>, mpsc::Receiver<Box<Attach>>);

/// What a session that asked for a resume token keeps. Boxed: most sessions never ask, and
/// every idle one would carry its size.
struct Resumable {
    /// The resume token in force.
    token: String,
    /// Where resuming connections arrive.
    attach: AttachChannel,
    /// While detached: fires when a login takes the session over.
    evict: Option<tokio_util::sync::CancellationToken>,
}

struct Session {
    shard: Rc<Shard>,
    me: Rc<Member>,
    /// This session's key among its shard's sessions.
    /// (A `u32`, not a `usize`: the four bytes take this struct to a smaller allocation.)
    key: u32,
    identity: Option<Identity>,
    last_activity: Instant,
    timer_deadline: Instant,
    /// What only an awake session needs; dropped when it hibernates, made again when needed.
    awake: Option<Box<Awake>>,
    /// Folded names this session watches for presence changes.
    watching: Box<[Box<str>]>,
    /// The current connection's port; its address is the member's (`Member::ip`), kept there
    /// for IP bans: together the peer's address, without a second copy of the IP.
    peer_port: u16,
    message_tokens: TokenBucket,
    byte_tokens: TokenBucket,
    /// Requests refused as rate limited, draining over time; empty means flooding.
    strikes: TokenBucket,
    flooding: bool,
    /// The worker's cycle (as `flush_gate` counts them, modulo 255) in which output was first
    /// held, 0 when none is. (A byte: it fits beside `flooding` in what was padding.)
    held_since: u8,
    /// What makes the session resumable, once the client asked for a token.
    resumable: Option<Box<Resumable>>,
    /// Responses held back until the messages they acknowledge are committed.
    /// (Boxed: only strict durability defers, and an empty `Vec` would cost every session 16
    /// bytes more.)
    #[expect(
        clippy::box_collection,
        reason = "the box is 8 bytes in every session; the Vec it holds, 24"
    )]
    deferred: RefCell<Option<Box<Vec<Deferred>>>>,
    /// The current connection's slot in the connection limits.
    guard: Option<ConnectionGuard>,
    /// Held while the current connection may still produce messages (see shutdown).
    reader: Option<ReaderGuard>,
}

impl Identity {
    /// The name folded (ASCII lowercase): the key of the directory, rooms and sanctions.
    /// Made when needed (moderation, rooms, presence), not kept: every idle session would
    /// carry it.
    fn folded(&self) -> Box<str> {
        self.name.to_ascii_lowercase().into_boxed_str()
    }
}

impl Session {
    /// The span of this session's log events (see `session_event!`).
    fn span(&self) -> tracing::Span {
        let user = self.identity.as_ref().map(|identity| &*identity.name);
        tracing::info_span!("conn", peer = %self.peer(), session = %self.me.id, user)
    }
}

impl ReadBatch {
    /// Whether nothing waits in the batch.
    fn is_empty(&self) -> bool {
        self.broadcasts.is_empty() && self.whispers.is_empty()
    }
}

impl Session {
    /// Whether responses wait for commits (or behind them).
    fn has_deferred(&self) -> bool {
        self.deferred
            .borrow()
            .as_ref()
            .is_some_and(|deferred| !deferred.is_empty())
    }

    /// What only an awake session needs, made if the session has none yet.
    fn awake(&mut self) -> &mut Awake {
        self.awake.get_or_insert_with(Box::default)
    }

    /// This read's batch, made if the session has none yet.
    fn batch(&mut self) -> &mut ReadBatch {
        &mut self.awake().batch
    }

    /// This read's batch, if the session has one.
    fn batched(&self) -> Option<&ReadBatch> {
        self.awake.as_deref().map(|awake| &awake.batch)
    }

    /// When output stalled and when a held partial packet began, if they did.
    fn stalls(&self) -> (Option<Instant>, Option<Instant>) {
        self.awake.as_deref().map_or((None, None), |awake| {
            (awake.write_stalled_since, awake.partial_since)
        })
    }

    /// Tells the hibernation sweep whether this session may hibernate once quiet: logged in,
    /// on a plain connection. Kept on the member, where the sweep reads it.
    fn note_may_hibernate(&self, conn: &Connection) {
        self.me
            .may_hibernate
            .set(self.identity.is_some() && conn.is_plain());
    }

    /// The current connection's address.
    fn peer(&self) -> SocketAddr {
        SocketAddr::new(self.me.ip(), self.peer_port)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // However the session ends (or its task is dropped), its shard forgets it.
        self.shard.close_session(self.key as usize);
    }
}

/// Ready when the outbox (or TLS) has bytes and the socket can take them, or the outbox
/// overflowed. For a closing session: requests to end or hibernate are not waited for (one
/// may still arrive, from the shutdown's sweep, and must not keep this ready).
async fn output_ready(me: &Member, conn: &Connection) -> io::Result<()> {
    if !conn.tls_pending() {
        poll_fn(|cx| me.outbox.borrow_mut().poll_output(cx)).await;
        if me.outbox.borrow().overflowed() {
            return Ok(());
        }
    }
    conn.writable().await
}

/// The next connection that resumes this session, if it is resumable.
async fn next_attach(attach: Option<&mut AttachChannel>) -> Box<Attach> {
    match attach {
        Some((_, rx)) => match rx.recv().await {
            Some(attach) => attach,
            // Cannot happen while we hold the sender; wait forever rather than spin.
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Session {
    /// Serves connections until the session ends.
    ///
    /// An `async move` block rather than an `async fn`: an `async fn` copies its arguments
    /// into locals, and both copies would sit in every idle session's future.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep a second copy of its arguments"
    )]
    fn run(mut self: Box<Self>, mut conn: Connection) -> impl Future<Output = ()> {
        async move {
            loop {
                // Matched in place: a named result would stay in the future's state beside
                // everything that follows.
                let reason = match self.read_loop(&mut conn).await {
                    LoopExit::Close(reason) => reason,
                    LoopExit::Hibernate => match self.hibernate(conn) {
                        Ok(()) => return,
                        Err((session, awake)) => {
                            self = session;
                            conn = awake;
                            continue;
                        }
                    },
                };
                self.stay_awake();
                // No more messages can come from this connection.
                self.reader = None;
                // Boxed: what follows the end of a connection is rare and deep; inline, its
                // state (and the reason) would sit in every idle session's future.
                match Box::pin(self.after_connection(conn, reason)).await {
                    Some((session, next)) => {
                        self = session;
                        conn = next;
                    }
                    None => return,
                }
            }
        }
    }

    /// Acts on why a connection ended: hands it over to the session it resumes, takes over a
    /// resuming connection, waits detached for one, or ends the session. Returns the session
    /// and its next connection when it goes on.
    async fn after_connection(
        mut self: Box<Self>,
        conn: Connection,
        reason: CloseReason,
    ) -> Option<(Box<Self>, Connection)> {
        match reason {
            CloseReason::Resume(request) => match self.hand_over(conn, request).await {
                Ok(()) => None,
                Err(refused) => Some((self, refused)),
            },
            CloseReason::TakenOver(attach) => {
                session_event!(
                    self,
                    INFO,
                    "resumed on another connection; closing this one"
                );
                self.shard.stats.closed(CloseReason::Replaced.kind());
                self.drop_connection(conn, &CloseReason::Replaced);
                match self.adopt(*attach).await {
                    Some(adopted) => Some((self, adopted)),
                    None => {
                        self.end().await;
                        None
                    }
                }
            }
            reason if reason.is_drop() && self.try_detach() => {
                self.shard.stats.closed(reason.kind());
                session_event!(self, INFO, %reason, "connection lost; session detached, waiting for a resume");
                self.drop_connection(conn, &reason);
                match self.wait_for_resume().await {
                    Some(adopted) => Some((self, adopted)),
                    None => {
                        self.end().await;
                        None
                    }
                }
            }
            reason => {
                self.finish(conn, reason).await;
                None
            }
        }
    }

    /// Serves `conn` until it must end, and says why.
    ///
    /// A plain function returning an `async move` block, for the reason given at `run`: the
    /// copies of `self` and `conn` an `async fn` keeps would size every idle session.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep a second copy of its arguments"
    )]
    fn read_loop<'a>(
        &'a mut self,
        conn: &'a mut Connection,
    ) -> impl Future<Output = LoopExit> + 'a {
        async move {
            // Told to end while hibernating (by a moderator, or the shutdown's sweep).
            if self.me.outbox.borrow_mut().take_ejected() {
                return LoopExit::Close(self.ejection());
            }
            // Sessions are told of a shutdown through their outbox (`Shard::shut_down_sessions`);
            // one that began after that sweep must see it here.
            if self.shard.shared.shutdown.is_cancelled() {
                return LoopExit::Close(CloseReason::Shutdown);
            }
            // Bytes that arrived with the packet that brought this connection here (a resume).
            if conn.has_partial() {
                if let Some(reason) = Box::pin(self.on_readable(conn, false)).await {
                    return LoopExit::Close(reason);
                }
            }
            self.note_may_hibernate(conn);
            let mut sleep = std::pin::pin!(tokio::time::sleep_until(self.timer_deadline));
            loop {
                let wake = poll_fn(|cx| self.poll_wake(conn, sleep.as_mut(), cx)).await;
                match wake {
                    Err(err) => return LoopExit::Close(CloseReason::Io(err)),
                    Ok(Wake::Attach(attach)) => {
                        return LoopExit::Close(CloseReason::TakenOver(attach));
                    }
                    Ok(Wake::Output) => {
                        if self.me.outbox.borrow_mut().take_ejected() {
                            return LoopExit::Close(self.ejection());
                        }
                        if self.me.outbox.borrow().overflowed() {
                            return LoopExit::Close(CloseReason::SlowConsumer);
                        }
                        let asked = self.me.outbox.borrow_mut().take_hibernation_asked();
                        if asked && self.can_hibernate(conn) {
                            return match self.resume_wakes_hibernation() {
                                Some(attach) => LoopExit::Close(CloseReason::TakenOver(attach)),
                                None => LoopExit::Hibernate,
                            };
                        }
                        self.me.busy.set(true);
                        if let Err(err) = self.flush(conn) {
                            return LoopExit::Close(CloseReason::Io(err));
                        }
                    }
                    Ok(Wake::Readable) => {
                        self.me.busy.set(true);
                        // Boxed: handling packets is the deepest future a session has; inline, it
                        // would size every idle session's state. One allocation per read.
                        if let Some(reason) = Box::pin(self.on_readable(conn, true)).await {
                            return LoopExit::Close(reason);
                        }
                        // A login may have happened.
                        self.note_may_hibernate(conn);
                    }
                    Ok(Wake::Timer) => {
                        if let Some(reason) = self.on_timer() {
                            return LoopExit::Close(reason);
                        }
                    }
                }
                if sleep.deadline() != self.timer_deadline {
                    sleep.as_mut().reset(self.timer_deadline);
                }
            }
        }
    }

    /// Waits for the next thing the session must do, in priority order: a connection resuming
    /// it, output to write (or an overflow or ejection to act on), input to read, a deadline.
    ///
    /// One hand-written poll rather than a `select!` of futures: an idle session is parked
    /// here, and the futures a `select!` keeps (a waiter node each for readable, writable and
    /// shutdown) would size every idle session's state; polling readiness directly keeps the
    /// waker in the socket's own slots.
    fn poll_wake(
        &mut self,
        conn: &Connection,
        sleep: std::pin::Pin<&mut tokio::time::Sleep>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<Wake>> {
        use std::task::Poll;
        if let Some(resumable) = &mut self.resumable {
            if let Poll::Ready(Some(attach)) = resumable.attach.1.poll_recv(cx) {
                return Poll::Ready(Ok(Wake::Attach(attach)));
            }
        }
        let output = conn.tls_pending() || {
            let mut outbox = self.me.outbox.borrow_mut();
            outbox.poll_pending(cx).is_ready()
        };
        if output {
            let urgent = {
                let outbox = self.me.outbox.borrow();
                outbox.ejected() || outbox.overflowed() || outbox.hibernation_asked()
            };
            if urgent || (self.output_due(conn, cx) && conn.poll_write_ready(cx)?.is_ready()) {
                return Poll::Ready(Ok(Wake::Output));
            }
        }
        if conn.poll_read_ready(cx)?.is_ready() {
            return Poll::Ready(Ok(Wake::Readable));
        }
        if sleep.poll(cx).is_ready() {
            return Poll::Ready(Ok(Wake::Timer));
        }
        Poll::Pending
    }

    /// Whether queued output may be written now: once the worker has polled for I/O since it
    /// was first held (see `flush_gate`). TLS output still to be sent is never held.
    fn output_due(&mut self, conn: &Connection, cx: &std::task::Context<'_>) -> bool {
        let cycle = crate::flush_gate::cycle();
        if cycle == 0 || conn.tls_pending() {
            return true;
        }
        if self.held_since == 0 {
            self.held_since = cycle;
        } else if self.held_since != cycle {
            return true;
        }
        // Held (again, when polled for something else meanwhile: the count wraps, so a task
        // that ran late must not rely on having been held before).
        crate::flush_gate::hold(cx.waker());
        false
    }

    fn flush(&mut self, conn: &mut Connection) -> io::Result<()> {
        self.held_since = 0;
        let mut outbox = self.me.outbox.borrow_mut();
        let stats = &self.shard.stats;
        stats.queue_bytes.observe(outbox.queued() as f64);
        let written = conn.flush(&mut outbox)?;
        bump(&stats.bytes_out, written as u64);
        if let Some(accepted_at) = outbox.take_completed_since() {
            stats.delay(accepted_at.elapsed());
        }
        if outbox.is_empty() {
            if let Some(awake) = &mut self.awake {
                awake.write_stalled_since = None;
            }
        } else {
            let awake = self.awake.get_or_insert_with(Box::default);
            if written > 0 || awake.write_stalled_since.is_none() {
                let now = Instant::now();
                awake.write_stalled_since = Some(now);
                self.timer_deadline = self
                    .timer_deadline
                    .min(now + self.shard.shared.config.write_timeout);
            }
        }
        Ok(())
    }

    fn on_timer(&mut self) -> Option<CloseReason> {
        let config = &self.shard.shared.config;
        let now = Instant::now();
        // Only an awake session is not logged in (see `Awake`).
        let login_by = match (&self.identity, self.awake.as_deref()) {
            (None, Some(awake)) => awake.connected_at.map(|at| at + config.login_timeout),
            _ => None,
        };
        let (write_stalled_since, partial_since) = self.stalls();
        if login_by.is_some_and(|by| now >= by) {
            return Some(CloseReason::LoginTimeout);
        }
        if now >= self.last_activity + config.idle_timeout {
            return Some(CloseReason::IdleTimeout);
        }
        if let Some(since) = write_stalled_since {
            if now >= since + config.write_timeout {
                return Some(CloseReason::WriteTimeout);
            }
        }
        if let Some(since) = partial_since {
            if now >= since + config.packet_timeout {
                return Some(CloseReason::PacketTimeout);
            }
        }
        let mut next = self.last_activity + config.idle_timeout;
        if let Some(by) = login_by {
            next = next.min(by);
        }
        if let Some(since) = write_stalled_since {
            next = next.min(since + config.write_timeout);
        }
        if let Some(since) = partial_since {
            next = next.min(since + config.packet_timeout);
        }
        self.timer_deadline = next;
        None
    }

    /// Reads what the socket has (if `read`), then handles every complete packet, including any
    /// left from before.
    async fn on_readable(&mut self, conn: &mut Connection, read: bool) -> Option<CloseReason> {
        let mut buf = self.shard.take_read_buffer();
        let outcome = if read {
            conn.try_read(&mut buf)
        } else {
            conn.take_partial(&mut buf);
            Ok(ReadOutcome::Data(0))
        };
        let result = match outcome {
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
                let (mut result, completed) = self.handle_packets(&mut buf).await;
                match &mut result {
                    None => {
                        conn.keep_partial(&buf);
                        self.track_partial(!buf.is_empty(), completed > 0, now);
                    }
                    // What followed the RESUME_REQ belongs to the resumed session.
                    Some(CloseReason::Resume(request)) => {
                        request.pipelined = BytesMut::from(&buf[..]);
                    }
                    Some(_) => {}
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
            if let Some(awake) = &mut self.awake {
                awake.partial_since = None;
            }
            return;
        }
        let awake = self.awake();
        if packet_completed || awake.partial_since.is_none() {
            awake.partial_since = Some(now);
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
                    let Some(packet) = self.handle_now(packet) else {
                        continue;
                    };
                    if let Some(reason) = self.handle(packet).await {
                        break Some(reason);
                    }
                }
                Ok(None) => break None,
                Err(err) => break Some(CloseReason::Malformed(err)),
            }
        };
        self.flush_batched().await;
        if self.has_deferred() {
            Box::pin(self.release_deferred()).await;
        }
        (result, handled)
    }

    /// Handles `packet` on the spot if it needs no await (see [`Session::whisper_now`]);
    /// otherwise hands it back for [`Session::handle`].
    fn handle_now(&mut self, packet: Packet) -> Option<Packet> {
        if let Packet::WhisperReq { to, text } = &packet {
            let Some(accepted) = self.whisper_now(to, text) else {
                return Some(packet);
            };
            self.shard.stats.packet_in(packet.packet_type());
            self.acknowledge(accepted, |result, message_id| Packet::WhisperRes {
                result,
                message_id,
            });
            return None;
        }
        Some(packet)
    }

    async fn handle(&mut self, packet: Packet) -> Option<CloseReason> {
        self.shard.stats.packet_in(packet.packet_type());
        match packet {
            Packet::Ping { nonce } => self.reply(&Packet::Pong { nonce }),
            // The rarer requests are boxed so their futures do not size every session's state.
            Packet::LoginReq { username, password } => {
                if let Some(reason) = Box::pin(self.login(&username, &password)).await {
                    return Some(reason);
                }
            }
            Packet::BroadcastReq { text } => {
                let accepted = self.broadcast(text).await;
                self.acknowledge(accepted, |result, message_id| Packet::BroadcastRes {
                    result,
                    message_id,
                });
            }
            Packet::WhisperReq { to, text } => {
                let accepted = self.whisper(&to, text).await;
                self.acknowledge(accepted, |result, message_id| Packet::WhisperRes {
                    result,
                    message_id,
                });
            }
            Packet::RegisterReq { username, password } => {
                let result = Box::pin(self.register(&username, &password)).await;
                self.reply(&Packet::RegisterRes { result });
            }
            Packet::ChangePasswordReq {
                old_password,
                new_password,
            } => {
                let result = Box::pin(self.change_password(&old_password, &new_password)).await;
                self.reply(&Packet::ChangePasswordRes { result });
            }
            Packet::HistoryReq {
                channel,
                peer,
                before_id,
                limit,
            } => Box::pin(self.history(channel, &peer, before_id, limit)).await,
            Packet::SessionTokenReq => {
                let response = self.issue_token();
                self.reply(&response);
            }
            Packet::ResumeReq {
                username,
                token,
                last_message_id,
            } => {
                // A ban ends a detached session too, but a resume may race the ban.
                if self.identity.is_none() {
                    if let Some(ban) = self.ban_on_login(&username) {
                        self.reply(&Packet::ResumeRes {
                            result: ResultCode::BANNED,
                            session_id: 0,
                            token: WireStr::default(),
                            replayed: 0,
                        });
                        return Some(CloseReason::Moderated {
                            code: suda_protocol::ErrorCode::BANNED,
                            reason: ban,
                        });
                    }
                }
                let checked = Box::pin(self.check_resume(&username, &token, last_message_id)).await;
                if let Some(request) = checked {
                    return Some(CloseReason::Resume(request));
                }
            }
            Packet::LogoutReq => {
                let result = if self.identity.is_some() {
                    ResultCode::OK
                } else {
                    ResultCode::NOT_AUTHENTICATED
                };
                self.reply(&Packet::LogoutRes { result });
                if result.is_ok() {
                    return Some(CloseReason::Logout);
                }
            }
            other if other.packet_type().direction() == Direction::ClientToServer => {
                self.speaks_1_3();
                return Box::pin(self.handle_1_3(other)).await;
            }
            other => return Some(CloseReason::Unexpected(other.packet_type())),
        }
        self.flooding.then_some(CloseReason::Flooding)
    }

    /// Rooms, presence and moderation (protocol 1.3): rarer than chat, so boxed apart.
    async fn handle_1_3(&mut self, packet: Packet) -> Option<CloseReason> {
        match packet {
            Packet::CreateRoomReq {
                room,
                flags,
                password,
                topic,
            } => {
                let (result, room) = match self.create_room(&room, flags, &password, &topic).await {
                    Ok(name) => (ResultCode::OK, name),
                    Err(code) => (code, room),
                };
                self.reply(&Packet::CreateRoomRes { result, room });
            }
            Packet::JoinRoomReq { room, password } => self.join_room(&room, &password).await,
            Packet::LeaveRoomReq { room } => self.leave_room(&room).await,
            Packet::ListRoomsReq { after, limit } => self.list_rooms(&after, limit),
            Packet::RoomMembersReq { room, after, limit } => {
                self.room_members(&room, &after, limit);
            }
            Packet::RoomChatReq { room, text } => {
                let accepted = self.room_chat(&room, text).await;
                self.acknowledge(accepted, |result, message_id| Packet::RoomChatRes {
                    result,
                    message_id,
                });
            }
            Packet::RoomModerateReq {
                room,
                action,
                user,
                duration_s,
                text,
            } => {
                let result = self
                    .room_moderate(&room, action, &user, duration_s, &text)
                    .await;
                self.reply(&Packet::RoomModerateRes { result });
            }
            Packet::UserListReq { after, limit } => self.user_list(&after, limit),
            Packet::SetStatusReq { status, text } => {
                let result = self.set_status(status, &text).await;
                self.reply(&Packet::SetStatusRes { result });
            }
            Packet::WatchReq { watch, user } => {
                let answer = self.watch(watch, &user).await;
                self.reply(&answer);
            }
            Packet::ModerateReq {
                action,
                target,
                duration_s,
                reason,
            } => {
                let result = self.moderate(action, &target, duration_s, &reason).await;
                self.reply(&Packet::ModerateRes { result });
            }
            Packet::SystemNoticeReq { text } => {
                let answer = self.system_notice(text).await;
                self.reply(&answer);
            }
            other => return Some(CloseReason::Unexpected(other.packet_type())),
        }
        self.flooding.then_some(CloseReason::Flooding)
    }

    /// Queues a response to this session. Past the queue limit the outbox marks itself
    /// overflowed and the read loop ends the session on its next turn. Behind a response that
    /// waits for a commit, it waits too: responses leave in request order.
    fn reply(&self, packet: &Packet) {
        let mut deferred = self.deferred.borrow_mut();
        if let Some(deferred) = deferred.as_mut().filter(|deferred| !deferred.is_empty()) {
            deferred.push(Deferred::Reply(packet.clone()));
            return;
        }
        drop(deferred);
        if self.me.outbox.borrow_mut().push_packet(packet) == Pushed::Queued {
            self.shard.stats.packets_out(packet.packet_type(), 1);
        }
    }

    /// Answers an accepted (or refused) chat request: at once, or, in strict durability, once
    /// the message is committed.
    fn acknowledge(
        &self,
        accepted: Result<chat::Accepted, ResultCode>,
        response: impl Fn(ResultCode, u64) -> Packet,
    ) {
        match accepted {
            Ok(chat::Accepted {
                message_id,
                commit: Some(ticket),
            }) => self
                .deferred
                .borrow_mut()
                .get_or_insert_with(Box::default)
                .push(Deferred::Commit {
                    ticket,
                    then: response(ResultCode::OK, message_id),
                    failed: response(ResultCode::SERVER_BUSY, 0),
                }),
            Ok(chat::Accepted { message_id, .. }) => {
                self.reply(&response(ResultCode::OK, message_id));
            }
            Err(code) => self.reply(&response(code, 0)),
        }
    }

    /// Sends the responses that waited for commits, in order, as the commits complete.
    async fn release_deferred(&mut self) {
        let Some(deferred) = self.deferred.borrow_mut().take() else {
            return;
        };
        for entry in *deferred {
            let packet = match entry {
                Deferred::Reply(packet) => packet,
                Deferred::Commit {
                    ticket,
                    then,
                    failed,
                } => match ticket.await {
                    Ok(()) => then,
                    Err(err) => {
                        // Delivered but not stored: never acknowledge it as stored.
                        session_event!(self, WARN, %err, "history commit failed");
                        failed
                    }
                },
            };
            self.reply(&packet);
        }
    }

    /// Leaves the server: name freed, no more deliveries, goodbye said, socket closed.
    async fn finish(mut self, mut conn: Connection, reason: CloseReason) {
        let shared = self.shard.shared.clone();
        self.shard.stats.closed(reason.kind());
        match &reason {
            CloseReason::SlowConsumer | CloseReason::Flooding => {
                session_event!(self, WARN, %reason, "disconnected");
            }
            _ => session_event!(self, INFO, %reason, "disconnected"),
        }
        if matches!(reason, CloseReason::Shutdown) {
            let deadline = Instant::now() + shared.config.shutdown_timeout;
            self.deliver_until_flushed(&mut conn, deadline).await;
            // Everyone is leaving: nobody needs to hear about it, and other workers may no
            // longer be reading their inboxes.
            self.depart(false).await;
            self.leave();
            self.close_connection_until(conn, &reason, deadline).await;
        } else {
            self.depart(true).await;
            self.leave();
            self.close_connection(conn, &reason).await;
        }
        drop(self.guard.take());
    }

    /// Leaves every room and stops watching; with `announce`, the other members and the
    /// watchers are told.
    async fn depart(&mut self, announce: bool) {
        self.flush_batched().await;
        self.leave_all_rooms(announce).await;
        self.leave_presence(announce).await;
    }

    /// Makes the session unreachable: no more deliveries, name and token freed.
    fn leave(&mut self) {
        let shared = &self.shard.shared;
        self.shard.leave(&self.me);
        if let Some(identity) = &self.identity {
            shared.directory.release(&identity.name, self.me.id);
        }
        if let Some(resumable) = self.resumable.take() {
            shared.resume.remove(&resumable.token);
        }
    }

    /// Says goodbye on `conn` if `reason` calls for it, and closes it politely.
    async fn close_connection(&mut self, conn: Connection, reason: &CloseReason) {
        self.close_connection_until(conn, reason, Instant::now() + CLOSE_LINGER)
            .await;
    }

    /// Says goodbye on `conn` if there is one to say, as far as the socket takes it now, and
    /// drops it without lingering: the session goes on, and a resume must not wait.
    fn drop_connection(&mut self, mut conn: Connection, reason: &CloseReason) {
        if let Some((code, text)) = reason.notice() {
            let mut outbox = self.me.outbox.borrow_mut();
            outbox.seal_with(code, &text);
            let _ = conn.flush_now(&mut outbox);
        }
        drop(self.guard.take());
    }

    async fn close_connection_until(
        &mut self,
        conn: Connection,
        reason: &CloseReason,
        deadline: Instant,
    ) {
        if let Some((code, text)) = reason.notice() {
            self.me.outbox.borrow_mut().seal_with(code, &text);
        }
        if reason.lingers() {
            conn.close(&self.me.outbox, deadline).await;
        }
        drop(self.guard.take());
    }

    /// During shutdown: keeps writing until every shard has queued its last messages.
    async fn deliver_until_flushed(&mut self, conn: &mut Connection, deadline: Instant) {
        // One timer for the whole wait: one made per turn would be dropped before it could
        // fire whenever output is ready turn after turn.
        let mut expired = std::pin::pin!(tokio::time::sleep_until(deadline));
        loop {
            tokio::select! {
                biased;
                () = self.shard.flushed.cancelled() => return,
                () = &mut expired => return,
                ready = output_ready(&self.me, conn) => {
                    let failed = {
                        let mut outbox = self.me.outbox.borrow_mut();
                        ready.is_err() || outbox.overflowed() || conn.flush(&mut outbox).is_err()
                    };
                    if failed {
                        return;
                    }
                }
            }
        }
    }
}
