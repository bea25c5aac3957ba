//! A scripted stand-in for the server: a real socket on `127.0.0.1:0`, driven by the test body.
//!
//! The tests interleave client calls and server steps with `tokio::join!`, so every step waits
//! for the bytes it needs; nothing relies on sleeping.

use bytes::BytesMut;
use suda_protocol::{MAX_PACKET_LIMIT, Packet, decode, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{Client, ClientConfig, Events};

/// The server's end of one connection.
pub(super) struct Peer {
    stream: TcpStream,
    buf: BytesMut,
}

/// Connects a client with `config` to a fresh listener and returns both ends.
pub(super) async fn connect(config: ClientConfig) -> (Client, Events, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (connected, accepted) = tokio::join!(Client::connect(addr, config), listener.accept());
    let (client, events) = connected.expect("client connects");
    let (stream, _) = accepted.expect("accept");
    let peer = Peer {
        stream,
        buf: BytesMut::new(),
    };
    (client, events, peer)
}

impl Peer {
    /// The next packet from the client, `None` once the client has closed the connection.
    pub(super) async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = decode(&mut self.buf, MAX_PACKET_LIMIT).expect("valid packet") {
                return Some(packet);
            }
            self.buf.reserve(4096);
            // A reset counts as closed: the client may close with unread data in flight.
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next packet from the client, which must come.
    pub(super) async fn expect(&mut self) -> Packet {
        self.recv().await.expect("the client sent a packet")
    }

    /// Sends `packets` in one write.
    pub(super) async fn send(&mut self, packets: &[Packet]) {
        let mut out = BytesMut::new();
        for packet in packets {
            encode(packet, &mut out).expect("encodable");
        }
        self.send_raw(&out).await;
    }

    /// Sends bytes that need not be a valid packet.
    pub(super) async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }
}
