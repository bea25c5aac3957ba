//! Presence: users' away statuses, and who watches whom.
//!
//! A presence change is sent only to the sessions that asked for it (`WATCH_REQ`), through a
//! reverse index from a watched name to its watchers, so a login costs nothing for a user nobody
//! watches — no event goes to every client. Statuses other than plain "online" are kept in a
//! map of their own; an online user without an entry is simply online.

use std::sync::Arc;

use dashmap::DashMap;

use crate::directory::Route;
use crate::session::SessionId;

/// `USER_ITEM` / `PRESENCE_NOTIFY` status: online.
pub(crate) const ONLINE: u8 = 0;
/// Away, with a message.
pub(crate) const AWAY: u8 = 1;
/// Not logged in.
pub(crate) const OFFLINE: u8 = 2;
/// Longest away message, in bytes.
pub(crate) const MAX_STATUS_TEXT: usize = 128;

/// Server-wide presence state.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    /// Folded name to away message, for users who are away.
    away: DashMap<Box<str>, Arc<str>>,
    /// Folded name to where the sessions watching it are reached.
    watchers: DashMap<Box<str>, Vec<Route>>,
}

impl Presence {
    /// The status of an online user (folded name): `(ONLINE, "")` or `(AWAY, text)`.
    pub(crate) fn status(&self, user: &str) -> (u8, Arc<str>) {
        match self.away.get(user) {
            Some(text) => (AWAY, text.value().clone()),
            None => (ONLINE, Arc::from("")),
        }
    }

    /// Sets the status of `user` (folded).
    pub(crate) fn set(&self, user: &str, status: u8, text: &str) {
        if status == AWAY {
            self.away.insert(user.into(), text.into());
        } else {
            self.away.remove(user);
        }
    }

    /// Forgets the status of `user` (folded), whose session ended.
    pub(crate) fn clear(&self, user: &str) {
        self.away.remove(user);
    }

    /// Adds `watcher` to the watchers of `user` (folded). Idempotent.
    pub(crate) fn watch(&self, user: &str, watcher: Route) {
        let mut list = self.watchers.entry(user.into()).or_default();
        if !list.contains(&watcher) {
            list.push(watcher);
        }
    }

    /// Removes the watcher `session_id` of `user` (folded).
    pub(crate) fn unwatch(&self, user: &str, session_id: SessionId) {
        self.watchers.remove_if_mut(user, |_, list| {
            list.retain(|w| w.session_id != session_id);
            list.is_empty()
        });
    }

    /// Where the sessions watching `user` (folded) are reached.
    pub(crate) fn watchers_of(&self, user: &str) -> Vec<Route> {
        self.watchers
            .get(user)
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchers_are_per_name_and_removed_individually() {
        let presence = Presence::default();
        let w = |id| Route {
            session_id: SessionId(id),
            shard: 0,
        };
        presence.watch("bob", w(1));
        presence.watch("bob", w(1));
        presence.watch("bob", w(2));
        assert_eq!(presence.watchers_of("bob").len(), 2);
        assert!(presence.watchers_of("carol").is_empty());
        presence.unwatch("bob", SessionId(1));
        assert_eq!(presence.watchers_of("bob")[0].session_id, SessionId(2));
        presence.unwatch("bob", SessionId(2));
        assert!(presence.watchers.is_empty(), "empty lists are dropped");
    }

    #[test]
    fn away_is_remembered_until_back_or_gone() {
        let presence = Presence::default();
        assert_eq!(presence.status("bob").0, ONLINE);
        presence.set("bob", AWAY, "lunch");
        assert_eq!(&*presence.status("bob").1, "lunch");
        presence.set("bob", ONLINE, "ignored");
        assert_eq!(presence.status("bob"), (ONLINE, Arc::from("")));
        presence.set("bob", AWAY, "x");
        presence.clear("bob");
        assert_eq!(presence.status("bob").0, ONLINE);
    }
}
