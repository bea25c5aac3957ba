//! Forwarding one proxied connection, both directions, with the faults applied.
//!
//! Each direction is a reader and a writer joined by a small bounded queue of timestamped
//! chunks: the reader keeps reading while the writer waits out a delay, so a delay adds latency
//! without also cutting throughput, and a paused writer stops the reader once the queue is full,
//! so TCP flow control reaches the sender and nothing grows without bound. Everything runs inside
//! the one task that owns both sockets, so dropping that task closes them.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::faults::{CutStyle, Direction, Shared};

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks queued between a direction's reader and writer.
const QUEUE: usize = 16;
/// A throttled writer sends pieces of at most this fraction of a second's worth of bytes, so the
/// rate holds over short transfers too.
const THROTTLE_PIECES_PER_SEC: u64 = 20;

/// Why forwarding stopped before both directions ended normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// A cut fired in this connection.
    Cut,
    /// A socket failed, or the proxy is shutting down.
    Failed,
}

/// Forwards `client` to the upstream server until both sides are done, a fault cuts it, or
/// `shutdown` fires.
pub(crate) async fn run(client: TcpStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    // Subscribed first: a `cut_all` from now on ends this connection, even while connecting.
    let mut cut_all = shared.cut_all.subscribe();
    let upstream = shared.settings.borrow().upstream;
    let server = tokio::select! {
        connected = TcpStream::connect(upstream) => connected,
        _ = cut_all.changed() => {
            shared.count(|stats| stats.cuts += 1);
            return;
        }
        () = shutdown.cancelled() => return,
    };
    let server = match server {
        Ok(server) => server,
        Err(error) => {
            tracing::debug!(%upstream, %error, "proxy cannot reach upstream");
            shared.count(|stats| stats.upstream_failures += 1);
            return;
        }
    };
    // The peers batch their own writes; the proxy should not add Nagle delays of its own.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    shared.count(|stats| stats.active += 1);

    let mut client = client;
    let mut server = server;
    let stop = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let forward = async {
            tokio::try_join!(
                pump(
                    client_read,
                    server_write,
                    Direction::ClientToServer,
                    &shared
                ),
                pump(
                    server_read,
                    client_write,
                    Direction::ServerToClient,
                    &shared
                ),
            )
            .map(|_| ())
        };
        tokio::select! {
            ended = forward => ended.err(),
            _ = cut_all.changed() => Some(Stop::Cut),
            () = shutdown.cancelled() => Some(Stop::Failed),
        }
    };
    if stop == Some(Stop::Cut) {
        shared.count(|stats| stats.cuts += 1);
        if shared.settings.borrow().cut_style == CutStyle::Reset {
            reset(&client);
            reset(&server);
        }
    }
    drop((client, server));
    shared.count(|stats| stats.active -= 1);
}

/// Makes closing `stream` send RST instead of FIN.
pub(crate) fn reset(stream: &TcpStream) {
    if let Err(error) = stream.set_zero_linger() {
        tracing::debug!(%error, "cannot set SO_LINGER 0; closing normally instead");
    }
}

/// Forwards one direction until its reader ends (then passes the end on) or a fault stops it.
async fn pump<R, W>(
    mut reader: R,
    mut writer: W,
    direction: Direction,
    shared: &Shared,
) -> Result<(), Stop>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (chunks, mut queue) = mpsc::channel::<(Instant, Bytes)>(QUEUE);
    let read = async move {
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(CHUNK);
            match reader.read_buf(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    if chunks
                        .send((Instant::now(), buf.split().freeze()))
                        .await
                        .is_err()
                    {
                        return Ok(());
                    }
                }
                Err(_) => return Err(Stop::Failed),
            }
        }
    };
    let write = async {
        let mut settings = shared.settings.subscribe();
        let mut next_slot = Instant::now();
        while let Some((read_at, mut bytes)) = queue.recv().await {
            let delay = settings.borrow_and_update().delay;
            sleep_until(read_at + delay).await;
            while !bytes.is_empty() {
                if settings.wait_for(|s| !s.paused).await.is_err() {
                    return Err(Stop::Failed);
                }
                let throttle = settings.borrow_and_update().throttle;
                let mut piece_len = bytes.len();
                if let Some(rate) = throttle {
                    piece_len = piece_len.min(piece_size(rate));
                    sleep_until(next_slot).await;
                }
                let (allowed, cut) = shared.take_budget(direction, piece_len);
                let piece = bytes.split_to(allowed);
                if !piece.is_empty() {
                    writer.write_all(&piece).await.map_err(|_| Stop::Failed)?;
                    shared.count_bytes(direction, piece.len());
                }
                if cut {
                    // Every byte before the cut is handed to the kernel; closing now puts the
                    // end of stream right after them.
                    let _ = writer.flush().await;
                    return Err(Stop::Cut);
                }
                if let Some(rate) = throttle {
                    let cost = Duration::from_secs_f64(piece.len() as f64 / rate as f64);
                    next_slot = next_slot.max(Instant::now()) + cost;
                }
            }
        }
        // The reader saw the end of its stream: pass the half-close on.
        let _ = writer.shutdown().await;
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}

/// Bytes a throttled writer sends at once at `rate` bytes per second.
fn piece_size(rate: u64) -> usize {
    usize::try_from(rate / THROTTLE_PIECES_PER_SEC)
        .unwrap_or(CHUNK)
        .clamp(1, CHUNK)
}
