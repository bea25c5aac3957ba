//! One benchmark connection as a task: connect, open the session, then publish within the window
//! and count what arrives until the coordinator says stop.
//!
//! A single task both writes and reads its socket. Writes are at most a window of small
//! messages, which the kernel's socket buffer takes at once, so the task is never stuck writing
//! while the server waits for it to read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::payload::{self, now_ns};
use crate::stats::Counters;
use crate::wire::{Dest, Event, Listen, Role, Wire, WireError};

/// How long connecting and opening one session may take before it counts as failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bytes one read takes. A connection's input buffer is allocated at twice this, and
/// [`make_room`] keeps it there.
const READ_BUFFER: usize = 8 * 1024;

/// Everything the connection tasks of a run share.
pub(crate) struct RunContext {
    pub(crate) server: SocketAddr,
    pub(crate) source_addrs: u8,
    pub(crate) keepalive: Duration,
    pub(crate) clients: usize,
    /// Rooms of the run (0 without), and members in each: client `c` is in room `c / members`.
    pub(crate) rooms: usize,
    pub(crate) members_per_room: usize,
    /// Room creators whose session has opened or failed; the other members wait for all of
    /// them, so no join can race the creation of its room.
    pub(crate) creators_settled: watch::Sender<usize>,
    pub(crate) seed: u64,
    pub(crate) counters: Counters,
    /// Limits how many connections are being opened at once.
    pub(crate) connect_slots: Semaphore,
    /// `Some(epoch ns)` once senders may start.
    pub(crate) go: watch::Receiver<Option<u64>>,
    /// Whether messages will flow once the run starts (every scenario but `connect`).
    pub(crate) traffic: bool,
    pub(crate) stop: CancellationToken,
}

/// What one connection does.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnPlan {
    /// Position among all connections of the run, for source address and shard choice.
    pub(crate) index: usize,
    pub(crate) role: Role,
    pub(crate) publish: Option<Publish>,
}

/// Whom a sender's messages go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    /// Every other client (fan-out).
    All,
    /// A random other client per message (whisper).
    RandomPeer,
    /// The other members of this room.
    Room(usize),
}

/// A publishing connection's share of the traffic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Publish {
    pub(crate) audience: Audience,
    pub(crate) messages: u64,
    pub(crate) size: usize,
    pub(crate) window: u32,
    /// With a rate: nanoseconds between this sender's messages, and its first one's offset.
    pub(crate) pacing: Option<(u64, u64)>,
}

/// Runs one connection until the run stops or the connection dies.
pub(crate) async fn drive<W: Wire>(plan: ConnPlan, mut wire: W, ctx: Arc<RunContext>) {
    let counters = &ctx.counters;
    let mut sender = plan.publish.map(|p| Sender::new(p, &plan, &ctx));
    let opened = open(&plan, &mut wire, &ctx).await;
    if let Some(Listen::Room { creator: true, .. }) = plan.role.listen {
        // Failed or not, this room's fate is settled; its joiners find out for themselves.
        ctx.creators_settled.send_modify(|settled| *settled += 1);
    }
    match opened {
        Ok(mut io) => {
            if ctx.traffic {
                io.prepare_for_traffic(plan.publish.as_ref());
            }
            counters.open.fetch_add(1, Ordering::Relaxed);
            exchange(&plan, &mut wire, &mut io, &ctx, sender.as_mut()).await;
            counters.open.fetch_sub(1, Ordering::Relaxed);
        }
        Err(Some(kind)) => {
            counters.connect_failed.fetch_add(1, Ordering::Relaxed);
            counters.error(kind);
        }
        Err(None) => {}
    }
    if sender.is_some_and(|s| !s.finished) {
        // Whatever it did not send is lost; the coordinator stops waiting for it.
        counters.publishers_finished.fetch_add(1, Ordering::Relaxed);
    }
    counters.wake.notify_one();
}

/// A connected socket and its buffers.
struct Io {
    stream: TcpStream,
    input: BytesMut,
    out: BytesMut,
}

impl Io {
    async fn flush(&mut self) -> std::io::Result<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// Reads more input; `Ok(false)` at end of stream.
    ///
    /// Cancel-safe, so it can be one branch of a `select!`: bytes are only ever added to
    /// `input`, which outlives the call.
    async fn fill(&mut self) -> std::io::Result<bool> {
        make_room(&mut self.input);
        Ok(self.stream.read_buf(&mut self.input).await? > 0)
    }

