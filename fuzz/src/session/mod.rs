//! The `session` target: one real server, driven over real sockets by arbitrary sequences of
//! operations on one to four connections, and checked against a model of the session rules of
//! `docs/PROTOCOL.md` (§4 results, §5 errors, §6 states, §7 ordering and delivery, §13 rooms and
//! presence).
//!
//! The model knows exactly what the server must answer because the harness serialises whatever
//! could race: before it sends anything on one connection it waits for every answer still due on
//! the others, so the server sees the connections' requests in the order the model applied them.
//! Within one connection requests are pipelined freely. The bytes sent on a connection are framed
//! by the model with `suda_protocol::decode`, exactly as the server frames them, so raw blobs and
//! malformed packets are modelled too: the server must answer every packet before the first
//! malformed one, in order, then send `ERROR_NOTIFY` with the right code and close.
//!
//! Checked for every input: every byte the server sends decodes; each response is the one the
//! model expects, in request order; every notification the model expects arrives, in order, and
//! nothing else does; `message_id`s and `session_id`s are non-zero exactly on success, unique, and
//! increasing in the order the server accepted them; a name is free again once its connection
//! ends, even when it ends with a reset; and afterwards a fresh connection still logs in and gets
//! `PONG` for `PING`. Nothing may take longer than [`IO_TIMEOUT`]: a hang fails the input.
//!
//! Submodules: `input`, the `arbitrary` input types and the bytes each operation sends;
//! `accounts`, what the requests of protocol versions 1.1 and 1.2 must get here; `rooms`, the
//! model of protocol 1.3 (rooms, presence, operators' requests).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use suda_protocol::{
    Direction, ErrorCode, MAX_PACKET_LIMIT, MAX_USERNAME_LEN, Packet, PacketType, ResultCode,
    WireStr, decode,
};
use suda_server::config::StoreKind;
use suda_server::{Config, Server};
use tokio_util::sync::CancellationToken;

mod accounts;
mod input;
mod rooms;

pub use input::{
    AccountOp, Cursor, Malformed, NAMES, Name, Op, PresenceOp, ROOMS, RoomName, RoomOp, Secret,
    SessionInput, Text, Topic,
};

use accounts::{account_refusals, refusal_of};
use input::{Limits, encoded, op_bytes};

/// Longest the harness waits for anything the server owes it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// Operations of one input that are carried out; the rest are ignored. Keeps an input fast and
/// keeps the bytes queued to an unread connection far below the server's send-queue limit.
pub const MAX_OPS: usize = 64;
/// Connections open at once, at most: one more than a room holds.
const MAX_CONNECTIONS: u8 = 4;
/// The name the liveness probe logs in with after each input.
const PROBE_NAME: &str = "probe";

/// The running server shared by every input of the process.
pub struct Harness {
    addr: SocketAddr,
    max_packet: usize,
    max_text: usize,
    max_rooms: usize,
    max_rooms_per_user: usize,
    max_room_members: usize,
    max_watch: usize,
    /// Largest session id seen so far.
    session_floor: AtomicU64,
    /// Largest message id seen so far.
    message_floor: AtomicU64,
}

