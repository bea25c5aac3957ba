//! Helpers for end-to-end tests: a real server on an ephemeral port, and a raw protocol client
//! that can send anything, including what a well-behaved client never would.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use suda_protocol::{ErrorCode, MAX_PACKET_LIMIT, Packet, ResultCode, WireStr};
use suda_server::{Config, Server, ServerError, StatsHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Longest any single expected event may take before a test fails instead of hanging.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// The server's defaults, on an ephemeral port, with chat rate limits off: most tests stream
/// far faster than a person types. The tests of the limits turn them back on.
pub(crate) fn test_config() -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
        message_rate: 0.0,
        byte_rate: 0.0,
        // These tests are about the chat, not storage: keep nothing on disk.
        store: suda_server::config::StoreKind::None,
        ..Config::default()
    }
}

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) stats: StatsHandle,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        tweak(&mut config);
        Self::start_server(Server::bind(config).expect("bind"))
    }

    pub(crate) fn start_server(server: Server) -> Self {
        let addr = server.local_addr().expect("addr");
        let stats = server.stats();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Self {
            addr,
            stats,
            shutdown,
            task,
        }
    }

    /// Starts a graceful shutdown without waiting for it.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Shuts down gracefully and returns what `run` returned.
    pub(crate) async fn stop(self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
    }

    /// Polls `condition` on the server's counters until it holds.
    pub(crate) async fn until(&self, what: &str, condition: impl Fn(&StatsHandle) -> bool) {
        eventually(what, || condition(&self.stats)).await;
    }
}

/// Waits for a condition that becomes true asynchronously and has no event to await.
pub(crate) async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A client that speaks the protocol by hand.
pub(crate) struct Raw {
    pub(crate) stream: TcpStream,
    buf: BytesMut,
    /// Notifications that arrived while [`Raw::request`] waited for its response, for the next
    /// [`Raw::recv`].
    held: std::collections::VecDeque<Packet>,
}

impl Raw {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: BytesMut::new(),
            held: std::collections::VecDeque::new(),
        }
    }

    /// Connects from the loopback address `from` (any of 127.0.0.0/8), to tell clients apart
    /// by address.
    pub(crate) async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::new(from, 0)).expect("bind");
        let stream = socket.connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            buf: BytesMut::new(),
            held: std::collections::VecDeque::new(),
        }
    }

    /// Connects and logs in as `name`, which must succeed.
    pub(crate) async fn login(addr: SocketAddr, name: &str) -> Self {
        let mut raw = Self::connect(addr).await;
        let result = raw.try_login(name).await;
        assert_eq!(result, ResultCode::OK, "login of {name}");
        raw
    }

    pub(crate) async fn try_login(&mut self, name: &str) -> ResultCode {
        self.send(&Packet::LoginReq {
            username: name.into(),
            password: "pw".into(),
        })
        .await;
        match self.recv().await {
            Packet::LoginRes { result, session_id } => {
                assert_eq!(
                    result.is_ok(),
                    session_id != 0,
                    "{result} with id {session_id}"
                );
                result
            }
            other => panic!("expected LOGIN_RES, got {other:?}"),
        }
    }

    pub(crate) async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        suda_protocol::encode(packet, &mut out).expect("encodable");
        self.send_bytes(&out).await;
    }

    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes `bytes`, reporting a failed write instead of panicking (the server may have
    /// closed the connection on purpose).
    pub(crate) async fn send_bytes_checked(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next packet, or `None` at a clean end of stream.
    pub(crate) async fn recv_or_eof(&mut self) -> Option<Packet> {
        if let Some(held) = self.held.pop_front() {
            return Some(held);
        }
        self.read_packet().await
    }

    async fn read_packet(&mut self) -> Option<Packet> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                match suda_protocol::decode(&mut self.buf, MAX_PACKET_LIMIT) {
                    Ok(Some(packet)) => return Some(packet),
                    Ok(None) => {}
                    Err(err) => panic!("server sent a malformed packet: {err}"),
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => {
                        assert!(self.buf.is_empty(), "stream ended inside a packet");
                        return None;
                    }
                    Ok(_) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => return None,
                    Err(err) => panic!("read failed: {err}"),
                }
            }
        })
        .await
        .expect("a packet in time")
    }

    pub(crate) async fn recv(&mut self) -> Packet {
        self.recv_or_eof()
            .await
            .expect("a packet, not end of stream")
    }

    /// Expects `ERROR_NOTIFY` with `code`, then the end of the stream.
    pub(crate) async fn expect_closed_with(&mut self, code: ErrorCode) {
        match self.recv().await {
            Packet::ErrorNotify { code: got, reason } => {
                assert_eq!(got, code, "reason: {reason}");
                assert!(!reason.is_empty(), "a reason is given");
            }
            other => panic!("expected ERROR_NOTIFY {code}, got {other:?}"),
        }
        assert_eq!(self.recv_or_eof().await, None, "closed after ERROR_NOTIFY");
    }

    pub(crate) async fn broadcast(&mut self, text: &str) -> (ResultCode, u64) {
        self.send(&Packet::BroadcastReq { text: text.into() }).await;
        match self.recv().await {
            Packet::BroadcastRes { result, message_id } => (result, message_id),
            other => panic!("expected BROADCAST_RES, got {other:?}"),
        }
    }

    pub(crate) async fn whisper(
        &mut self,
        to: &str,
        text: impl Into<WireStr>,
    ) -> (ResultCode, u64) {
        self.send(&Packet::WhisperReq {
            to: to.into(),
            text: text.into(),
        })
        .await;
        match self.recv().await {
            Packet::WhisperRes { result, message_id } => (result, message_id),
            other => panic!("expected WHISPER_RES, got {other:?}"),
        }
    }

    /// A round trip that skips the notifications queued before the PONG.
    pub(crate) async fn sync(&mut self, nonce: u64) {
        self.send(&Packet::Ping { nonce }).await;
        loop {
            match self.recv().await {
                Packet::Pong { nonce: got } if got == nonce => return,
                Packet::BroadcastNotify { .. } | Packet::WhisperNotify { .. } => {}
                other => panic!("expected PONG {nonce}, got {other:?}"),
            }
        }
    }

    /// A round trip: everything the server queued for us before the PONG arrives first.
    pub(crate) async fn ping(&mut self, nonce: u64) {
        self.send(&Packet::Ping { nonce }).await;
        match self.recv().await {
            Packet::Pong { nonce: got } if got == nonce => {}
            other => panic!("expected PONG {nonce}, got {other:?}"),
        }
    }
}