    /// Allocates and touches the memory this connection's traffic will use, before the run
    /// starts: the input buffer, and output room for a full window of messages. Left to the
    /// run, the first writes into that memory fault its pages in — and grow the allocator's
    /// heap — while the run is timed, on the generator's share of the CPU; in a whisper run,
    /// where every client sends its window at once, that was ~8% of the generator's time in
    /// the measured phase (`mprotect` and page faults in a `perf record` of the bench).
    fn prepare_for_traffic(&mut self, publish: Option<&Publish>) {
        touch_spare_capacity(&mut self.input);
        if let Some(publish) = publish {
            // A sender writes at most a window of messages at a time.
            let messages = u64::from(publish.window).min(publish.messages);
            let room = usize::try_from(messages)
                .unwrap_or(usize::MAX)
                .saturating_mul(publish.size + MESSAGE_FRAMING)
                .min(MAX_PREPARED_OUTPUT);
            self.out.reserve(room);
            touch_spare_capacity(&mut self.out);
        }
    }
}

/// Room for a message's framing on any wire: suda's header and recipient, RESP's `PUBLISH`
/// array, NATS's `PUB` line.
const MESSAGE_FRAMING: usize = 64;
/// Most output prepared per connection: a larger window still works, its buffer grows in the
/// run as it always did.
const MAX_PREPARED_OUTPUT: usize = 1024 * 1024;

/// Writes every byte of `buf`'s spare capacity once and leaves its contents as they were, so
/// that the pages behind it are faulted in now.
fn touch_spare_capacity(buf: &mut BytesMut) {
    let len = buf.len();
    buf.resize(buf.capacity(), 0);
    buf.truncate(len);
}

/// What a connection's input buffer is allocated at.
const INPUT_CAPACITY: usize = 2 * READ_BUFFER;

/// Makes room for the next read in `input`, whose front has been consumed.
///
/// `BytesMut::reserve(n)` reuses the consumed front only when the whole allocation, less the
/// bytes still held, is at least `n`; otherwise it reallocates at double the size. Reserving
/// as much as the whole allocation therefore reallocates whenever a read ends inside a
/// packet — nearly always under load — and every connection's buffer keeps doubling: with
/// 64 KiB buffers the bench spent much of a fan-out run zeroing fresh pages (35k page faults
/// in one run, against 6k with this policy; `perf stat -e page-faults`). Reserving half the
/// allocation keeps it, as long as less than half of it is a pending packet.
fn make_room(input: &mut BytesMut) {
    input.reserve(READ_BUFFER);
}

/// Connects and opens the session. `Err(None)` when the run stopped first, `Err(Some(kind))`
/// when it failed.
async fn open<W: Wire>(
    plan: &ConnPlan,
    wire: &mut W,
    ctx: &RunContext,
) -> Result<Io, Option<String>> {
    if let Some(Listen::Room { creator: false, .. }) = plan.role.listen {
        let mut settled = ctx.creators_settled.subscribe();
        tokio::select! {
            // The sender lives in `ctx`, so the wait only ends by the count being reached.
            _ = settled.wait_for(|&settled| settled >= ctx.rooms) => {}
            () = ctx.stop.cancelled() => return Err(None),
        }
    }
    let _slot = tokio::select! {
        slot = ctx.connect_slots.acquire() => slot.map_err(|_| None)?,
        () = ctx.stop.cancelled() => return Err(None),
    };
    let started = now_ns();
    let opening = handshake(
        ctx.server,
        plan.index,
        ctx.source_addrs,
        wire,
        |wire, out| {
            wire.open(out, plan.role);
            Ok(())
        },
        |event| match event {
            Event::Ready => Some(()),
            _ => None,
        },
    );
    let io = tokio::select! {
        result = tokio::time::timeout(HANDSHAKE_TIMEOUT, opening) => match result {
            Ok(opened) => opened.map_err(Some)?.0,
            Err(_) => return Err(Some("handshake timed out".to_owned())),
        },
        () = ctx.stop.cancelled() => return Err(None),
    };
    let ready = now_ns();
    let counters = &ctx.counters;
    counters
        .login_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .saturating_record((ready - started).max(1));
    counters.last_ready_ns.fetch_max(ready, Ordering::Relaxed);
    counters.connected.fetch_add(1, Ordering::Relaxed);
    counters.wake.notify_one();
    Ok(io)
}

