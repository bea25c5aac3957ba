//! What a client keeps to get its session back after a lost connection, and the duplicate filter
//! for replayed notifications. No I/O and no clock, so it is tested on its own.

use std::collections::{HashSet, VecDeque};

use suda_protocol::{Packet, WireStr};

/// How many recent message ids the duplicate filter remembers.
pub(crate) const RECENT_IDS: usize = 4096;

/// A logged-in session that can be resumed: kept by the connection task from a successful
/// `LOGIN_RES` on, when reconnecting is on.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    username: WireStr,
    /// Kept to log in again when the session cannot be resumed.
    password: WireStr,
    /// The token of the last `SESSION_TOKEN_RES` or `RESUME_RES`; `None` while there is none
    /// (not answered yet, or the server has resume turned off or is full).
    token: Option<WireStr>,
    /// Id of the last notification read from the socket, in arrival order; 0 when none yet.
    ///
    /// Replay is positional (the server replays what it delivered *after* this one), so this is
    /// the last id received, not the largest: ids of different senders may arrive out of order.
    /// A notification counts as received once it is decoded, because from then on the client
    /// owns it (it is in the event channel or waiting for room there) and will surface it; bytes
    /// not decoded yet when a connection drops are thrown away, and those messages are replayed.
    last_seen: u64,
}

impl Session {
    /// A session just logged in with these credentials.
    pub(crate) fn new(username: WireStr, password: WireStr) -> Self {
        Self {
            username,
            password,
            token: None,
            last_seen: 0,
        }
    }

    /// Keeps the token a server handed out, replacing (and so forgetting) the previous one.
    pub(crate) fn set_token(&mut self, token: WireStr) {
        self.token = (!token.is_empty()).then_some(token);
    }

    /// Forgets the token: the next reconnect logs in afresh.
    pub(crate) fn clear_token(&mut self) {
        self.token = None;
    }

    /// Whether a token is held.
    #[cfg(test)]
    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Records a notification as received.
    pub(crate) fn saw(&mut self, message_id: u64) {
        self.last_seen = message_id;
    }

    /// The id a resume must name.
    #[cfg(test)]
    pub(crate) fn last_seen(&self) -> u64 {
        self.last_seen
    }

    /// A new session replaced this one (a fresh login after a failed resume): nothing of the old
    /// one's delivery log applies, so no notification has been received in it yet.
    pub(crate) fn restarted(&mut self) {
        self.last_seen = 0;
        self.token = None;
    }

    /// `RESUME_REQ` for this session, if it has a token.
    pub(crate) fn resume_request(&self) -> Option<Packet> {
        self.token.as_ref().map(|token| Packet::ResumeReq {
            username: self.username.clone(),
            token: token.clone(),
            last_message_id: self.last_seen,
        })
    }

    /// `LOGIN_REQ` with the session's credentials.
    pub(crate) fn login_request(&self) -> Packet {
        Packet::LoginReq {
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

/// The most recent message ids seen, so that a notification delivered twice (once before a
/// connection dropped and once replayed after resuming) reaches the application once.
/// Bounded: the oldest id is forgotten when a new one would exceed the capacity.
#[derive(Debug)]
pub(crate) struct RecentIds {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl RecentIds {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            seen: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Records `id`; `false` if it was already among the recent ids (a duplicate).
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.order.push_back(id);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_names_the_last_id_received_not_the_largest() {
        let mut session = Session::new("alice".into(), "pw".into());
        assert!(session.resume_request().is_none(), "no token yet");
        session.set_token("t1".into());
        session.saw(9);
        session.saw(4);
        assert_eq!(
            session.resume_request(),
            Some(Packet::ResumeReq {
                username: "alice".into(),
                token: "t1".into(),
                last_message_id: 4,
            })
        );
        session.set_token("t2".into());
        assert!(matches!(
            session.resume_request(),
            Some(Packet::ResumeReq { token, .. }) if token == "t2"
        ));
        session.set_token("".into());
        assert!(!session.has_token(), "an empty token is no token");
        session.set_token("t3".into());
        session.restarted();
        assert!(!session.has_token());
        assert_eq!(session.last_seen(), 0);
        assert_eq!(
            session.login_request(),
            Packet::LoginReq {
                username: "alice".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn recent_ids_catch_duplicates_and_forget_the_oldest() {
        let mut recent = RecentIds::new(3);
        assert!(recent.insert(1));
        assert!(recent.insert(2));
        assert!(!recent.insert(1));
        assert!(recent.insert(3));
        assert!(recent.insert(4)); // forgets 1
        assert!(recent.insert(1));
        assert!(!recent.insert(4));
        assert_eq!(recent.order.len(), 3);
        assert_eq!(recent.seen.len(), 3);
    }
}
