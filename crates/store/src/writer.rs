//! [`HistoryWriter`]: group commit of the message history.
//!
//! ```text
//!  session tasks (any runtime)             store runtime
//!  ───────────────────────────             ─────────────
//!  writer.append(msg).await ──┐
//!  writer.append(msg).await ──┼─► bounded mpsc ─► writer task: take up to `max_batch`
//!  writer.try_append(msg)   ──┘   (capacity        messages, or what arrives within
//!         │                        `queue_capacity`) `max_delay` of the first one
//!         ▼                                          │ one transaction (SQLite) /
//!  Ticket ◄──── Strict: resolved after COMMIT ◄──────┘ one INSERT … UNNEST (PostgreSQL)
//! ```
//!
//! # Back-pressure, not loss
//!
//! The queue is bounded. [`HistoryWriter::append`] is `async` and *waits* for room when the
//! queue is full: it never blocks the thread (the caller's task is parked, its runtime goes on
//! with other tasks), and a session whose messages cannot be stored fast enough stops being
//! read, as with the server's other bounded queues. [`HistoryWriter::try_append`] never waits
//! and hands the message back in [`TryAppendError::Full`], for callers that prefer to refuse
//! (`SERVER_BUSY`) over waiting. No message is dropped silently.
//!
//! # Durability
//!
//! - [`Durability::Strict`]: the [`Ticket`] of an append resolves only once the batch holding
//!   the message has committed (or failed), so the server can answer `BROADCAST_RES OK` after
//!   the commit. Many messages share one commit (group commit), so throughput does not suffer
//!   from waiting; default `max_delay` 2 ms.
//! - [`Durability::Batched`]: the ticket resolves at once. A message is committed at most
//!   `max_delay` (default 100 ms) after the writer takes it from the queue, plus the time of the
//!   commit (and of retries, see below). A crash can lose what was not yet committed.
//!   [`HistoryWriter::flush`] commits everything appended before it; [`HistoryWriter::close`]
//!   commits everything and stops the writer.
//!
//! # Failures
//!
//! A failed commit is retried ([`WriterConfig::retries`] times, after 10 ms, 100 ms, 1 s, …;
//! re-inserting is harmless since existing ids are skipped). Meanwhile the queue fills and
//! appends wait: back-pressure again. When the retries are exhausted the batch's tickets (and
//! the next [`flush`](HistoryWriter::flush)) get [`WriteError::Commit`], the messages are
//! counted in [`WriterStats::failed`], and the writer goes on with the next batch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::db::Db;
use crate::error::Error;
use crate::history::{self, HistoryMessage};
use crate::store::Store;

/// When an append counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The ticket resolves after the message's batch has committed.
    Strict,
    /// The ticket resolves at once; the message is committed within `max_delay` (plus the
    /// commit itself).
    Batched,
}

/// How the writer batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Strict or batched.
    pub durability: Durability,
    /// Most messages in one commit. Default 1024.
    pub max_batch: usize,
    /// How long the writer waits for more messages after the first of a batch before it
    /// commits. Default 2 ms for `Strict`, 100 ms for `Batched`. Zero commits whatever is queued
    /// at once.
    pub max_delay: Duration,
    /// Capacity of the queue in front of the writer, messages. Default 8192.
    pub queue_capacity: usize,
    /// How often a failed commit is retried before its messages are given up. Default 3.
    pub retries: u32,
}

impl WriterConfig {
    /// The defaults for `durability`.
    pub fn new(durability: Durability) -> Self {
        WriterConfig {
            durability,
            max_batch: 1024,
            max_delay: match durability {
                Durability::Strict => Duration::from_millis(2),
                Durability::Batched => Duration::from_millis(100),
            },
            queue_capacity: 8192,
            retries: 3,
        }
    }
}

/// Why a message was not stored, or a flush did not complete.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The writer has stopped ([`HistoryWriter::close`], or the store shut down).
    #[error("the history writer has stopped")]
    Closed,
    /// The batch could not be committed, even after the retries.
    #[error("storing the message history failed: {0}")]
    Commit(#[source] Arc<Error>),
}

/// Why [`HistoryWriter::try_append`] refused a message; the message is handed back.
#[derive(Debug, thiserror::Error)]
pub enum TryAppendError {
    /// The queue is full: the database is slower than the message rate right now.
    #[error("the history queue is full")]
    Full(HistoryMessage),
    /// The writer has stopped.
    #[error("the history writer has stopped")]
    Closed(HistoryMessage),
}