/// Connects (as connection `index` of the run) and opens what `start` appends, answering the
/// server until `outcome` makes something of an event; a server error or the connection's end
/// fails it. Returns the connection and that outcome.
async fn handshake<W: Wire, T>(
    server: SocketAddr,
    index: usize,
    source_addrs: u8,
    wire: &mut W,
    start: impl FnOnce(&mut W, &mut BytesMut) -> Result<(), WireError>,
    mut outcome: impl FnMut(Event) -> Option<T>,
) -> Result<(Io, T), String> {
    let stream = crate::net::connect(server, index, source_addrs)
        .await
        .map_err(|err| format!("connect: {}", err.kind()))?;
    let mut io = Io {
        stream,
        input: BytesMut::with_capacity(INPUT_CAPACITY),
        out: BytesMut::new(),
    };
    start(wire, &mut io.out).map_err(|err| err.to_string())?;
    loop {
        while let Some(event) = wire
            .decode(&mut io.input, &mut io.out)
            .map_err(|err| err.to_string())?
        {
            if let Event::ServerError(reason) = event {
                return Err(reason);
            }
            if let Some(done) = outcome(event) {
                return Ok((io, done));
            }
        }
        // Written before waiting for more: the open may take several steps (suda logs in,
        // then enters its room), each sent in answer to the previous one's response.
        io.flush()
            .await
            .map_err(|err| format!("handshake write: {}", err.kind()))?;
        match io.fill().await {
            Ok(true) => {}
            Ok(false) => return Err("closed during handshake".to_owned()),
            Err(err) => return Err(format!("handshake read: {}", err.kind())),
        }
    }
}

/// Registers the account of `client` over a connection of its own (connection `index` of the
/// run), then closes it: `Ok(true)` when this created the account, `Ok(false)` when it existed.
pub(crate) async fn register<W: Wire>(
    server: SocketAddr,
    index: usize,
    source_addrs: u8,
    client: usize,
    mut wire: W,
) -> Result<bool, String> {
    let registration = handshake(
        server,
        index,
        source_addrs,
        &mut wire,
        |wire, out| wire.register(out, client),
        |event| match event {
            Event::Registered { created } => Some(created),
            _ => None,
        },
    );
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, registration).await {
        Ok(registered) => registered.map(|(_, created)| created),
        Err(_) => Err("registration timed out".to_owned()),
    }
}

/// What one read's worth of events added up to.
#[derive(Default)]
struct Tally {
    delivered: u64,
    self_delivered: u64,
    acked: u64,
    rejected: u64,
    /// Latency of each delivery, nanoseconds.
    latencies: Vec<u64>,
}

impl Tally {
    fn reset(&mut self) {
        let latencies = std::mem::take(&mut self.latencies);
        *self = Self {
            latencies,
            ..Self::default()
        };
        self.latencies.clear();
    }

    /// Hands the counts to the run's shared counters.
    fn report(&self, counters: &Counters, conn: usize, now: u64) {
        counters.record_latencies(conn, &self.latencies);
        counters.delivered(self.delivered, now);
        if self.self_delivered > 0 {
            counters
                .self_delivered
                .fetch_add(self.self_delivered, Ordering::Relaxed);
        }
        if self.acked > 0 {
            counters.acked.fetch_add(self.acked, Ordering::Relaxed);
            counters.last_activity_ns.fetch_max(now, Ordering::Relaxed);
        }
        if self.rejected > 0 {
            counters
                .rejected
                .fetch_add(self.rejected, Ordering::Relaxed);
        }
    }
}

/// Why a connection ended on the bench's side.
enum Ended {
    /// The server explained itself (suda `ERROR_NOTIFY`, NATS `-ERR`); its closing is no
    /// further error.
    ServerSaid(String),
    /// The input could not be understood.
    Malformed(WireError),
}

