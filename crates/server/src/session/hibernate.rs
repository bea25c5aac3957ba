//! A session going to sleep and waking up (see [`crate::hibernate`] for why and when).

#[cfg(unix)]
pub(crate) use self::unix::{Hibernating, wake_hibernating};

/// A hibernating session. Sessions hibernate on Unix only; elsewhere there are none.
#[cfg(not(unix))]
pub(crate) enum Hibernating {}

#[cfg(not(unix))]
impl Hibernating {
    /// When the session's next deadline comes.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        match *self {}
    }
}

#[cfg(not(unix))]
impl super::Session {
    pub(super) fn can_hibernate(&self, _conn: &crate::connection::Connection) -> bool {
        false
    }

    pub(super) fn resume_wakes_hibernation(&mut self) -> Option<Box<crate::resume::Attach>> {
        None
    }

    pub(super) fn hibernate(
        mut self: Box<Self>,
        conn: crate::connection::Connection,
    ) -> Result<(), (Box<Self>, crate::connection::Connection)> {
        self.stay_awake();
        Err((self, conn))
    }
}

impl super::Session {
    /// Out of its read loop (closing, moving, or hibernating), a session is not to be asked
    /// to hibernate: a request left pending would keep its outbox ready.
    pub(super) fn stay_awake(&mut self) {
        self.me.may_hibernate.set(false);
        self.me.outbox.borrow_mut().take_hibernation_asked();
    }
}

#[cfg(unix)]
mod unix {
    use std::rc::Rc;
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use bytes::BytesMut;
    use tokio::time::Instant;

    use super::super::Session;
    use crate::connection::Connection;
    use crate::resume::Attach;
    use crate::shard::Shard;
    use crate::stats::bump;

    /// A hibernating session: its whole state, and its socket out of tokio's reactor.
    pub(crate) struct Hibernating {
        session: Box<Session>,
        socket: std::net::TcpStream,
    }

    impl Hibernating {
        /// When the session's next deadline comes.
        pub(crate) fn deadline(&self) -> Instant {
            self.session.timer_deadline
        }
    }

    /// A session that could not hibernate, with its connection: it stays awake.
    type StaysAwake = (Box<Session>, Connection);

    impl Session {
        /// Whether nothing holds the session awake: it is logged in on a plain connection,
        /// attached, with nothing to write, nothing half-read or batched, no response waiting
        /// for a commit, and the server is not shutting down.
        pub(in crate::session) fn can_hibernate(&self, conn: &Connection) -> bool {
            let open = self
                .shard
                .hibernation
                .as_ref()
                .is_some_and(|hibernation| hibernation.is_open());
            open && conn.is_plain()
                && !conn.has_partial()
                && !conn.tls_pending()
                && self.identity.is_some()
                && self.stalls() == (None, None)
                && !self.me.detached.get()
                && !self.has_deferred()
                && self.batched().is_none_or(super::super::ReadBatch::is_empty)
                && {
                    let outbox = self.me.outbox.borrow();
                    outbox.is_empty() && !outbox.ejected() && !outbox.overflowed()
                }
                && !self.shard.shared.shutdown.is_cancelled()
        }

        /// Makes a connection resuming this session wake it while it hibernates; or, when one
        /// already waits, returns it, to be taken over instead of hibernating.
        pub(in crate::session) fn resume_wakes_hibernation(&mut self) -> Option<Box<Attach>> {
            let (_, attach) = &mut self.resumable.as_mut()?.attach;
            let hibernation = self.shard.hibernation.as_ref()?;
            // Sent from whichever worker the resuming connection arrived on: a thread-safe
            // waker, allocated only for sessions that can be resumed.
            let waker = Waker::from(Arc::new(hibernation.wake_for(self.key as usize)));
            match attach.poll_recv(&mut Context::from_waker(&waker)) {
                Poll::Ready(Some(attach)) => Some(attach),
                Poll::Ready(None) | Poll::Pending => None,
            }
        }

        /// Hibernates: the socket leaves tokio's reactor for the worker's poll, the session
        /// goes into its shard's table, and its task ends. When the socket cannot be watched
        /// the session comes back with it, to stay awake; when the socket is lost on the way,
        /// the session ends in a task of its own.
        pub(in crate::session) fn hibernate(
            mut self: Box<Self>,
            conn: Connection,
        ) -> Result<(), StaysAwake> {
            self.stay_awake();
            let Some(hibernation) = self.shard.hibernation.as_ref() else {
                return Err((self, conn));
            };
            let socket = match conn.into_parts() {
                Ok((socket, _)) => socket,
                Err(err) => {
                    session_event!(self, WARN, %err, "connection lost on the way to hibernation");
                    lost(self);
                    return Ok(());
                }
            };
            if let Err(err) = hibernation.watch(&socket, self.key as usize) {
                session_event!(self, WARN, %err, "cannot hibernate; staying awake");
                return match Connection::from_parts(socket, None, BytesMut::new()) {
                    Ok(conn) => Err((self, conn)),
                    Err(err) => {
                        session_event!(self, WARN, %err, "connection lost on the way back");
                        lost(self);
                        Ok(())
                    }
                };
            }
            // Nothing in it (checked by `can_hibernate`): made again when needed.
            self.awake = None;
            self.me
                .outbox
                .borrow_mut()
                .hibernate(self.key, hibernation.wakeups().clone());
            bump(&self.shard.stats.hibernations, 1);
            let shard = self.shard.clone();
            let key = self.key as usize;
            shard.hibernate(
                key,
                Hibernating {
                    session: self,
                    socket,
                },
            );
            Ok(())
        }
    }

    /// Wakes the hibernating session `key` of `shard`, if it still hibernates: its socket goes
    /// back to tokio's reactor and it gets a task again.
    pub(crate) fn wake_hibernating(shard: &Rc<Shard>, key: usize) {
        let Some(Hibernating { session, socket }) = shard.take_hibernating(key) else {
            // Woken twice, or a readiness event that raced a wake-up: nothing to do.
            return;
        };
        if let Some(hibernation) = &shard.hibernation {
            hibernation.unwatch(&socket);
        }
        session.me.outbox.borrow_mut().wake_up();
        bump(&shard.stats.awakenings, 1);
        match Connection::from_parts(socket, None, BytesMut::new()) {
            Ok(conn) => {
                shard.tasks.spawn_local(session.run(conn));
            }
            Err(err) => {
                session_event!(session, WARN, %err, "cannot wake from hibernation");
                lost(session);
            }
        }
    }

    /// Ends a session whose socket was lost between tokio's reactor and the worker's poll (a
    /// registration failing, which takes the socket with it): as for any lost connection.
    fn lost(session: Box<Session>) {
        session.shard.stats.closed(crate::stats::CloseKind::Io);
        let shard = session.shard.clone();
        shard.tasks.spawn_local(session.end());
    }
}