/// Starts the server on first use: one worker, port 0, on a thread of its own for the rest of
/// the process. A panic anywhere in it aborts the process, which libFuzzer reports as a crash of
/// the input being run.
pub fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        // Limits that depend on the clock are off, so that the model can say exactly what
        // every request gets; so is everything that outlives a connection. The rest is the
        // default configuration.
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 1,
            message_rate: 0.0,
            byte_rate: 0.0,
            max_connections_per_ip: 0,
            connection_rate_per_ip: 0.0,
            login_backoff: Duration::ZERO,
            // No storage (no accounts, no history, nothing written to disk) and no resume: every
            // connection's end frees its name at once, as in protocol version 1.
            store: StoreKind::None,
            registration: false,
            resume_grace: Duration::ZERO,
            // Room and watch limits small enough for a few connections to reach them; room
            // members one below the connection count, so that a full room still leaves someone
            // outside to check that room traffic never reaches a non-member.
            max_rooms: 3,
            max_rooms_per_user: 2,
            max_room_members: 3,
            max_watch: 2,
            ..Config::default()
        };
        let (max_packet, max_text) = (config.max_packet, config.max_text);
        let (max_rooms, max_rooms_per_user) = (config.max_rooms, config.max_rooms_per_user);
        let (max_room_members, max_watch) = (config.max_room_members, config.max_watch);
        let server = Server::bind(config).expect("start the server");
        let addr = server.local_addr().expect("server address");
        std::thread::Builder::new()
            .name("suda-fuzz-server".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                // Never cancelled: the server lives as long as the fuzzing process.
                let result = runtime.block_on(server.run(CancellationToken::new()));
                panic!("the server stopped on its own: {result:?}");
            })
            .expect("server thread");
        Harness {
            addr,
            max_packet,
            max_text,
            max_rooms,
            max_rooms_per_user,
            max_room_members,
            max_watch,
            session_floor: AtomicU64::new(0),
            message_floor: AtomicU64::new(0),
        }
    })
}

/// Runs one input against the shared server, panicking on any violated property.
pub fn check_session(input: &SessionInput<'_>) {
    let harness = harness();
    let connections = 1 + usize::from(input.connections % MAX_CONNECTIONS);
    let mut world = World::new(harness, connections);
    for (index, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        world.step = Step(Some(index));
        world.apply(op);
    }
    world.finish();
}

/// Who a connection is logged in as, in the model.
#[derive(Debug, Clone)]
struct Identity {
    /// The name folded to lowercase, as the directory compares it.
    key: Vec<u8>,
    /// As typed, which is how notifications carry it.
    wire: Vec<u8>,
}

/// What a request must get: `OK`, or one of the refusals that apply to it. The protocol does not
/// say which check comes first when several fail, so any of them will do; a refused request
/// changes nothing, so the model stays exact either way.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict<T> {
    Ok(T),
    Refused(Vec<ResultCode>),
}

impl<T> Verdict<T> {
    fn new(refusals: Vec<ResultCode>, ok: impl FnOnce() -> T) -> Self {
        if refusals.is_empty() {
            Self::Ok(ok())
        } else {
            Self::Refused(refusals)
        }
    }

    fn allows(&self, result: ResultCode) -> bool {
        match self {
            Self::Ok(_) => result == ResultCode::OK,
            Self::Refused(refusals) => refusals.contains(&result),
        }
    }
}

/// A response (or the final `ERROR_NOTIFY`) the model expects on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    Pong(u64),
    Login(Verdict<()>),
    /// On success, the ticket of the message in [`World::messages`].
    Broadcast(Verdict<usize>),
    Whisper(Verdict<usize>),
    /// `LOGOUT_RES`; on success the server then closes without `ERROR_NOTIFY`.
    Logout(Verdict<()>),
    /// A refusal of the given response type, every other field empty or zero.
    Refusal(PacketType, Vec<ResultCode>),
    /// `ROOM_CHAT_RES`, like `BROADCAST_RES`.
    RoomChat(Verdict<usize>),
    /// Exactly one of these packets: a response whose every field the model knows (each
    /// refusal that applies, or the success), or an item of a page.
    Exact(Vec<Packet>),
    Error(ErrorCode),
}

/// A notification the model expects on a connection: the packet with its id and time zeroed
/// (see [`split_notify`]), and the ticket of its id.
#[derive(Debug, Clone)]
struct ExpectedNotify {
    packet: Packet,
    ticket: usize,
}

