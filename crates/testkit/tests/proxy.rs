//! The fault proxy against local servers on loopback: an echo server, and an upstream whose
//! accepted sockets the test drives itself.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use suda_testkit::{CutStyle, Direction, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Generous bound for things that must happen, so a loaded machine does not fail a test.
const PATIENCE: Duration = Duration::from_secs(10);

/// A listener whose connections the test takes and drives.
struct Upstream {
    listener: TcpListener,
}

impl Upstream {
    async fn bind() -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("addr")
    }

    async fn accept(&self) -> TcpStream {
        let (stream, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("the proxy connects upstream")
            .expect("accept");
        stream
    }
}

/// An echo server that serves every connection until it closes.
async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    (addr, task)
}

/// Reads until end of stream; the bytes read, and the error if it ended with one.
async fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, Option<io::Error>) {
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the stream ends")
        {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(error) => return (out, Some(error)),
        }
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn round_trip(stream: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    stream.write_all(data).await.expect("write");
    let mut back = vec![0; data.len()];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut back))
        .await
        .expect("echo comes back")
        .expect("read");
    back
}

#[tokio::test]
async fn forwards_both_ways_and_counts_bytes() {
    let (echo, _server) = echo_server().await;
    let proxy = FaultProxy::start(echo);
    assert_eq!(proxy.upstream(), echo);
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let data = pattern(100_000);
    assert_eq!(round_trip(&mut client, &data).await, data);
    let stats = proxy.stats();
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.active, 1);
    assert_eq!(stats.bytes(Direction::ClientToServer), 100_000);
    assert_eq!(stats.server_to_client, 100_000);

    // A half-close is passed on: the echo server sees the end and closes its side too.
    client.shutdown().await.expect("shutdown");
    let (rest, error) = read_to_end(&mut client).await;
    assert!(rest.is_empty() && error.is_none());
    proxy.wait_until(|s| s.active == 0).await;
    assert_eq!(proxy.stats().cuts, 0);
}

#[tokio::test]
async fn a_cut_lands_on_the_exact_byte_in_either_direction() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());

    // Client to server: the server reads exactly 1234 bytes of a larger write, then the end.
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut server = upstream.accept().await;
    // Some traffic first, to show the count starts when the cut is armed.
    client.write_all(&pattern(500)).await.expect("write");
    let mut first = vec![0; 500];
    server.read_exact(&mut first).await.expect("read");
    proxy.cut_after_bytes(Direction::ClientToServer, 1234);
    let data = pattern(50_000);
    // The write may fail once the proxy has closed its end: only what arrives matters.
    let _ = client.write_all(&data).await;
    let (received, error) = read_to_end(&mut server).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(received, data[..1234]);
    let (rest, _) = read_to_end(&mut client).await;
    assert!(rest.is_empty(), "the client side is closed too");
    let stats = proxy.wait_until(|s| s.active == 0).await;
    assert_eq!(stats.cuts, 1);
    assert_eq!(stats.client_to_server, 500 + 1234);

    // Server to client, one byte in, e.g. inside a packet's header.
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut server = upstream.accept().await;
    proxy.cut_after_bytes(Direction::ServerToClient, 1);
    let _ = server.write_all(&[0x0d, 0x00, 0x02, 0x00]).await;
    let (received, error) = read_to_end(&mut client).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(received, [0x0d]);
    let stats = proxy.wait_until(|s| s.cuts == 2).await;
    assert_eq!(stats.accepted, 2);

    // Disarmed after firing: the next connection is left alone.
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut server = upstream.accept().await;
    server.write_all(&pattern(10)).await.expect("write");
    let mut got = vec![0; 10];
    client.read_exact(&mut got).await.expect("read");
    assert_eq!(got, pattern(10));
}

#[tokio::test]
async fn cut_all_ends_open_connections_on_both_sides_but_not_later_ones() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut server = upstream.accept().await;
    client.write_all(b"hi").await.expect("write");
    let mut got = [0; 2];
    server.read_exact(&mut got).await.expect("read");

    proxy.cut_all();
    assert_eq!(read_to_end(&mut client).await.0, b"");
    assert_eq!(read_to_end(&mut server).await.0, b"");
    assert_eq!(proxy.wait_until(|s| s.active == 0).await.cuts, 1);

    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut server = upstream.accept().await;
    server.write_all(b"still works").await.expect("write");
    let mut got = [0; 11];
    client.read_exact(&mut got).await.expect("read");
    assert_eq!(&got, b"still works");
}