pub(crate) fn encode(packet: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    suda_protocol::encode(packet, &mut out).expect("encodable");
    out.to_vec()
}

/// `(from, text, id)` of a chat notification.
pub(crate) fn chat(packet: &Packet) -> (String, String, u64) {
    match packet {
        Packet::BroadcastNotify {
            from,
            text,
            message_id,
            ..
        }
        | Packet::WhisperNotify {
            from,
            text,
            message_id,
            ..
        } => (from.to_string(), text.to_string(), *message_id),
        other => panic!("expected a chat notification, got {other:?}"),
    }
}

/// Rooms, presence and moderation (protocol 1.3) requests, answered.
impl Raw {
    /// Sends `packet` and returns the next packet that is not a notification; notifications
    /// that come first are kept, in order, for [`Raw::recv`].
    pub(crate) async fn request(&mut self, packet: &Packet) -> Packet {
        self.send(packet).await;
        loop {
            let next = self
                .read_packet()
                .await
                .expect("a response, not end of stream");
            let kind = next.packet_type() as u16;
            let notification = (0x0100..0x0200).contains(&kind) || kind & 0x00ff >= 0x80;
            if !notification || matches!(next, Packet::ErrorNotify { .. }) {
                return next;
            }
            self.held.push_back(next);
        }
    }

    pub(crate) async fn create_room(
        &mut self,
        room: &str,
        flags: u8,
        password: &str,
        topic: &str,
    ) -> ResultCode {
        let packet = Packet::CreateRoomReq {
            room: room.into(),
            flags,
            password: password.into(),
            topic: topic.into(),
        };
        match self.request(&packet).await {
            Packet::CreateRoomRes { result, .. } => result,
            other => panic!("expected CREATE_ROOM_RES, got {other:?}"),
        }
    }

