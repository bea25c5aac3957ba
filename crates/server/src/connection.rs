//! The socket side of a session: reading packets, flushing the outbox, closing politely.
//!
//! A connection owns its `TcpStream` and the bytes of a packet that has only partly arrived. Reads
//! go into a buffer borrowed from the shard's pool for the duration of one read, so an idle
//! connection holds no read buffer at all and a half-sent packet costs only the bytes that came.

use std::cell::RefCell;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::outbox::Outbox;

/// Most unread bytes discarded while waiting for a closing peer to hang up.
const LINGER_DISCARD_LIMIT: usize = 64 * 1024;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: TcpStream,
    /// The incomplete packet at the end of the last read, if any.
    partial: BytesMut,
}

/// What one read produced.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// Bytes arrived; `buf` holds them after any earlier partial packet.
    Data,
    /// The peer closed its side.
    Closed,
    /// Spurious readiness: nothing to read after all.
    Nothing,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            partial: BytesMut::new(),
        }
    }

    /// Waits until the socket has something to read (or has failed). Cancel-safe: it takes no
    /// bytes, so it can be one branch of a `select!`.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.stream.readable().await
    }

    /// Waits until the socket may accept writes. Cancel-safe.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        self.stream.writable().await
    }

    /// Reads what the socket has into `buf`, behind the partial packet kept from the last read.
    pub(crate) fn try_read(&mut self, buf: &mut BytesMut) -> io::Result<ReadOutcome> {
        if !self.partial.is_empty() {
            buf.extend_from_slice(&self.partial);
            self.partial = BytesMut::new();
        }
        let before = buf.len();
        match self.stream.try_read_buf(buf) {
            Ok(0) => Ok(ReadOutcome::Closed),
            Ok(_) => Ok(ReadOutcome::Data),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                // Keep the partial packet where it was, not in the pooled buffer.
                if before > 0 {
                    self.partial = BytesMut::from(&buf[..before]);
                    buf.clear();
                }
                Ok(ReadOutcome::Nothing)
            }
            Err(err) => Err(err),
        }
    }

    /// Keeps the unconsumed tail of `buf` (an incomplete packet) for the next read, copied to a
    /// buffer of its exact size so the pooled buffer can be reused.
    pub(crate) fn keep_partial(&mut self, buf: &BytesMut) {
        if !buf.is_empty() {
            self.partial = BytesMut::from(&buf[..]);
        }
    }

    /// Writes as much of `outbox` as the socket takes now.
    pub(crate) fn flush(&self, outbox: &mut Outbox) -> io::Result<usize> {
        outbox.flush_into(|slices| self.stream.try_write_vectored(slices))
    }

    /// Sends what is queued (the closing `ERROR_NOTIFY` last), then closes so that the peer reads
    /// everything: half-close our side, and discard what the peer still sends until it hangs up,
    /// because closing a socket with unread input makes the kernel reset the connection, and a
    /// reset can destroy our last packets before the peer has read them. All within `deadline`.
    pub(crate) async fn close(mut self, outbox: &RefCell<Outbox>, deadline: Instant) {
        let flushed = tokio::time::timeout_at(deadline, async {
            loop {
                let done = {
                    let mut outbox = outbox.borrow_mut();
                    self.flush(&mut outbox)?;
                    outbox.is_empty()
                };
                if done {
                    return io::Result::Ok(());
                }
                self.writable().await?;
            }
        })
        .await;
        if !matches!(flushed, Ok(Ok(()))) {
            return;
        }
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let mut stream = self.stream;
        let _ = tokio::time::timeout_at(deadline, async {
            let mut scratch = [0u8; 4096];
            let mut discarded = 0;
            while discarded < LINGER_DISCARD_LIMIT {
                match stream.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        })
        .await;
    }
}

/// Longest a connection closed for an error may take to deliver its last packets.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(2);