#[tokio::test]
async fn a_reset_cut_is_seen_as_a_connection_reset() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());
    proxy.set_cut_style(CutStyle::Reset);
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let _server = upstream.accept().await;
    proxy.wait_until(|s| s.active == 1).await;
    proxy.cut_all();
    let (_, error) = read_to_end(&mut client).await;
    assert_eq!(
        error.map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionReset)
    );
}

#[tokio::test]
async fn delay_adds_latency_each_way() {
    let (echo, _server) = echo_server().await;
    let proxy = FaultProxy::start(echo);
    let delay = Duration::from_millis(150);
    proxy.set_delay(delay);
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let started = Instant::now();
    assert_eq!(round_trip(&mut client, b"ping").await, b"ping");
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());

    proxy.set_delay(Duration::ZERO);
    assert_eq!(round_trip(&mut client, b"pong").await, b"pong");
}

#[tokio::test]
async fn throttle_limits_the_rate() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());
    let rate = 20_000;
    proxy.set_throttle(Some(rate));
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut server = upstream.accept().await;
    let data = pattern(10_000);
    let started = Instant::now();
    client.write_all(&data).await.expect("write");
    let mut got = vec![0; data.len()];
    tokio::time::timeout(PATIENCE, server.read_exact(&mut got))
        .await
        .expect("arrives")
        .expect("read");
    assert_eq!(got, data);
    // 10,000 bytes at 20,000 B/s, less the first piece (1,000 bytes) that goes at once.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(450), "{elapsed:?}");

    proxy.set_throttle(None);
    server.write_all(&data).await.expect("write");
    client.read_exact(&mut got).await.expect("read");
}

#[tokio::test]
async fn pause_holds_bytes_without_closing_and_resume_delivers_them() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let mut server = upstream.accept().await;
    proxy.wait_until(|s| s.active == 1).await;

    proxy.pause();
    client.write_all(b"held back").await.expect("write");
    let mut got = [0; 9];
    // Nothing can be awaited to prove an absence; a short wait shows nothing leaks through.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), server.read_exact(&mut got))
            .await
            .is_err(),
        "paused traffic must not arrive"
    );
    assert_eq!(proxy.stats().client_to_server, 0);
    assert_eq!(proxy.stats().active, 1, "nothing closed");

    proxy.resume();
    tokio::time::timeout(PATIENCE, server.read_exact(&mut got))
        .await
        .expect("arrives after resume")
        .expect("read");
    assert_eq!(&got, b"held back");
}

#[tokio::test]
async fn refusing_closes_new_connections_at_once() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());
    proxy.set_refusing(true);
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert_eq!(read_to_end(&mut client).await.0, b"");
    let stats = proxy.wait_until(|s| s.refused == 1).await;
    assert_eq!((stats.accepted, stats.active), (1, 0));

    proxy.set_refusing(false);
    let _client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let _server = upstream.accept().await;
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client_and_set_upstream_redirects() {
    // A port known to be closed.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("addr")
    };
    let proxy = FaultProxy::start(closed);
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert_eq!(read_to_end(&mut client).await.0, b"");
    proxy.wait_until(|s| s.upstream_failures == 1).await;

    // "The server restarted on another port."
    let (echo, _server) = echo_server().await;
    proxy.set_upstream(echo);
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    assert_eq!(round_trip(&mut client, b"back").await, b"back");
}

#[tokio::test]
async fn dropping_the_proxy_closes_everything() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());
    let addr = proxy.addr();
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let mut server = upstream.accept().await;
    proxy.wait_until(|s| s.active == 1).await;

    drop(proxy);
    assert_eq!(read_to_end(&mut client).await.0, b"");
    assert_eq!(read_to_end(&mut server).await.0, b"");
    assert!(TcpStream::connect(addr).await.is_err(), "nothing listens");
}

#[tokio::test]
async fn shutdown_waits_for_every_task() {
    let upstream = Upstream::bind().await;
    let proxy = FaultProxy::start(upstream.addr());
    let mut client = TcpStream::connect(proxy.addr()).await.expect("connect");
    let _server = upstream.accept().await;
    proxy.wait_until(|s| s.active == 1).await;
    tokio::time::timeout(PATIENCE, proxy.shutdown())
        .await
        .expect("shuts down");
    assert_eq!(read_to_end(&mut client).await.0, b"");
}
