//! The socket side of a session: reading packets, flushing the outbox, closing politely.
//!
//! A connection owns its `TcpStream` and the bytes of a packet that has only partly arrived. Reads
//! go into a buffer borrowed from the shard's pool for the duration of one read, so an idle
//! connection holds no read buffer at all and a half-sent packet costs only the bytes that came.
//!
//! A TLS connection also owns its rustls state machine, driven by the same non-blocking reads and
//! writes: ciphertext in, plaintext appended to the read buffer; plaintext from the outbox sealed
//! into records (at most rustls's 64 KiB buffer at a time, so the outbox stays the one place
//! where a backlog is measured), records out.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
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
    tls: Option<Box<rustls::ServerConnection>>,
}

/// TLS records read per wake-up before other sessions get their turn.
const TLS_READS_PER_TURN: usize = 8;

/// Blocking-style `Read`/`Write` over the non-blocking socket calls, for rustls: `WouldBlock`
/// comes back as an error, which rustls passes through.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A TLS failure, as an I/O error a session can recognise.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub(crate) struct TlsFailure(pub(crate) rustls::Error);

/// What one read produced.
#[derive(Debug)]
pub(crate) enum ReadOutcome {
    /// This many bytes arrived; `buf` holds them after any earlier partial packet.
    Data(usize),
    /// The peer closed its side.
    Closed,
    /// Spurious readiness: nothing to read after all.
    Nothing,
}

impl Connection {
    pub(crate) fn new(stream: TcpStream, tls: Option<Box<rustls::ServerConnection>>) -> Self {
        Self {
            stream,
            partial: BytesMut::new(),
            tls,
        }
    }

    /// Takes the socket (out of this worker's reactor), TLS state and held bytes, to hand them to
    /// another worker.
    pub(crate) fn into_parts(
        self,
    ) -> io::Result<(std::net::TcpStream, Option<Box<rustls::ServerConnection>>)> {
        Ok((self.stream.into_std()?, self.tls))
    }

    /// A connection from [`Connection::into_parts`], registered with this worker's reactor, with
    /// `pending` bytes to handle before reading.
    pub(crate) fn from_parts(
        stream: std::net::TcpStream,
        tls: Option<Box<rustls::ServerConnection>>,
        pending: BytesMut,
    ) -> io::Result<Self> {
        Ok(Self {
            stream: TcpStream::from_std(stream)?,
            partial: pending,
            tls,
        })
    }

    /// Whether this is a plain TCP connection (no TLS).
    pub(crate) fn is_plain(&self) -> bool {
        self.tls.is_none()
    }

    /// Whether bytes from an earlier read wait to be handled.
    pub(crate) fn has_partial(&self) -> bool {
        !self.partial.is_empty()
    }

    /// Moves the held bytes into `buf`.
    pub(crate) fn take_partial(&mut self, buf: &mut BytesMut) {
        buf.extend_from_slice(&self.partial);
        self.partial = BytesMut::new();
    }