/// One client connection and what the model expects of it.
struct Conn {
    stream: TcpStream,
    /// Received bytes not yet decoded.
    rx: BytesMut,
    /// Sent bytes the model has not framed yet (an incomplete packet).
    unframed: BytesMut,
    /// The model says the server is closing this connection.
    closing: bool,
    /// ... and says why with `ERROR_NOTIFY` (not after a logout).
    expect_error: bool,
    /// `ERROR_NOTIFY` has arrived.
    got_error: bool,
    /// The server has closed its side.
    eof: bool,
    identity: Option<Identity>,
    expected: VecDeque<Expected>,
    /// Chat and room notifications, in the one order they must arrive in.
    notifies: VecDeque<ExpectedNotify>,
    /// `PRESENCE_NOTIFY`s, in order. Kept apart from `notifies`: the protocol orders a sender's
    /// messages and a member's room actions, not a presence change relative to them (a status
    /// change goes out at once, while the sender's messages of the same read are still batched).
    presence: VecDeque<Packet>,
    /// The connection has sent a protocol 1.3 request, so it may be sent 1.3 notifications.
    modern: bool,
    /// Folded names of the rooms the session is in, in the order it joined them.
    rooms: Vec<Vec<u8>>,
    /// Folded names the session watches.
    watching: Vec<Vec<u8>>,
    /// The away message, when the session is away.
    away: Option<Vec<u8>>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Self {
        Self {
            stream: connect(addr),
            rx: BytesMut::new(),
            unframed: BytesMut::new(),
            closing: false,
            expect_error: false,
            got_error: false,
            eof: false,
            identity: None,
            expected: VecDeque::new(),
            notifies: VecDeque::new(),
            presence: VecDeque::new(),
            modern: false,
            rooms: Vec::new(),
            watching: Vec::new(),
            away: None,
        }
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|err| panic!("cannot connect to the server at {addr}: {err}"));
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    stream
}

/// Which operation of the input is being carried out, for failure messages.
#[derive(Debug, Clone, Copy)]
struct Step(Option<usize>);

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(index) => write!(f, "op {index}"),
            None => f.write_str("outside the ops"),
        }
    }
}

/// The model of the server plus the connections of one input.
struct World<'h> {
    harness: &'h Harness,
    conns: Vec<Conn>,
    /// Online names (folded) and the connection holding each.
    online: HashMap<Vec<u8>, usize>,
    /// Rooms by folded name.
    rooms: BTreeMap<Vec<u8>, rooms::RoomModel>,
    /// Message id of each accepted message, by ticket, once its response has arrived; `None`
    /// for a room event (whose id only its recipients see).
    messages: Vec<Option<u64>>,
    /// Tickets of room events.
    events: HashSet<usize>,
    /// `(ticket, message_id)` of every notification received.
    notified: Vec<(usize, u64)>,
    session_ids: HashSet<u64>,
    session_floor: u64,
    message_floor: u64,
    /// Where in the input we are, for failure messages.
    step: Step,
}

impl<'h> World<'h> {
    fn limits(&self) -> Limits {
        Limits {
            max_packet: self.harness.max_packet,
            max_text: self.harness.max_text,
        }
    }

    fn new(harness: &'h Harness, connections: usize) -> Self {
        Self {
            harness,
            conns: (0..connections).map(|_| Conn::open(harness.addr)).collect(),
            online: HashMap::new(),
            rooms: BTreeMap::new(),
            messages: Vec::new(),
            events: HashSet::new(),
            notified: Vec::new(),
            session_ids: HashSet::new(),
            session_floor: harness.session_floor.load(Ordering::Relaxed),
            message_floor: harness.message_floor.load(Ordering::Relaxed),
            step: Step(None),
        }
    }

    fn apply(&mut self, op: &Op<'_>) {
        let conn = match op {
            Op::Login { conn, .. }
            | Op::Broadcast { conn, .. }
            | Op::Whisper { conn, .. }
            | Op::Ping { conn, .. }
            | Op::Malformed { conn, .. }
            | Op::Raw { conn, .. }
            | Op::Reconnect { conn }
            | Op::Abort { conn }
            | Op::Logout { conn }
            | Op::Account { conn, .. }
            | Op::Room { conn, .. }
            | Op::Presence { conn, .. }
            | Op::Operator { conn, .. } => usize::from(*conn) % self.conns.len(),
        };
        // Whatever the other connections still owe must arrive first, so that the server sees
        // this operation after theirs, as the model does.
        for other in 0..self.conns.len() {
            if other != conn {
                self.settle(other);
            }
        }
        if self.conns[conn].closing {
            self.settle(conn);
        }
        match op {
            Op::Reconnect { .. } => {
                self.close_politely(conn);
                self.conns[conn] = Conn::open(self.harness.addr);
            }
            Op::Abort { .. } => self.abort(conn),
            _ => {
                let bytes = op_bytes(op, self.limits());
                self.send(conn, &bytes);
            }
        }
    }

