//! Resume: issuing tokens, handing a resuming connection to its session, detaching, adopting.

use std::time::Duration;

use suda_protocol::{Packet, ResultCode, WireStr};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::close::ResumeRequest;
use super::{Resumable, Session};
use crate::auth::is_valid_username;
use crate::connection::Connection;
use crate::limits::ThrottleKey;
use crate::outbox::Outbox;
use crate::resume::{Attach, ReplayLog, ResumeRefusal, new_token};
use crate::stats::bump;

impl Session {
    fn grace(&self) -> Duration {
        self.shard.shared.config.resume_grace
    }

    /// `SESSION_TOKEN_REQ`: makes the session resumable and hands out a fresh token.
    pub(super) fn issue_token(&mut self) -> Packet {
        let refuse = |result| Packet::SessionTokenRes {
            result,
            token: WireStr::default(),
            grace_ms: 0,
        };
        let Some(identity) = &self.identity else {
            return refuse(ResultCode::NOT_AUTHENTICATED);
        };
        if self.grace().is_zero() {
            return refuse(ResultCode::NOT_AVAILABLE);
        }
        let token = match new_token() {
            Ok(token) => token,
            Err(err) => {
                session_event!(self, WARN, %err, "no randomness for a resume token");
                return refuse(ResultCode::NOT_AVAILABLE);
            }
        };
        let shared = self.shard.shared.clone();
        let config = &shared.config;
        let user = identity.name.to_ascii_lowercase();
        let tx = match &mut self.resumable {
            Some(resumable) => {
                let old = std::mem::replace(&mut resumable.token, token.clone());
                shared.resume.remove(&old);
                resumable.attach.0.clone()
            }
            None => {
                let attach = mpsc::channel(1);
                let tx = attach.0.clone();
                self.resumable = Some(Box::new(Resumable {
                    token: token.clone(),
                    attach,
                    evict: None,
                }));
                tx
            }
        };
        shared.resume.insert(&token, self.me.id, &user, tx);
        // With history, the log remembers the ids of what it evicts, enough to fill any replay
        // within `max_replay` from history (see `ReplayLog`); without, they would be no use.
        let keep_evicted = if shared.storage().is_some() {
            config.max_replay.saturating_add(1)
        } else {
            0
        };
        self.me.replay.borrow_mut().get_or_insert_with(|| {
            Box::new(
                ReplayLog::new(
                    config.replay_log_messages,
                    config.replay_log_bytes,
                    keep_evicted,
                )
                .starting_after(self.me.unlogged_mark.get()),
            )
        });
        Packet::SessionTokenRes {
            result: ResultCode::OK,
            token: token.into(),
            grace_ms: u32::try_from(self.grace().as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// `RESUME_REQ` on a fresh connection: checks it, and either answers with a refusal (None)
    /// or asks the run loop to hand the connection over.
    pub(super) async fn check_resume(
        &mut self,
        username: &WireStr,
        token: &WireStr,
        last_message_id: u64,
    ) -> Option<ResumeRequest> {
        let refuse = |session: &Self, result| {
            session.reply(&Packet::ResumeRes {
                result,
                session_id: 0,
                token: WireStr::default(),
                replayed: 0,
            });
            None
        };
        if self.identity.is_some() {
            return refuse(self, ResultCode::ALREADY_AUTHENTICATED);
        }
        if self.grace().is_zero() {
            return refuse(self, ResultCode::NOT_AVAILABLE);
        }
        let (Ok(name), Ok(token)) = (username.to_str(), token.to_str()) else {
            return refuse(self, ResultCode::INVALID_TOKEN);
        };
        if !is_valid_username(name.as_bytes()) {
            return refuse(self, ResultCode::INVALID_TOKEN);
        }
        // Guessing tokens is throttled like guessing passwords.
        let shared = self.shard.shared.clone();
        let user = name.to_ascii_lowercase();
        let mut keys = vec![ThrottleKey::Account(user.clone().into())];
        if !shared.ip_limits.is_exempt(self.me.ip()) {
            keys.push(ThrottleKey::Ip(self.me.ip()));
        }
        let delay = shared.login_throttle.delay(&keys, Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if !shared.resume.knows(token, &user) {
            shared.login_throttle.failed(&keys, Instant::now());
            session_event!(self, DEBUG, "resume refused: invalid token");
            return refuse(self, ResultCode::INVALID_TOKEN);
        }
        Some(ResumeRequest {
            token: token.to_owned(),
            user,
            last_message_id,
            pipelined: bytes::BytesMut::new(),
        })
    }

    /// Hands `conn` (and what it still had to send) to the session `request` resumes. On
    /// refusal the connection comes back, with the refusal queued, to go on serving here.
    pub(super) async fn hand_over(
        &mut self,
        mut conn: Connection,
        request: ResumeRequest,
    ) -> Result<(), Connection> {
        let Some(guard) = self.guard.take() else {
            return Ok(());
        };
        // The connection goes on reading, for the session it resumes.
        let reader = self.shard.shared.reader_guard();
        // Send what can be sent now; the rest travels with the socket and goes first.
        let _ = conn.flush(&mut self.me.outbox.borrow_mut());
        let unsent = self.me.outbox.borrow_mut().take_unsent();
        let (stream, tls) = match conn.into_parts() {
            Ok(parts) => parts,
            Err(err) => {
                session_event!(self, WARN, %err, "cannot hand the connection over");
                return Ok(());
            }
        };
        let attach = Box::new(Attach {
            stream,
            tls,
            pipelined: request.pipelined,
            unsent,
            last_message_id: request.last_message_id,
            peer: self.peer(),
            guard,
            reader,
        });
        let shared = self.shard.shared.clone();
        match shared.resume.attach(&request.token, &request.user, attach) {
            Ok(session) => {
                session_event!(self, DEBUG, %session, "connection handed to the session it resumes");
                Ok(())
            }
            Err((refusal, attach)) => {
                let Attach {
                    stream,
                    tls,
                    pipelined,
                    unsent,
                    guard,
                    reader,
                    ..
                } = *attach;
                self.guard = Some(guard);
                self.reader = Some(reader);
                let conn = match Connection::from_parts(stream, tls, pipelined) {
                    Ok(conn) => conn,
                    Err(err) => {
                        session_event!(self, WARN, %err, "cannot take the connection back");
                        return Ok(());
                    }
                };
                let mut outbox = self.me.outbox.borrow_mut();
                for piece in unsent {
                    outbox.push_shared(piece, Instant::now());
                }
                drop(outbox);
                let result = match refusal {
                    ResumeRefusal::InvalidToken => ResultCode::INVALID_TOKEN,
                    ResumeRefusal::Busy => ResultCode::NOT_AVAILABLE,
                };
                self.reply(&Packet::ResumeRes {
                    result,
                    session_id: 0,
                    token: WireStr::default(),
                    replayed: 0,
                });
                Err(conn)
            }
        }
    }

    /// Whether the session may wait for a resume instead of ending now.
    pub(super) fn try_detach(&mut self) -> bool {
        let shared = &self.shard.shared;
        let resumable = self.resumable.is_some()
            && self.identity.is_some()
            && !self.grace().is_zero()
            && !shared.shutdown.is_cancelled();
        if !resumable {
            return false;
        }
        let Some(evict) = shared
            .resume
            .try_detach(self.me.id, shared.config.max_detached)
        else {
            return false;
        };
        if let Some(resumable) = &mut self.resumable {
            resumable.evict = Some(evict);
        }
        self.me.detached.set(true);
        bump(&self.shard.stats.detaches, 1);
        true
    }

    /// Waits, detached, for a connection that resumes the session, until the grace period ends.
    pub(super) async fn wait_for_resume(&mut self) -> Option<Connection> {
        let shared = self.shard.shared.clone();
        let deadline = Instant::now() + self.grace();
        let evict = self
            .resumable
            .as_mut()
            .and_then(|resumable| resumable.evict.take())
            .unwrap_or_default();
        let attach = tokio::select! {
            attach = super::next_attach(self.resumable.as_mut().map(|r| &mut r.attach)) => Some(attach),
            () = tokio::time::sleep_until(deadline) => None,
            () = shared.shutdown.cancelled() => None,
            () = evict.cancelled() => {
                session_event!(self, INFO, "taken over by a login that proved the identity");
                None
            }
        };
        shared.resume.reattached_or_expired(self.me.id);
        match attach {
            Some(attach) => self.adopt(*attach).await,
            None => {
                bump(&self.shard.stats.detach_expiries, 1);
                session_event!(self, INFO, "resume grace period over; session ended");
                None
            }
        }
    }

    /// Continues the session on the connection in `attach`: replays what the client missed,
    /// with a new token, then serves it. Waits only for history, when the replay needs it.
    pub(super) async fn adopt(&mut self, attach: Attach) -> Option<Connection> {
        let Attach {
            stream,
            tls,
            pipelined,
            unsent,
            last_message_id,
            peer,
            guard,
            reader,
        } = attach;
        let conn = match Connection::from_parts(stream, tls, pipelined) {
            Ok(conn) => conn,
            Err(err) => {
                session_event!(self, WARN, %err, "cannot adopt the resuming connection");
                return None;
            }
        };
        // Until the replay is queued, deliveries go to the log only (a session taken over from
        // a live connection is attached): the replay, planned from the log, includes them.
        self.me.detached.set(true);
        let replay = self.replay(last_message_id).await;
        self.guard = Some(guard);
        self.reader = Some(reader);
        self.peer_port = peer.port();
        self.me.set_ip(peer.ip());
        self.me.detached.set(false);
        let shared = self.shard.shared.clone();
        let config = &shared.config;
        let now = Instant::now();
        *self.me.outbox.borrow_mut() = Outbox::new(config.send_queue_limit);
        {
            let mut outbox = self.me.outbox.borrow_mut();
            for piece in unsent {
                outbox.push_shared(piece, now);
            }
        }
        let token = match new_token() {
            Ok(token) => token,
            Err(err) => {
                session_event!(self, WARN, %err, "no randomness for a resume token");
                return None;
            }
        };
        if let (Some(resumable), Some(identity)) = (&mut self.resumable, &self.identity) {
            let old = std::mem::replace(&mut resumable.token, token.clone());
            shared.resume.remove(&old);
            shared.resume.insert(
                &token,
                self.me.id,
                &identity.name.to_ascii_lowercase(),
                resumable.attach.0.clone(),
            );
        }
        let result = if replay.gap {
            bump(&self.shard.stats.resume_gaps, 1);
            ResultCode::RESUMED_WITH_GAP
        } else {
            ResultCode::OK
        };
        bump(&self.shard.stats.resumes, 1);
        self.reply(&Packet::ResumeRes {
            result,
            session_id: self.me.id.0,
            token: token.into(),
            replayed: u32::try_from(replay.packets.len()).unwrap_or(u32::MAX),
        });
        {
            // Replayed packets are already in the log: queue them without recording again.
            let mut outbox = self.me.outbox.borrow_mut();
            for packet in replay.packets {
                outbox.push_shared(packet, now);
            }
        }
        session_event!(self, INFO, replayed = %result, "session resumed");
        self.last_activity = now;
        if let Some(awake) = &mut self.awake {
            awake.write_stalled_since = None;
            awake.partial_since = None;
        }
        self.timer_deadline = now + config.idle_timeout;
        Some(conn)
    }

    /// Ends a session that will not be resumed.
    pub(super) async fn end(mut self) {
        let announce = !self.shard.shared.shutdown.is_cancelled();
        self.depart(announce).await;
        self.leave();
    }
}