/// Publishes and receives until the run stops or the connection ends.
async fn exchange<W: Wire>(
    plan: &ConnPlan,
    wire: &mut W,
    io: &mut Io,
    ctx: &RunContext,
    mut sender: Option<&mut Sender>,
) {
    let counters = &ctx.counters;
    let mut go = ctx.go.clone();
    let mut go_ns = *go.borrow_and_update();
    let mut next_keepalive = Instant::now() + ctx.keepalive;
    // With room for a full read of deliveries, so that recording latencies does not grow the
    // vector while the run is timed.
    let mut tally = Tally {
        latencies: Vec::with_capacity(READ_BUFFER / 32),
        ..Tally::default()
    };
    loop {
        if let (Some(go_ns), Some(sender)) = (go_ns, sender.as_deref_mut()) {
            sender.fill(wire, &mut io.out, go_ns, counters);
        }
        if Instant::now() >= next_keepalive {
            wire.keepalive(&mut io.out);
            next_keepalive = Instant::now() + ctx.keepalive;
        }
        if !io.out.is_empty() {
            tokio::select! {
                written = io.flush() => if let Err(err) = written {
                    counters.error(format!("write: {}", err.kind()));
                    return;
                },
                () = ctx.stop.cancelled() => return,
            }
        }
        let due = match (go_ns, sender.as_deref()) {
            (Some(go_ns), Some(sender)) => sender.next_due(go_ns),
            _ => None,
        };
        let wake_at = due.map_or(next_keepalive, |ns| {
            next_keepalive.min(Instant::from_std(payload::instant_at(ns)))
        });
        tokio::select! {
            biased;
            () = ctx.stop.cancelled() => return,
            changed = go.changed(), if go_ns.is_none() => match changed {
                Ok(()) => go_ns = *go.borrow_and_update(),
                Err(_) => return,
            },
            read = io.fill() => {
                match read {
                    Ok(true) => {}
                    Ok(false) => {
                        if !ctx.stop.is_cancelled() {
                            counters.error("connection closed by server");
                        }
                        return;
                    }
                    Err(err) => {
                        if !ctx.stop.is_cancelled() {
                            counters.error(format!("read: {}", err.kind()));
                        }
                        return;
                    }
                }
                let now = now_ns();
                tally.reset();
                let outcome = drain(wire, io, plan.role, ctx, now, &mut tally);
                tally.report(counters, plan.index, now);
                if let Some(sender) = sender.as_deref_mut() {
                    sender.settle(&tally, counters);
                }
                match outcome {
                    Ok(()) => {}
                    Err(Ended::ServerSaid(reason)) => {
                        counters.error(reason);
                        return;
                    }
                    Err(Ended::Malformed(err)) => {
                        counters.error(err.to_string());
                        return;
                    }
                }
            }
            () = tokio::time::sleep_until(wake_at) => {}
        }
    }
}

/// Decodes every complete event in the input buffer into `tally`.
fn drain<W: Wire>(
    wire: &mut W,
    io: &mut Io,
    role: Role,
    ctx: &RunContext,
    now: u64,
    tally: &mut Tally,
) -> Result<(), Ended> {
    let counters = &ctx.counters;
    let room = match role.listen {
        Some(Listen::Room { room, .. }) => Some(room),
        _ => None,
    };
    while let Some(event) = wire
        .decode(&mut io.input, &mut io.out)
        .map_err(Ended::Malformed)?
    {
        match event {
            // Only a Redis subscriber sees its own client's broadcasts; suda and NATS never
            // send them, so they are set aside to keep expected counts equal on every target.
            Event::Delivery(Some(stamp)) if stamp.sender as usize == role.client => {
                tally.self_delivered += 1;
            }
            // A room message must reach its room's members and nobody else: one that arrives
            // elsewhere is a server error, not a delivery.
            Event::Delivery(Some(stamp))
                if room.is_some_and(|room| {
                    (stamp.sender as usize).checked_div(ctx.members_per_room) != Some(room)
                }) =>
            {
                counters.error("room message delivered outside its room");
            }
            Event::Delivery(Some(stamp)) => {
                tally.delivered += 1;
                tally.latencies.push(now.saturating_sub(stamp.sent_ns));
            }
            Event::Delivery(None) => {
                return Err(Ended::Malformed(WireError::malformed(
                    "payload",
                    "a delivered message carries no bench stamp",
                )));
            }
            Event::Acked(count) => tally.acked += u64::from(count),
            Event::Rejected { count, reason } => {
                // The connection goes on; the refused messages show up as loss and errors.
                tally.rejected += u64::from(count);
                counters.error(reason);
            }
            Event::ServerError(reason) => return Err(Ended::ServerSaid(reason)),
            Event::Ready | Event::Registered { .. } | Event::Ignored => {}
        }
    }
    Ok(())
}

