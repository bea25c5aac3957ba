//! Getting a lost connection back: the part of the connection task that runs between two
//! sockets, when reconnecting is on.
//!
//! In order: requests in flight fail with [`ClientError::ConnectionLost`]; the events not yet
//! delivered go out, then [`Event::ConnectionLost`]; then attempts, each announced by
//! [`Event::Reconnecting`], wait out the backoff, connect, and resume the session (see
//! `handshake`). Meanwhile new requests are held, in order, up to `command_capacity` (the rest
//! wait in the channel), and each fails with [`ClientError::ReconnectTimeout`] once it has
//! waited `request_timeout`. When an attempt succeeds, the outcome's event goes out, the held
//! requests are queued behind anything the task must send first, and `drive` takes over the new
//! socket.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;

use bytes::BytesMut;
use tokio::sync::mpsc;

use super::{READ_CHUNK, Reconnect, Request, State, sleep_until};
use crate::error::ClientError;
use crate::event::Event;
use crate::handshake::{self, Failure, Outcome};
use crate::transport::Transport;

impl State {
    /// Gets a new connection after losing one for `lost`. Returns the new socket, or why the
    /// client must end: [`ClientError::ReconnectFailed`], or `Closed` when the application
    /// closed it meanwhile.
    pub(super) async fn recover<S: Transport>(
        &mut self,
        lost: ClientError,
        reconnect: &Reconnect<S>,
        requests: &mut mpsc::Receiver<Request>,
    ) -> Result<S, ClientError> {
        self.shared.set_connected(false);
        // Written, or about to be: the server may or may not have acted on them.
        self.pending
            .fail_all(&ClientError::ConnectionLost(Box::new(lost.clone())));
        // Undecoded input is dropped; what it held is replayed, since only decoded
        // notifications count as received.
        self.read_buf.clear();
        self.write_buf.clear();
        if let Some(event) = self.stalled.take() {
            self.emit(event).await?;
        }
        if let ClientError::ServerClosed { code, reason } = &lost {
            let closing = Event::ServerClosing {
                code: *code,
                reason: reason.clone(),
            };
            self.emit(closing).await?;
        }
        self.emit(Event::ConnectionLost(lost.clone())).await?;

        let mut last = lost;
        let mut attempts: u32 = 0;
        loop {
            if reconnect
                .policy
                .max_attempts
                .is_some_and(|max| attempts >= max)
            {
                return Err(ClientError::ReconnectFailed {
                    attempts,
                    last: Box::new(last),
                });
            }
            let Some((resume, login)) = self
                .session
                .as_ref()
                .map(|session| (session.resume_request(), session.login_request()))
            else {
                // Unreachable: only a logged-in session is reconnected.
                return Err(last);
            };
            attempts += 1;
            let delay = reconnect.policy.delay(attempts, fastrand::f64());
            self.emit(Event::Reconnecting {
                attempt: attempts,
                delay,
            })
            .await?;

            let connecting = (reconnect.connector)();
            let within = self.request_timeout;
            let attempt = async move {
                let mut token_refused = false;
                let outcome = async {
                    tokio::time::sleep(delay).await;
                    let mut stream = connecting.await.map_err(Failure::of)?;
                    let mut buf = BytesMut::with_capacity(READ_CHUNK);
                    let outcome = handshake::run(
                        &mut stream,
                        &mut buf,
                        resume,
                        login,
                        within,
                        &mut token_refused,
                    )
                    .await?;
                    Ok::<_, Failure>((stream, buf, outcome))
                }
                .await;
                (outcome, token_refused)
            };
            let (outcome, token_refused) = self.hold_requests_during(attempt, requests).await?;
            if token_refused {
                if let Some(session) = &mut self.session {
                    session.clear_token();
                }
            }
            match outcome {
                Ok((stream, buf, outcome)) => {
                    tracing::debug!(attempts, ?outcome, "suda connection is back");
                    self.read_buf = buf;
                    self.shared.set_connected(true);
                    let event = self.restore(outcome);
                    self.emit(event).await?;
                    for request in std::mem::take(&mut self.held) {
                        self.queue(request);
                    }
                    return Ok(stream);
                }
                Err(Failure::Retry(reason)) => {
                    tracing::debug!(attempts, %reason, "reconnect attempt failed");
                    last = reason;
                }
                Err(Failure::GiveUp(reason)) => {
                    return Err(ClientError::ReconnectFailed {
                        attempts,
                        last: Box::new(reason),
                    });
                }
            }
        }
    }

    /// Updates the session for how it came back, and returns the event that tells the
    /// application.
    fn restore(&mut self, outcome: Outcome) -> Event {
        self.last_queued = tokio::time::Instant::now();
        match outcome {
            Outcome::Resumed {
                gap,
                token,
                replayed,
            } => {
                if let Some(session) = &mut self.session {
                    session.set_token(token);
                }
                if gap {
                    Event::ResumedWithGap { replayed }
                } else {
                    Event::Resumed { replayed }
                }
            }
            Outcome::LoggedIn { session_id } => {
                if let Some(session) = &mut self.session {
                    session.restarted();
                }
                // Ahead of the held requests: the new session should be in the same state as
                // the old one (as far as it can be) before the application's next request, and
                // the next loss resumable as soon as can be.
                self.restore_status();
                self.request_token();
                Event::Reconnected { session_id }
            }
        }
    }

    /// Runs `work` while holding the requests that arrive meanwhile and failing those that wait
    /// too long. `Err(Closed)` if the application closes the client, or lets go of every handle
    /// and of the events, meanwhile.
    async fn hold_requests_during<F: Future>(
        &mut self,
        work: F,
        requests: &mut mpsc::Receiver<Request>,
    ) -> Result<F::Output, ClientError> {
        let mut work = pin!(work);
        let close = self.shared.close.clone();
        let events = self.events.clone();
        loop {
            let taking = self.requests_open && self.held.len() < self.held_capacity;
            let expiry = self
                .held
                .iter()
                .map(|request| request.issued + self.request_timeout)
                .min();
            tokio::select! {
                () = close.cancelled() => return Err(ClientError::Closed),
                done = &mut work => return Ok(done),
                request = requests.recv(), if taking => match request {
                    Some(request) => {
                        self.held.push_back(request);
                        self.expire_held();
                    }
                    None => {
                        self.requests_open = false;
                        if self.events.is_closed() {
                            return Err(ClientError::Closed);
                        }
                    }
                },
                () = sleep_until(expiry) => self.expire_held(),
                () = events.closed(), if !self.requests_open => return Err(ClientError::Closed),
            }
        }
    }

    /// Fails the held requests that have waited `request_timeout`.
    fn expire_held(&mut self) {
        let now = tokio::time::Instant::now();
        let after = self.request_timeout;
        let (expired, kept): (VecDeque<Request>, VecDeque<Request>) =
            std::mem::take(&mut self.held)
                .into_iter()
                .partition(|request: &Request| request.issued + after <= now);
        self.held = kept;
        for request in expired {
            let _ = request.reply.send(Err(ClientError::ReconnectTimeout {
                request: request.packet.packet_type(),
                after,
            }));
        }
    }

    /// Delivers `event`, waiting for room; gives up only if the application closes the client.
    async fn emit(&mut self, event: Event) -> Result<(), ClientError> {
        let close = self.shared.close.clone();
        tokio::select! {
            () = close.cancelled() => Err(ClientError::Closed),
            // An error means the application dropped `Events`: nobody wants the event.
            _ = self.events.send(event) => Ok(()),
        }
    }
}