    /// Applies `bytes` to the model of connection `conn`, then sends them.
    fn send(&mut self, conn: usize, bytes: &[u8]) {
        let max_packet = self.harness.max_packet;
        self.conns[conn].unframed.extend_from_slice(bytes);
        while !self.conns[conn].closing {
            match decode(&mut self.conns[conn].unframed, max_packet) {
                Ok(Some(packet)) => self.model(conn, packet),
                Ok(None) => break,
                Err(err) => self.model_close(conn, err.code()),
            }
        }
        let closing = self.conns[conn].closing;
        let step = self.step;
        if let Err(err) = self.conns[conn].stream.write_all(bytes) {
            // Once the server has stopped reading, what follows may well be refused.
            assert!(
                closing,
                "{step}, conn {conn}: sending failed but the server had no reason to close: {err}"
            );
        }
    }

    /// What the server does with one packet from `conn`, in the model.
    fn model(&mut self, conn: usize, packet: Packet) {
        let expected = match packet {
            Packet::Ping { nonce } => Expected::Pong(nonce),
            Packet::LoginReq { username, .. } => Expected::Login(self.model_login(conn, &username)),
            Packet::BroadcastReq { text } => Expected::Broadcast(self.model_broadcast(conn, &text)),
            Packet::WhisperReq { to, text } => {
                Expected::Whisper(self.model_whisper(conn, &to, &text))
            }
            Packet::LogoutReq => {
                let c = &mut self.conns[conn];
                match c.identity {
                    Some(_) => {
                        c.expected.push_back(Expected::Logout(Verdict::Ok(())));
                        c.closing = true;
                        self.depart(conn);
                    }
                    None => c.expected.push_back(Expected::Logout(Verdict::Refused(vec![
                        ResultCode::NOT_AUTHENTICATED,
                    ]))),
                }
                return;
            }
            packet if packet.packet_type().direction() == Direction::ServerToClient => {
                self.model_close(conn, ErrorCode::UNEXPECTED_PACKET);
                return;
            }
            packet if (0x0400..0x0700).contains(&(packet.packet_type() as u16)) => {
                self.model_1_3(conn, packet);
                return;
            }
            packet => {
                let logged_in = self.conns[conn].identity.is_some();
                let (response, refusals) = account_refusals(&packet, logged_in);
                Expected::Refusal(response, refusals)
            }
        };
        self.conns[conn].expected.push_back(expected);
    }

    fn model_close(&mut self, conn: usize, code: ErrorCode) {
        let c = &mut self.conns[conn];
        c.closing = true;
        c.expect_error = true;
        c.expected.push_back(Expected::Error(code));
        self.depart(conn);
    }

    fn model_login(&mut self, conn: usize, username: &WireStr) -> Verdict<()> {
        let name = username.as_bytes();
        let key = name.to_ascii_lowercase();
        let mut refusals = Vec::new();
        if self.conns[conn].identity.is_some() {
            refusals.push(ResultCode::ALREADY_AUTHENTICATED);
        }
        if !valid_username(name) {
            refusals.push(ResultCode::INVALID_USERNAME);
        } else if self.online.contains_key(&key) {
            refusals.push(ResultCode::NAME_IN_USE);
        }
        Verdict::new(refusals, || {
            self.online.insert(key.clone(), conn);
            self.conns[conn].identity = Some(Identity {
                key: key.clone(),
                wire: name.to_vec(),
            });
            self.tell_watchers(&key, name, rooms::ONLINE, b"");
        })
    }