/// A publishing connection's progress through its messages.
struct Sender {
    client: u32,
    audience: Audience,
    total: u64,
    window: u32,
    pacing: Option<(u64, u64)>,
    sent: u64,
    in_flight: u32,
    finished: bool,
    message: Vec<u8>,
    clients: usize,
    rng: fastrand::Rng,
}

impl Sender {
    fn new(publish: Publish, plan: &ConnPlan, ctx: &RunContext) -> Self {
        let client = plan.role.client;
        Self {
            client: client as u32,
            audience: publish.audience,
            total: publish.messages,
            window: publish.window,
            pacing: publish.pacing,
            sent: 0,
            in_flight: 0,
            finished: publish.messages == 0,
            message: payload::new_message(publish.size).expect("size validated with the config"),
            clients: ctx.clients,
            rng: fastrand::Rng::with_seed(
                ctx.seed ^ (client as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
        }
    }

    /// Appends as many messages as the window and the pacing allow.
    fn fill<W: Wire>(&mut self, wire: &mut W, out: &mut BytesMut, go_ns: u64, counters: &Counters) {
        let now = now_ns();
        let before = self.sent;
        while self.sent < self.total && self.in_flight < self.window {
            // With a rate, a message is stamped with when it was due, not when the window let
            // it go, so a server that falls behind shows as latency instead of hiding it.
            let stamp = match self.pacing {
                None => now,
                Some(_) => match self.due(go_ns) {
                    Some(due) if due <= now => due,
                    _ => break,
                },
            };
            payload::write_header(&mut self.message, stamp, self.client);
            let dest = match self.audience {
                Audience::All => Dest::All,
                Audience::RandomPeer => Dest::Client(self.random_peer()),
                Audience::Room(room) => Dest::Room(room),
            };
            wire.publish(out, dest, &self.message);
            self.sent += 1;
            self.in_flight += 1;
        }
        if self.sent > before {
            wire.end_batch(out);
            counters
                .published
                .fetch_add(self.sent - before, Ordering::Relaxed);
        }
    }

    /// When the next paced message is due, if pacing is what holds it back.
    fn next_due(&self, go_ns: u64) -> Option<u64> {
        if self.in_flight < self.window {
            self.due(go_ns)
        } else {
            None
        }
    }

    fn due(&self, go_ns: u64) -> Option<u64> {
        let (interval, offset) = self.pacing?;
        (self.sent < self.total).then(|| go_ns + offset + self.sent * interval)
    }

    /// Takes acknowledgements and refusals into account.
    fn settle(&mut self, tally: &Tally, counters: &Counters) {
        let settled = tally.acked + tally.rejected;
        self.in_flight = self
            .in_flight
            .saturating_sub(settled.min(u64::from(u32::MAX)) as u32);
        if !self.finished && self.sent == self.total && self.in_flight == 0 {
            self.finished = true;
            counters.publishers_finished.fetch_add(1, Ordering::Relaxed);
            counters.wake.notify_one();
        }
    }

    fn random_peer(&mut self) -> usize {
        let other = self.rng.usize(..self.clients - 1);
        if other >= self.client as usize {
            other + 1
        } else {
            other
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf, BufMut, BytesMut};

    use super::{INPUT_CAPACITY, make_room, touch_spare_capacity};

    /// Reads that fill the buffer and end inside a packet, over and over, as under load: the
    /// buffer keeps its allocation instead of doubling.
    #[test]
    fn the_input_buffer_keeps_its_allocation_when_reads_end_inside_packets() {
        let mut input = BytesMut::with_capacity(INPUT_CAPACITY);
        let allocated = input.capacity();
        for round in 0..1_000 {
            make_room(&mut input);
            assert_eq!(input.capacity(), allocated, "round {round}");
            // A read takes all the room it is given (`read_buf` fills the spare capacity)…
            let room = input.capacity() - input.len();
            input.put_bytes(b'x', room);
            // …and decoding consumes all but the start of a packet.
            let partial = 1 + round % 100;
            input.advance(input.len() - partial);
        }
    }

    #[test]
    fn touching_spare_capacity_keeps_contents_and_allocation() {
        let mut buf = BytesMut::with_capacity(INPUT_CAPACITY);
        buf.put_slice(b"pending packet");
        buf.advance(8);
        let capacity = buf.capacity();
        touch_spare_capacity(&mut buf);
        assert_eq!(&buf[..], b"packet");
        assert_eq!(buf.capacity(), capacity);
    }
}