    /// Whether TLS records wait to be written (handshake messages, sealed data, alerts).
    pub(crate) fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Ready when the socket may have bytes to read; the waker is kept in the socket's own
    /// slot, so waiting costs no memory of its own.
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_read_ready(cx)
    }

    /// Ready when the socket may take bytes (see [`Connection::poll_read_ready`]).
    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream.poll_write_ready(cx)
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
        let room = buf.capacity() - before;
        let outcome = match &mut self.tls {
            None => match self.stream.try_read_buf(buf) {
                Ok(0) => ReadOutcome::Closed,
                Ok(n) => {
                    if n < room {
                        self.drained();
                    }
                    ReadOutcome::Data(n)
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => ReadOutcome::Nothing,
                Err(err) => return Err(err),
            },
            Some(tls) => read_tls(tls, &self.stream, buf)?,
        };
        if matches!(outcome, ReadOutcome::Nothing) && before > 0 {
            // Keep the partial packet where it was, not in the pooled buffer.
            self.partial = BytesMut::from(&buf[..before]);
            buf.clear();
        }
        Ok(outcome)
    }

    /// Notes that a read took everything the socket had (it filled less than the buffer), so
    /// that the next wait parks until more arrives instead of trying a read that would only
    /// say `WouldBlock` — for a client sending one message at a time, every other read. As
    /// tokio's own `poll_read` does: the reactor is edge-triggered, so bytes arriving after
    /// this read raise a new readiness event, and this runtime's reactor (on this thread)
    /// cannot have seen one between that read and now.
    fn drained(&self) {
        // Windows (and mio's poll(2) fallback) report readiness differently; there the read
        // that says `WouldBlock` is what clears it.
        if cfg!(not(any(windows, mio_unsupported_force_poll_poll))) {
            let _ = self.stream.try_io(Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
    }

    /// Keeps the unconsumed tail of `buf` (an incomplete packet) for the next read, copied to a
    /// buffer of its exact size so the pooled buffer can be reused.
    pub(crate) fn keep_partial(&mut self, buf: &BytesMut) {
        if !buf.is_empty() {
            self.partial = BytesMut::from(&buf[..]);
        }
    }

    /// Writes as much of `outbox` as the socket takes now. Returns the bytes that left (for
    /// TLS, ciphertext bytes: either way, a sign of progress).
    pub(crate) fn flush(&mut self, outbox: &mut Outbox) -> io::Result<usize> {
        match &mut self.tls {
            None => outbox.flush_into(|slices| self.stream.try_write_vectored(slices)),
            Some(tls) => flush_tls(tls, &self.stream, outbox),
        }
    }

    /// Writes as much of `outbox` as the socket takes now, trying the socket even if the
    /// reactor has not reported it writable: for a last write before the connection is
    /// dropped, which may come right after a session woke from hibernation, before tokio has
    /// learnt its new registration's readiness (its own writes would refuse until then).
    pub(crate) fn flush_now(&mut self, outbox: &mut Outbox) -> io::Result<usize> {
        match &mut self.tls {
            None => {
                let socket = socket2::SockRef::from(&self.stream);
                outbox.flush_into(|slices| socket.send_vectored(slices))
            }
            Some(tls) => flush_tls(tls, &self.stream, outbox),
        }
    }

    /// Sends what is queued (the closing `ERROR_NOTIFY` last), then closes so that the peer reads
    /// everything: half-close our side, and discard what the peer still sends until it hangs up,
    /// because closing a socket with unread input makes the kernel reset the connection, and a
    /// reset can destroy our last packets before the peer has read them. All within `deadline`.
    pub(crate) async fn close(mut self, outbox: &RefCell<Outbox>, deadline: Instant) {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
        }
        let flushed = tokio::time::timeout_at(deadline, async {
            loop {
                let done = {
                    let mut outbox = outbox.borrow_mut();
                    self.flush(&mut outbox)?;
                    outbox.is_empty() && !self.tls_pending()
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
            // On the heap: an array here would sit in every session's future, idle or not.
            let mut scratch = vec![0u8; 4096];
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

/// Reads ciphertext, lets rustls decrypt it, and appends the plaintext to `buf`.
fn read_tls(
    tls: &mut rustls::ServerConnection,
    stream: &TcpStream,
    buf: &mut BytesMut,
) -> io::Result<ReadOutcome> {
    let mut plaintext = 0;
    let mut closed = false;
    for _ in 0..TLS_READS_PER_TURN {
        match tls.read_tls(&mut NonBlocking(stream)) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) => return Err(err),
        }
        let state = tls
            .process_new_packets()
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, TlsFailure(err)))?;
        let available = state.plaintext_bytes_to_read();
        if available > 0 {
            let start = buf.len();
            buf.resize(start + available, 0);
            tls.reader().read_exact(&mut buf[start..])?;
            plaintext += available;
        }
        if state.peer_has_closed() {
            closed = true;
            break;
        }
    }
    Ok(if plaintext > 0 {
        ReadOutcome::Data(plaintext)
    } else if closed {
        ReadOutcome::Closed
    } else {
        ReadOutcome::Nothing
    })
}

/// Writes pending records, seals more of the outbox, and repeats until the socket is full or
/// everything is out.
fn flush_tls(
    tls: &mut rustls::ServerConnection,
    stream: &TcpStream,
    outbox: &mut Outbox,
) -> io::Result<usize> {
    let mut written = 0;
    loop {
        while tls.wants_write() {
            match tls.write_tls(&mut NonBlocking(stream)) {
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                Err(err) => return Err(err),
            }
        }
        if outbox.is_empty() {
            return Ok(written);
        }
        let sealed = outbox.flush_into(|slices| match tls.writer().write_vectored(slices) {
            // rustls's buffer is full: the records above must leave first.
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            other => other,
        })?;
        if sealed == 0 && !tls.wants_write() {
            return Ok(written);
        }
    }
}

/// Longest a connection closed for an error may take to deliver its last packets.
pub(crate) const CLOSE_LINGER: Duration = Duration::from_secs(2);