    /// Chat text rules: non-empty, at most `max_text` bytes, UTF-8 (`docs/PROTOCOL.md` §2), and
    /// no control characters but newline and tab (the server's terminal-safety rule).
    fn text_ok(&self, text: &WireStr) -> bool {
        !text.is_empty()
            && text.len() <= self.harness.max_text
            && text
                .to_str()
                .is_ok_and(|t| !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
    }

    fn new_ticket(&mut self) -> usize {
        self.messages.push(None);
        self.messages.len() - 1
    }

    /// The sender's name as typed, and the refusals common to broadcasts and whispers.
    fn chat_checks(&self, conn: usize, text: &WireStr) -> (Vec<u8>, Vec<ResultCode>) {
        let mut refusals = Vec::new();
        let from = match &self.conns[conn].identity {
            Some(identity) => identity.wire.clone(),
            None => {
                refusals.push(ResultCode::NOT_AUTHENTICATED);
                Vec::new()
            }
        };
        if !self.text_ok(text) {
            refusals.push(ResultCode::INVALID_MESSAGE);
        }
        (from, refusals)
    }

    fn model_broadcast(&mut self, conn: usize, text: &WireStr) -> Verdict<usize> {
        let (from, refusals) = self.chat_checks(conn, text);
        Verdict::new(refusals, || {
            let ticket = self.new_ticket();
            for (index, other) in self.conns.iter_mut().enumerate() {
                if index != conn && other.identity.is_some() {
                    other.notifies.push_back(ExpectedNotify {
                        packet: Packet::BroadcastNotify {
                            message_id: 0,
                            sent_at_ms: 0,
                            from: WireStr::from(&from[..]),
                            text: text.clone(),
                        },
                        ticket,
                    });
                }
            }
            ticket
        })
    }

    fn model_whisper(&mut self, conn: usize, to: &WireStr, text: &WireStr) -> Verdict<usize> {
        let (from, mut refusals) = self.chat_checks(conn, text);
        let to = to.as_bytes();
        let target = valid_username(to)
            .then(|| self.online.get(&to.to_ascii_lowercase()).copied())
            .flatten();
        if target.is_none() {
            refusals.push(ResultCode::USER_NOT_FOUND);
        }
        Verdict::new(refusals, || {
            let ticket = self.new_ticket();
            let target = target.expect("checked above");
            self.conns[target].notifies.push_back(ExpectedNotify {
                packet: Packet::WhisperNotify {
                    message_id: 0,
                    sent_at_ms: 0,
                    from: WireStr::from(&from[..]),
                    text: text.clone(),
                },
                ticket,
            });
            ticket
        })
    }

    /// Reads from `conn` until everything the model expects of it has arrived; a connection the
    /// server is closing is read to its end and replaced by a new one.
    fn settle(&mut self, conn: usize) {
        while !self.conns[conn].expected.is_empty() {
            self.read_some(conn, "a response");
        }
        if self.conns[conn].closing {
            while !self.conns[conn].eof {
                self.read_some(conn, "the end of the stream after ERROR_NOTIFY");
            }
            self.check_drained(conn);
            self.conns[conn] = Conn::open(self.harness.addr);
        }
    }

    /// Reads everything due on `conn`, half-closes it and reads it to the end, where nothing more
    /// may arrive; the name is free once the server has closed.
    fn close_politely(&mut self, conn: usize) {
        self.settle(conn);
        // Everything due is read before the half-close: what the server does with output still
        // queued for a peer that has half-closed is not part of the protocol.
        while !self.conns[conn].notifies.is_empty() || !self.conns[conn].presence.is_empty() {
            self.read_some(conn, "a notification");
        }
        let step = self.step;
        if let Err(err) = self.conns[conn].stream.shutdown(Shutdown::Write) {
            panic!("{step}, conn {conn}: half-close failed: {err}");
        }
        while !self.conns[conn].eof {
            self.read_some(conn, "the end of the stream after our half-close");
        }
        self.check_drained(conn);
        self.depart(conn);
    }

    /// Drops `conn` without reading what may still be on its way, then waits until its name is
    /// free again.
    fn abort(&mut self, conn: usize) {
        self.settle(conn);
        let identity = self.conns[conn].identity.clone();
        self.depart(conn);
        let old = std::mem::replace(&mut self.conns[conn], Conn::open(self.harness.addr));
        drop(old.stream);
        if let Some(identity) = identity {
            let name = String::from_utf8(identity.wire).expect("valid names are ASCII");
            self.wait_until_free(&name);
            // The probe that got the name logged in and out: its watchers saw both.
            self.tell_watchers(&identity.key, name.as_bytes(), rooms::ONLINE, b"");
            self.tell_watchers(&identity.key, name.as_bytes(), rooms::OFFLINE, b"");
        }
    }

    fn check_drained(&self, conn: usize) {
        let c = &self.conns[conn];
        let step = self.step;
        assert!(
            c.expected.is_empty(),
            "{step}, conn {conn}: closed before {:?}",
            c.expected
        );
        assert!(
            c.notifies.is_empty() && c.presence.is_empty(),
            "{step}, conn {conn}: closed before notifications {:?} {:?}",
            c.notifies,
            c.presence
        );
        assert_eq!(
            c.got_error, c.expect_error,
            "{step}, conn {conn}: ERROR_NOTIFY received {} but expected {}",
            c.got_error, c.expect_error
        );
    }

    /// One read from `conn`, then handles every complete packet.
    fn read_some(&mut self, conn: usize, waiting_for: &str) {
        let step = self.step;
        let c = &mut self.conns[conn];
        assert!(
            !c.eof,
            "{step}, conn {conn}: the server closed the connection while we waited for \
             {waiting_for}; still expected {:?} and notifications {:?}",
            c.expected, c.notifies
        );
        let mut chunk = [0u8; 16 * 1024];
        match read_retrying(&mut c.stream, &mut chunk) {
            Ok(0) => {
                c.eof = true;
                assert!(
                    c.rx.is_empty(),
                    "{step}, conn {conn}: the stream ended inside a packet: {:02x?}",
                    &c.rx[..]
                );
            }
            Ok(n) => c.rx.extend_from_slice(&chunk[..n]),
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "{step}, conn {conn}: nothing from the server for {IO_TIMEOUT:?} while \
                     waiting for {waiting_for}; expected {:?} and notifications {:?}",
                    c.expected, c.notifies
                )
            }
            Err(err) => panic!(
                "{step}, conn {conn}: read failed while waiting for {waiting_for}: {err}; \
                 expected {:?}",
                c.expected
            ),
        }
        let mut packets = Vec::new();
        loop {
            match decode(&mut c.rx, MAX_PACKET_LIMIT) {
                Ok(Some(packet)) => packets.push(packet),
                Ok(None) => break,
                Err(err) => panic!("{step}, conn {conn}: the server sent malformed bytes: {err}"),
            }
        }
        for packet in packets {
            self.on_received(conn, packet);
        }
    }

    fn on_received(&mut self, conn: usize, packet: Packet) {
        let step = self.step;
        let c = &mut self.conns[conn];
        assert!(
            !c.got_error,
            "{step}, conn {conn}: {packet:?} after ERROR_NOTIFY"
        );
        if let Some((anonymous, message_id, sent_at_ms)) = split_notify(&packet) {
            let Some(want) = c.notifies.pop_front() else {
                panic!("{step}, conn {conn}: unexpected notification {packet:?}");
            };
            assert!(
                anonymous == want.packet,
                "{step}, conn {conn}: got {packet:?}, expected {:?}",
                want.packet
            );
            assert_ne!(message_id, 0, "{step}, conn {conn}: {packet:?}");
            check_sent_at(sent_at_ms);
            self.notified.push((want.ticket, message_id));
            return;
        }
        if let Packet::PresenceNotify { .. } = &packet {
            let Some(want) = c.presence.pop_front() else {
                panic!("{step}, conn {conn}: unexpected presence {packet:?}");
            };
            assert!(
                packet == want,
                "{step}, conn {conn}: got {packet:?}, expected {want:?}"
            );
            return;
        }
        let Some(want) = c.expected.pop_front() else {
            panic!("{step}, conn {conn}: unexpected {packet:?}: no request is waiting");
        };
        let mismatch = || panic!("{step}, conn {conn}: expected {want:?}, got {packet:?}");
        match (&want, &packet) {
            (Expected::Pong(want_nonce), Packet::Pong { nonce }) => {
                if want_nonce != nonce {
                    mismatch();
                }
            }
            (Expected::Login(verdict), Packet::LoginRes { result, session_id }) => {
                if !verdict.allows(*result) {
                    mismatch();
                }
                if result.is_ok() {
                    assert!(
                        *session_id > self.session_floor && self.session_ids.insert(*session_id),
                        "{step}, conn {conn}: session id {session_id} reused"
                    );
                } else {
                    assert_eq!(*session_id, 0, "{step}, conn {conn}: {packet:?}");
                }
            }
            (Expected::Broadcast(verdict), Packet::BroadcastRes { result, message_id })
            | (Expected::Whisper(verdict), Packet::WhisperRes { result, message_id })
            | (Expected::RoomChat(verdict), Packet::RoomChatRes { result, message_id }) => {
                if !verdict.allows(*result) {
                    mismatch();
                }
                match verdict {
                    Verdict::Ok(ticket) => {
                        assert_ne!(*message_id, 0, "{step}, conn {conn}: {packet:?}");
                        self.messages[*ticket] = Some(*message_id);
                    }
                    Verdict::Refused(_) => {
                        assert_eq!(*message_id, 0, "{step}, conn {conn}: {packet:?}")
                    }
                }
            }
            (Expected::Logout(verdict), Packet::LogoutRes { result }) => {
                if !verdict.allows(*result) {
                    mismatch();
                }
            }
            (Expected::Exact(choices), _) => {
                if !choices.contains(&packet) {
                    mismatch();
                }
            }
            (Expected::Refusal(response, refusals), _) => match refusal_of(&packet) {
                Some((kind, result)) if kind == *response && refusals.contains(&result) => {}
                _ => mismatch(),
            },
            (Expected::Error(code), Packet::ErrorNotify { code: got, reason }) => {
                if code != got {
                    mismatch();
                }
                assert!(!reason.is_empty(), "{step}, conn {conn}: empty reason");
                c.got_error = true;
            }
            _ => mismatch(),
        }
    }

    /// Logs in as `name` on fresh connections until that succeeds: a name must be free soon
    /// after the connection holding it is gone.
    fn wait_until_free(&mut self, name: &str) {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let (result, _) = self.probe(name, None);
            if result.is_ok() {
                return;
            }
            assert_eq!(
                result,
                ResultCode::NAME_IN_USE,
                "{}: probe login as {name}",
                self.step
            );
            assert!(
                Instant::now() < deadline,
                "{}: {name} still in use {IO_TIMEOUT:?} after its connection was dropped",
                self.step
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Logs in as `name` on a new connection, pings if asked, and closes politely.
    fn probe(&mut self, name: &str, ping: Option<u64>) -> (ResultCode, u64) {
        let step = self.step;
        let mut stream = connect(self.harness.addr);
        let mut out = encoded(&Packet::LoginReq {
            username: name.into(),
            password: WireStr::default(),
        });
        if let Some(nonce) = ping {
            out.extend(encoded(&Packet::Ping { nonce }));
        }
        stream
            .write_all(&out)
            .unwrap_or_else(|err| panic!("{step}: probe cannot send: {err}"));
        let answers = 1 + usize::from(ping.is_some());
        let mut buf = BytesMut::new();
        let mut packets = Vec::new();
        let mut chunk = [0u8; 4096];
        while packets.len() < answers {
            match read_retrying(&mut stream, &mut chunk) {
                Ok(0) => panic!("{step}: probe's connection closed after {packets:?}"),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(err) => panic!("{step}: probe got no answer after {packets:?}: {err}"),
            }
            while let Some(packet) = decode(&mut buf, MAX_PACKET_LIMIT)
                .unwrap_or_else(|err| panic!("{step}: probe got malformed bytes: {err}"))
            {
                packets.push(packet);
            }
        }
        stream
            .shutdown(Shutdown::Write)
            .unwrap_or_else(|err| panic!("{step}: probe cannot half-close: {err}"));
        let mut rest = Vec::new();
        stream
            .read_to_end(&mut rest)
            .unwrap_or_else(|err| panic!("{step}: probe's connection did not end: {err}"));
        assert!(
            buf.is_empty() && rest.is_empty(),
            "{step}: probe got more than it asked for: {:02x?} {rest:02x?}",
            &buf[..]
        );
        let (result, session_id) = match packets.first() {
            Some(Packet::LoginRes { result, session_id }) => (*result, *session_id),
            _ => panic!("{step}: probe expected LOGIN_RES, got {packets:?}"),
        };
        assert_eq!(
            result.is_ok(),
            session_id != 0,
            "{step}: probe got {packets:?}"
        );
        if result.is_ok() {
            assert!(
                session_id > self.session_floor && self.session_ids.insert(session_id),
                "{step}: probe's session id {session_id} reused"
            );
        }
        let want_rest: Vec<Packet> = ping
            .map(|nonce| Packet::Pong { nonce })
            .into_iter()
            .collect();
        assert_eq!(packets[1..], want_rest[..], "{step}: probe after LOGIN_RES");
        (result, session_id)
    }

    /// Ends the input: every connection closed politely and checked, every message id checked,
    /// and the server still serves a new connection.
    fn finish(mut self) {
        self.step = Step(None);
        for conn in 0..self.conns.len() {
            self.settle(conn);
        }
        for conn in 0..self.conns.len() {
            self.close_politely(conn);
        }
        // A room event's id is what its first recipient saw; every other recipient must see
        // the same.
        for &(ticket, id) in &self.notified {
            if self.events.contains(&ticket) && self.messages[ticket].is_none() {
                self.messages[ticket] = Some(id);
            }
            assert_eq!(
                self.messages[ticket],
                Some(id),
                "a notification's id differs from the sender's response or another recipient's"
            );
        }
        // Messages and room events draw from one id sequence, in the order the server accepted
        // them; an event nobody received has no id to check.
        let mut last = self.message_floor;
        for (ticket, id) in self.messages.iter().enumerate() {
            let Some(id) = *id else {
                assert!(
                    self.events.contains(&ticket),
                    "message {ticket} never answered"
                );
                continue;
            };
            assert!(id > last, "message ids not increasing: {id} after {last}");
            last = id;
        }
        let (result, _) = self.probe(PROBE_NAME, Some(0x5eed));
        assert_eq!(result, ResultCode::OK, "the liveness probe cannot log in");
        let session_max = self.session_ids.iter().copied().max().unwrap_or(0);
        self.harness
            .session_floor
            .fetch_max(session_max, Ordering::Relaxed);
        self.harness
            .message_floor
            .fetch_max(last, Ordering::Relaxed);
    }
}

/// A chat or room notification with its id and time zeroed (to compare with what the model
/// expects), its id, and its time.
fn split_notify(packet: &Packet) -> Option<(Packet, u64, u64)> {
    let mut anonymous = packet.clone();
    let (id, at) = match &mut anonymous {
        Packet::BroadcastNotify {
            message_id,
            sent_at_ms,
            ..
        }
        | Packet::WhisperNotify {
            message_id,
            sent_at_ms,
            ..
        }
        | Packet::RoomChatNotify {
            message_id,
            sent_at_ms,
            ..
        }
        | Packet::RoomEventNotify {
            event_id: message_id,
            sent_at_ms,
            ..
        } => (std::mem::take(message_id), std::mem::take(sent_at_ms)),
        _ => return None,
    };
    Some((anonymous, id, at))
}

/// `read`, again after a signal: libFuzzer's timer signal interrupts reads on sockets that have a
/// timeout, whatever `SA_RESTART` says.
fn read_retrying(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(err) if err.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The naming rule of `docs/PROTOCOL.md`: 1–32 of ASCII letters, digits, `_` and `-`.
pub(crate) fn valid_username(name: &[u8]) -> bool {
    (1..=MAX_USERNAME_LEN).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `sent_at_ms` is the server's clock when it accepted the message: it must be about now.
fn check_sent_at(sent_at_ms: u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    const SLACK_MS: u64 = 10 * 60 * 1000;
    assert!(
        sent_at_ms.abs_diff(now) < SLACK_MS,
        "sent_at_ms {sent_at_ms} is far from now ({now})"
    );
}
