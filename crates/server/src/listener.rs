//! Accepting connections, within the connection limit.
//!
//! Every shard accepts from its own handle to the one listening socket, so connections land on
//! whichever worker is free to take them, and a session lives its whole life on the shard that
//! accepted it.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use suda_protocol::{ErrorCode, Packet, WireStr};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, error, info, warn};

use crate::limits::IpRefusal;
use crate::server::ConnectionGuard;
use crate::session;
use crate::shard::Shard;
use crate::stats::bump;
use crate::tls::TlsSetup;

/// First pause after `accept` fails for lack of descriptors or memory; doubled up to
/// [`MAX_ACCEPT_BACKOFF`] while the failures go on.
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// How many refused connections may be waiting at once to read their `SERVER_BUSY`; past that
/// they are closed without a word, so a connection flood cannot pile up tasks.
const MAX_BUSY_REPLIES: usize = 64;

/// Accepts until shutdown, spawning a session task per connection on this shard. Connections to
/// a TLS listener (`tls` set) start with a TLS handshake.
pub(crate) async fn accept_loop(
    shard: Rc<Shard>,
    listener: TcpListener,
    tls: Option<Arc<TlsSetup>>,
) {
    let shared = shard.shared.clone();
    let busy_replies = Rc::new(Cell::new(0usize));
    let mut backoff = FIRST_ACCEPT_BACKOFF;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff = FIRST_ACCEPT_BACKOFF;
                accepted
            }
            Err(err) if is_resource_exhaustion(&err) => {
                // Existing sessions keep being served; new ones wait in the kernel's backlog.
                warn!(%err, ?backoff, "accept failed for lack of resources; backing off");
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
            Err(err) => {
                // Errors of one pending connection (e.g. it was reset before we took it).
                debug!(%err, "accept failed");
                continue;
            }
        };
        if let Err(err) = stream.set_nodelay(true) {
            debug!(%err, %peer, "could not set TCP_NODELAY");
        }
        let per_ip = match shared
            .ip_limits
            .admit(peer.ip(), tokio::time::Instant::now())
        {
            Ok(guard) => guard,
            Err(refusal) => {
                bump(&shard.stats.connections_refused_per_ip, 1);
                let reason = match refusal {
                    IpRefusal::TooMany => "too many connections from your address",
                    IpRefusal::TooFast => "connecting too fast from your address",
                };
                info!(%peer, reason, "refused");
                refuse(
                    &shard,
                    &busy_replies,
                    stream,
                    ErrorCode::TOO_MANY_CONNECTIONS,
                    reason,
                );
                continue;
            }
        };
        let Some(guard) = ConnectionGuard::try_new(&shared, &shard.stats, per_ip) else {
            bump(&shard.stats.connections_refused_busy, 1);
            info!(%peer, "refused: connection limit reached");
            refuse(
                &shard,
                &busy_replies,
                stream,
                ErrorCode::SERVER_BUSY,
                "connection limit reached, try again later",
            );
            continue;
        };
        let tls_state = match &tls {
            None => None,
            Some(setup) => match setup.accept() {
                Ok(state) => Some(Box::new(state)),
                Err(err) => {
                    error!(%err, %peer, "cannot start a TLS session");
                    continue;
                }
            },
        };
        bump(&shard.stats.connections_accepted, 1);
        let reader = shared.reader_guard();
        shard.tasks.spawn_local(session::serve(
            shard.clone(),
            stream,
            tls_state,
            peer,
            guard,
            reader,
        ));
    }
    debug!(shard = shard.index, "stopped accepting");
}

fn is_resource_exhaustion(err: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener is fine, this process or the system is full.
    matches!(err.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Tells a connection over a limit why it is being closed.
fn refuse(
    shard: &Rc<Shard>,
    busy_replies: &Rc<Cell<usize>>,
    stream: TcpStream,
    code: ErrorCode,
    reason: &'static str,
) {
    if busy_replies.get() >= MAX_BUSY_REPLIES {
        return;
    }
    let mut notice = BytesMut::new();
    if let Err(err) = suda_protocol::encode(
        &Packet::ErrorNotify {
            code,
            reason: WireStr::from_static(reason),
        },
        &mut notice,
    ) {
        error!(%err, "cannot encode a refusal");
        return;
    }
    busy_replies.set(busy_replies.get() + 1);
    let busy_replies = busy_replies.clone();
    shard.tasks.spawn_local(async move {
        let mut outbox = crate::outbox::Outbox::new(usize::MAX);
        outbox.push_shared(notice.freeze(), tokio::time::Instant::now());
        let outbox = std::cell::RefCell::new(outbox);
        let deadline = tokio::time::Instant::now() + crate::connection::CLOSE_LINGER;
        crate::connection::Connection::new(stream, None)
            .close(&outbox, deadline)
            .await;
        busy_replies.set(busy_replies.get() - 1);
    });
}