/// Counters of one writer, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Messages committed.
    pub committed: u64,
    /// Commits (batches) that succeeded.
    pub commits: u64,
    /// Messages given up after the retries.
    pub failed: u64,
    /// Commit attempts that failed and were retried.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    committed: AtomicU64,
    commits: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

type Reply = oneshot::Sender<Result<(), WriteError>>;

enum Command {
    Append(HistoryMessage, Option<Reply>),
    Flush(Reply),
    Close,
}

/// Resolves when the message it was issued for is stored (see [`Durability`]).
///
/// Dropping a ticket does not cancel anything: the message is stored all the same.
#[derive(Debug)]
pub struct Ticket(Option<oneshot::Receiver<Result<(), WriteError>>>);

impl Future for Ticket {
    type Output = Result<(), WriteError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            None => Poll::Ready(Ok(())),
            Some(receiver) => Pin::new(receiver)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(WriteError::Closed))),
        }
    }
}

/// The handle to the writer task: `Send + Sync + Clone`, usable from any runtime. The task
/// ends when [`HistoryWriter::close`] is called or the last handle is dropped (after committing
/// what is queued in both cases).
#[derive(Debug, Clone)]
pub struct HistoryWriter {
    tx: mpsc::Sender<Command>,
    durability: Durability,
    counters: Arc<Counters>,
    finished: watch::Receiver<bool>,
    /// Keeps the store's runtime, where the task runs, alive while handles exist.
    _store: Store,
}

impl HistoryWriter {
    /// Starts a writer task on `store`'s runtime (see [`Store`] for why there).
    pub fn spawn(store: &Store, config: WriterConfig) -> HistoryWriter {
        let config = WriterConfig {
            max_batch: config.max_batch.max(1),
            queue_capacity: config.queue_capacity.max(1),
            ..config
        };
        let (tx, rx) = mpsc::channel(config.queue_capacity);
        let counters = Arc::new(Counters::default());
        let (finished_tx, finished) = watch::channel(false);
        let task_counters = Arc::clone(&counters);
        store.spawn(move |db| async move {
            let mut task = Task {
                db,
                rx,
                config,
                counters: task_counters,
                batch: Vec::with_capacity(config.max_batch),
                waiters: Vec::new(),
                flushes: Vec::new(),
                unreported_failure: None,
            };
            task.run().await;
            let _ = finished_tx.send(true);
        });
        HistoryWriter {
            tx,
            durability: config.durability,
            counters,
            finished,
            _store: store.clone(),
        }
    }

    /// Queues `message`, waiting for room if the queue is full (back-pressure; the thread is
    /// never blocked). Returns the message's [`Ticket`]. Fails only with
    /// [`WriteError::Closed`].
    ///
    /// Cancel-safe: if this future is dropped before it completes, the message was not queued.
    pub async fn append(&self, message: HistoryMessage) -> Result<Ticket, WriteError> {
        let (reply, ticket) = self.ticket();
        self.tx
            .send(Command::Append(message, reply))
            .await
            .map_err(|_| WriteError::Closed)?;
        Ok(ticket)
    }

    /// Queues `message` if there is room now; never waits.
    pub fn try_append(&self, message: HistoryMessage) -> Result<Ticket, TryAppendError> {
        let (reply, ticket) = self.ticket();
        self.tx
            .try_send(Command::Append(message, reply))
            .map(|()| ticket)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(Command::Append(m, _)) => TryAppendError::Full(m),
                mpsc::error::TrySendError::Closed(Command::Append(m, _)) => {
                    TryAppendError::Closed(m)
                }
                _ => unreachable!("an Append command was sent"),
            })
    }

    fn ticket(&self) -> (Option<Reply>, Ticket) {
        match self.durability {
            Durability::Strict => {
                let (reply, ticket) = oneshot::channel();
                (Some(reply), Ticket(Some(ticket)))
            }
            Durability::Batched => (None, Ticket(None)),
        }
    }

    /// Commits everything appended (through any handle) before this call. An error if the
    /// writer has stopped, or if any batch failed since the previous flush.
    pub async fn flush(&self) -> Result<(), WriteError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Command::Flush(reply))
            .await
            .map_err(|_| WriteError::Closed)?;
        done.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Commits everything queued and stops the writer; returns when it has stopped. Appends
    /// after this fail with `Closed`. Calling it again (from any clone) just waits.
    pub async fn close(&self) {
        // An error means the task is already closing; wait for it all the same.
        let _ = self.tx.send(Command::Close).await;
        let mut finished = self.finished.clone();
        // An error means the task was dropped with the runtime: finished too.
        let _ = finished.wait_for(|done| *done).await;
    }

    /// The durability this writer was started with.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The counters so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            committed: self.counters.committed.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
        }
    }
}