    /// `JOIN_ROOM_RES`'s result, flags, member count and topic.
    pub(crate) async fn join_room(
        &mut self,
        room: &str,
        password: &str,
    ) -> (ResultCode, u8, u32, String) {
        let packet = Packet::JoinRoomReq {
            room: room.into(),
            password: password.into(),
        };
        match self.request(&packet).await {
            Packet::JoinRoomRes {
                result,
                flags,
                members,
                topic,
                ..
            } => (result, flags, members, topic.to_string()),
            other => panic!("expected JOIN_ROOM_RES, got {other:?}"),
        }
    }

    pub(crate) async fn leave_room(&mut self, room: &str) -> ResultCode {
        match self
            .request(&Packet::LeaveRoomReq { room: room.into() })
            .await
        {
            Packet::LeaveRoomRes { result, .. } => result,
            other => panic!("expected LEAVE_ROOM_RES, got {other:?}"),
        }
    }

    pub(crate) async fn room_chat(&mut self, room: &str, text: &str) -> (ResultCode, u64) {
        let packet = Packet::RoomChatReq {
            room: room.into(),
            text: text.into(),
        };
        match self.request(&packet).await {
            Packet::RoomChatRes { result, message_id } => (result, message_id),
            other => panic!("expected ROOM_CHAT_RES, got {other:?}"),
        }
    }

    pub(crate) async fn room_moderate(
        &mut self,
        room: &str,
        action: u8,
        user: &str,
        duration_s: u32,
        text: &str,
    ) -> ResultCode {
        let packet = Packet::RoomModerateReq {
            room: room.into(),
            action,
            user: user.into(),
            duration_s,
            text: text.into(),
        };
        match self.request(&packet).await {
            Packet::RoomModerateRes { result } => result,
            other => panic!("expected ROOM_MODERATE_RES, got {other:?}"),
        }
    }

    /// A paged list request (`LIST_ROOMS_REQ`, `ROOM_MEMBERS_REQ`, `USER_LIST_REQ`): its result
    /// and the items that followed.
    pub(crate) async fn list(&mut self, packet: &Packet) -> (ResultCode, Vec<Packet>) {
        let (result, count) = match self.request(packet).await {
            Packet::ListRoomsRes { result, count }
            | Packet::RoomMembersRes { result, count }
            | Packet::UserListRes { result, count } => (result, count),
            other => panic!("expected a list response, got {other:?}"),
        };
        // Items follow their response at once: nothing can come between them.
        let mut items = Vec::new();
        for _ in 0..count {
            items.push(self.read_packet().await.expect("an item"));
        }
        (result, items)
    }

    pub(crate) async fn moderate(
        &mut self,
        action: u8,
        target: &str,
        duration_s: u32,
        reason: &str,
    ) -> ResultCode {
        let packet = Packet::ModerateReq {
            action,
            target: target.into(),
            duration_s,
            reason: reason.into(),
        };
        match self.request(&packet).await {
            Packet::ModerateRes { result } => result,
            other => panic!("expected MODERATE_RES, got {other:?}"),
        }
    }

    /// Says the client speaks protocol 1.3 (a harmless `SET_STATUS_REQ online`).
    pub(crate) async fn opt_in(&mut self) {
        let packet = Packet::SetStatusReq {
            status: 0,
            text: "".into(),
        };
        match self.request(&packet).await {
            Packet::SetStatusRes { result } => assert_eq!(result, ResultCode::OK),
            other => panic!("expected SET_STATUS_RES, got {other:?}"),
        }
    }

    /// The next `ROOM_EVENT_NOTIFY`: `(kind, user, actor, text)`.
    pub(crate) async fn room_event(&mut self) -> (u8, String, String, String) {
        match self.recv().await {
            Packet::RoomEventNotify {
                kind,
                user,
                actor,
                text,
                ..
            } => (kind, user.to_string(), actor.to_string(), text.to_string()),
            other => panic!("expected ROOM_EVENT_NOTIFY, got {other:?}"),
        }
    }

    /// The next `ROOM_CHAT_NOTIFY`: `(room, from, text)`.
    pub(crate) async fn room_message(&mut self) -> (String, String, String) {
        match self.recv().await {
            Packet::RoomChatNotify {
                room, from, text, ..
            } => (room.to_string(), from.to_string(), text.to_string()),
            other => panic!("expected ROOM_CHAT_NOTIFY, got {other:?}"),
        }
    }
}
