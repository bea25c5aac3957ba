//! [`FaultProxy`]: the handle a test holds, the listener, and the task that accepts.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::faults::{CutStyle, Direction, ProxyStats, Settings, Shared};
use crate::link;

/// A TCP proxy on `127.0.0.1` that forwards every connection it accepts to one upstream address
/// and injects faults on command.
///
/// Point the client under test at [`addr`](Self::addr) instead of the server. Every control
/// takes effect at once, on the connections open now and on those accepted later, except
/// [`cut_all`](Self::cut_all), which ends the connections open now only.
///
/// The proxy owns every task it starts: dropping it aborts the accept loop and every forwarding
/// task, which closes all their sockets. [`shutdown`](Self::shutdown) does the same and waits
/// until it is done. Must be started within a tokio runtime (any flavour; time may be paused,
/// the proxy then sleeps in virtual time).
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    accept_task: Option<AbortOnDropHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on an ephemeral port of `127.0.0.1`.
    ///
    /// # Panics
    /// If no loopback port can be bound (see [`try_start`](Self::try_start)), or outside a tokio
    /// runtime.
    pub fn start(upstream: SocketAddr) -> Self {
        match Self::try_start(upstream) {
            Ok(proxy) => proxy,
            Err(error) => panic!("cannot start the fault proxy: {error}"),
        }
    }

    /// Starts a proxy to `upstream` on an ephemeral port of `127.0.0.1`.
    ///
    /// # Errors
    /// If the listening socket cannot be made.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn try_start(upstream: SocketAddr) -> io::Result<Self> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(upstream));
        let shutdown = CancellationToken::new();
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown.clone()));
        Ok(Self {
            addr,
            shared,
            shutdown,
            accept_task: Some(AbortOnDropHandle::new(accept_task)),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where connections are forwarded.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.settings.borrow().upstream
    }

    /// Forwards connections accepted from now on to `upstream`, e.g. a server restarted on a new
    /// ephemeral port. Connections open now keep their server.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        self.shared.settings.send_modify(|s| s.upstream = upstream);
    }

    /// Ends every connection open now, both sides at once, in the [`CutStyle`] set (closed by
    /// default). Bytes the proxy had read but not yet forwarded are dropped. Connections accepted
    /// afterwards are not affected.
    pub fn cut_all(&self) {
        self.shared.cut_all.send_modify(|epoch| *epoch += 1);
    }

    /// Cuts a connection after `n` more bytes have been forwarded in `direction`: the connection
    /// that forwards the last of those bytes forwards exactly up to it, then ends as
    /// [`cut_all`](Self::cut_all) ends it. Bytes are counted over all connections (usually there
    /// is one), from now on; `n = 0` cuts the next connection that has anything to forward that
    /// way. One-shot: it disarms when it fires, and arming again replaces an unfired one.
    ///
    /// Exact to the byte whatever the chunking, so a cut can be placed inside a packet: with
    /// [`CutStyle::Close`] the receiving peer reads exactly `n` bytes, then end of stream.
    pub fn cut_after_bytes(&self, direction: Direction, n: u64) {
        self.shared.arm_cut(direction, n);
    }

    /// Delays every chunk by `delay` in both directions: it is forwarded no earlier than `delay`
    /// after the proxy read it. Latency, not a rate limit: chunks read meanwhile are queued
    /// behind it. `Duration::ZERO` (the default) turns it off.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.settings.send_modify(|s| s.delay = delay);
    }

    /// Limits each connection to `bytes_per_sec` in each direction; `None` (the default) for no
    /// limit. Bytes go in pieces of a twentieth of a second's worth, at least one byte, so even
    /// a short transfer takes at least its size over the rate, less one piece. `Some(0)` counts
    /// as one byte per second (use [`pause`](Self::pause) to stop traffic).
    pub fn set_throttle(&self, bytes_per_sec: Option<u64>) {
        self.shared
            .settings
            .send_modify(|s| s.throttle = bytes_per_sec.map(|rate| rate.max(1)));
    }

    /// Stops forwarding in both directions, closing nothing: bytes wait in the proxy (a small
    /// bounded queue per direction) and then in the kernel's buffers, so senders eventually
    /// block. [`cut_all`](Self::cut_all) still cuts paused connections.
    pub fn pause(&self) {
        self.shared.settings.send_modify(|s| s.paused = true);
    }

    /// Forwards again after [`pause`](Self::pause), starting with what was held back.
    pub fn resume(&self) {
        self.shared.settings.send_modify(|s| s.paused = false);
    }

    /// While `refusing`, connections are accepted and closed at once, in the [`CutStyle`] set,
    /// without contacting the upstream server: a client sees its connection succeed and end
    /// before any answer, as with a server that is going down. Counted in
    /// [`ProxyStats::refused`].
    pub fn set_refusing(&self, refusing: bool) {
        self.shared.settings.send_modify(|s| s.refusing = refusing);
    }

    /// How cut and refused connections end; [`CutStyle::Close`] by default.
    pub fn set_cut_style(&self, style: CutStyle) {
        self.shared.settings.send_modify(|s| s.cut_style = style);
    }

    /// The counters now.
    pub fn stats(&self) -> ProxyStats {
        *self.shared.stats.borrow()
    }

    /// Waits until `condition` holds for the counters, and returns them as they were then.
    /// Checked at once and again after every change, so nothing is missed; wrap it in a timeout
    /// if the condition might never hold.
    pub async fn wait_until(&self, mut condition: impl FnMut(&ProxyStats) -> bool) -> ProxyStats {
        let mut stats = self.shared.stats.subscribe();
        // The sender lives as long as `self`, so this cannot fail while it is borrowed.
        let outcome = stats.wait_for(|s| condition(s)).await.map(|s| *s);
        outcome.unwrap_or_else(|_| *stats.borrow())
    }

    /// Stops accepting, closes every connection, and waits until every task has ended.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task is aborted by its handle; cancelling as well makes forwarding tasks
        // that are mid-poll on another thread stop at their next await.
        self.shutdown.cancel();
    }
}

/// Accepts connections and starts forwarding each, until `shutdown`; then ends every forwarding
/// task before returning. The forwarding tasks live in this task's `JoinSet`, so aborting this
/// task aborts them too.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut links = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    shared.count(|stats| stats.accepted += 1);
                    let settings: Settings = shared.settings.borrow().clone();
                    if settings.refusing {
                        refuse(client, settings.cut_style);
                        shared.count(|stats| stats.refused += 1);
                        continue;
                    }
                    links.spawn(link::run(client, shared.clone(), shutdown.clone()));
                }
                Err(error) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(%error, "proxy cannot accept");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = links.join_next(), if !links.is_empty() => {}
        }
    }
    links.shutdown().await;
}

fn refuse(client: TcpStream, style: CutStyle) {
    if style == CutStyle::Reset {
        link::reset(&client);
    }
    drop(client);
}