/// The writer task's state.
struct Task {
    db: Db,
    rx: mpsc::Receiver<Command>,
    config: WriterConfig,
    counters: Arc<Counters>,
    /// Messages of the batch being gathered.
    batch: Vec<HistoryMessage>,
    /// Strict-mode tickets of `batch`.
    waiters: Vec<Reply>,
    /// Flushes waiting for `batch` to commit.
    flushes: Vec<Reply>,
    /// A failure no flush has reported yet.
    unreported_failure: Option<Arc<Error>>,
}

impl Task {
    async fn run(&mut self) {
        let mut commands = Vec::with_capacity(self.config.max_batch);
        loop {
            // Wait for the first command of a batch.
            if self
                .rx
                .recv_many(&mut commands, self.config.max_batch)
                .await
                == 0
            {
                break; // Every handle is gone.
            }
            let mut stop = self.absorb(&mut commands);
            // Gather more until the batch is full, the delay passes, or a flush or close asks
            // for a commit now.
            let deadline = Instant::now() + self.config.max_delay;
            while !stop && self.flushes.is_empty() && self.batch.len() < self.config.max_batch {
                let room = self.config.max_batch - self.batch.len();
                tokio::select! {
                    biased;
                    n = self.rx.recv_many(&mut commands, room) => {
                        if n == 0 {
                            stop = true;
                        } else {
                            stop = self.absorb(&mut commands);
                        }
                    }
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
            self.commit().await;
            if stop {
                break;
            }
        }
        // Closing: refuse new appends, then commit what is still queued.
        self.rx.close();
        while self
            .rx
            .recv_many(&mut commands, self.config.max_batch)
            .await
            > 0
        {
            self.absorb(&mut commands);
            self.commit().await;
        }
        self.commit().await;
    }

    /// Takes `commands` into the batch; true if one was `Close`. Appends after a `Close` (from
    /// other handles, before the channel closed) are still taken: nothing queued is lost.
    fn absorb(&mut self, commands: &mut Vec<Command>) -> bool {
        let mut close = false;
        for command in commands.drain(..) {
            match command {
                Command::Append(message, reply) => {
                    self.batch.push(message);
                    self.waiters.extend(reply);
                }
                Command::Flush(reply) => self.flushes.push(reply),
                Command::Close => close = true,
            }
        }
        close
    }

    /// Commits the batch (with retries) and answers its tickets and flushes.
    async fn commit(&mut self) {
        let result = if self.batch.is_empty() {
            Ok(())
        } else {
            self.commit_with_retries().await
        };
        let n = self.batch.len() as u64;
        self.batch.clear();
        let ticket_result = match result {
            Ok(()) => {
                if n > 0 {
                    self.counters.committed.fetch_add(n, Ordering::Relaxed);
                    self.counters.commits.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(error) => {
                tracing::error!(messages = n, %error, "history batch could not be stored");
                self.counters.failed.fetch_add(n, Ordering::Relaxed);
                let error = Arc::new(error);
                self.unreported_failure = Some(Arc::clone(&error));
                Err(WriteError::Commit(error))
            }
        };
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(ticket_result.clone());
        }
        if !self.flushes.is_empty() {
            let flush_result = match self.unreported_failure.take() {
                Some(error) => Err(WriteError::Commit(error)),
                None => Ok(()),
            };
            for flush in self.flushes.drain(..) {
                let _ = flush.send(flush_result.clone());
            }
        }
    }

    async fn commit_with_retries(&self) -> Result<(), Error> {
        let mut backoff = Duration::from_millis(10);
        let mut attempt = 0;
        loop {
            match history::insert(&self.db, &self.batch).await {
                Ok(()) => return Ok(()),
                Err(error) if attempt < self.config.retries => {
                    attempt += 1;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        attempt,
                        messages = self.batch.len(),
                        %error,
                        "history commit failed; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 10).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error),
            }
        }
    }
}
