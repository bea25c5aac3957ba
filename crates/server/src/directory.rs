//! The user directory: who is online, under which name, and where their session lives.
//!
//! It sits behind a trait because a cluster will answer these questions from a shared store;
//! the local implementation is a sharded concurrent map, so logins and whisper lookups on
//! different workers never queue behind one lock.

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use suda_protocol::MAX_USERNAME_LEN;

use crate::session::SessionId;

/// Where an online user's session can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The session's id.
    pub session_id: SessionId,
    /// The worker shard that owns the session.
    pub shard: usize,
    /// The name as the user typed it at login.
    pub display_name: Arc<str>,
}

/// Where a session is reached: all a delivery needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The session's id.
    pub session_id: SessionId,
    /// The worker shard that owns the session.
    pub shard: usize,
}

impl DirectoryEntry {
    /// Where the session is reached.
    pub fn route(&self) -> Route {
        Route {
            session_id: self.session_id,
            shard: self.shard,
        }
    }
}

/// The name is already online.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the name is already in use")]
pub struct NameTaken;

/// Maps usernames, compared case-insensitively, to online sessions.
pub trait Directory: Send + Sync + 'static {
    /// Claims `entry.display_name` for `entry`, unless someone holds it already.
    fn claim(&self, entry: DirectoryEntry) -> Result<(), NameTaken>;
    /// Frees `name` if `session_id` still holds it; a stale release is ignored.
    fn release(&self, name: &str, session_id: SessionId);
    /// Finds the session behind `name`.
    fn lookup(&self, name: &str) -> Option<DirectoryEntry>;
    /// Where the session behind `name` is reached: [`Directory::lookup`] without the name,
    /// for the whisper path, where sharing the name (a reference count other workers touch
    /// too) showed in profiles.
    fn route(&self, name: &str) -> Option<Route>;
    /// Up to `limit` online users whose folded name sorts after `after` (folded), in that order.
    fn page(&self, after: &str, limit: usize) -> Vec<DirectoryEntry>;
    /// How many names are held.
    fn len(&self) -> usize;
    /// Whether no name is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key a name is stored under: the name folded (usernames are ASCII, so folding is ASCII
/// lowercase), held inline. A whisper looks its recipient up by name, so the key is built on the
/// stack and compared without following a pointer: no allocation and no cache miss per lookup,
/// which profiling showed among the costliest steps of a whisper.
#[derive(Clone, Copy)]
struct NameKey {
    len: u8,
    bytes: [u8; MAX_USERNAME_LEN],
}

impl NameKey {
    /// `None` for a name too long to be a username (so it cannot be online).
    fn new(name: &str) -> Option<Self> {
        let raw = name.as_bytes();
        if raw.len() > MAX_USERNAME_LEN {
            return None;
        }
        let mut bytes = [0; MAX_USERNAME_LEN];
        for (to, from) in bytes.iter_mut().zip(raw) {
            *to = from.to_ascii_lowercase();
        }
        Some(Self {
            len: raw.len() as u8,
            bytes,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for NameKey {}

impl std::hash::Hash for NameKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
    }
}

impl std::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// The single-node directory.
#[derive(Debug, Default)]
pub struct LocalDirectory {
    // Names are chosen by clients, so the hasher is seeded per process (foldhash's quality
    // variant), yet far cheaper than SipHash on these short keys.
    names: DashMap<NameKey, DirectoryEntry, foldhash::quality::RandomState>,
}

impl LocalDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Directory for LocalDirectory {
    fn claim(&self, entry: DirectoryEntry) -> Result<(), NameTaken> {
        // A name too long for a key is not a username; such a claim cannot be answered.
        let Some(key) = NameKey::new(&entry.display_name) else {
            return Err(NameTaken);
        };
        match self.names.entry(key) {
            Entry::Occupied(_) => Err(NameTaken),
            Entry::Vacant(slot) => {
                slot.insert(entry);
                Ok(())
            }
        }
    }

    fn release(&self, name: &str, session_id: SessionId) {
        if let Some(key) = NameKey::new(name) {
            self.names
                .remove_if(&key, |_, entry| entry.session_id == session_id);
        }
    }

    fn lookup(&self, name: &str) -> Option<DirectoryEntry> {
        let key = NameKey::new(name)?;
        self.names.get(&key).map(|e| e.value().clone())
    }

    fn route(&self, name: &str) -> Option<Route> {
        let key = NameKey::new(name)?;
        self.names.get(&key).map(|e| e.value().route())
    }

    fn page(&self, after: &str, limit: usize) -> Vec<DirectoryEntry> {
        let after = after.to_ascii_lowercase();
        let mut found: Vec<(NameKey, DirectoryEntry)> = self
            .names
            .iter()
            .filter(|entry| entry.key().as_bytes() > after.as_bytes())
            .map(|entry| (*entry.key(), entry.value().clone()))
            .collect();
        // Only the first `limit` need sorting: partition around the limit first, so a page
        // costs O(n) plus O(limit log limit) however many users are online.
        let order = |a: &(NameKey, DirectoryEntry), b: &(NameKey, DirectoryEntry)| {
            a.0.as_bytes().cmp(b.0.as_bytes())
        };
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, order);
        }
        found.truncate(limit);
        found.sort_unstable_by(order);
        found.into_iter().map(|(_, entry)| entry).collect()
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, id: u64) -> DirectoryEntry {
        DirectoryEntry {
            session_id: SessionId(id),
            shard: 0,
            display_name: name.into(),
        }
    }

    #[test]
    fn names_are_unique_case_insensitively_and_keep_their_spelling() {
        let dir = LocalDirectory::new();
        dir.claim(entry("Bob", 1)).expect("free");
        assert_eq!(dir.claim(entry("bOB", 2)), Err(NameTaken));
        let found = dir.lookup("BOB").expect("online");
        assert_eq!(&*found.display_name, "Bob");
        assert_eq!(found.session_id, SessionId(1));
        assert_eq!(dir.route("bob"), Some(found.route()));
        assert_eq!(dir.route("alice"), None);
    }

    #[test]
    fn pages_come_in_folded_name_order() {
        let dir = LocalDirectory::new();
        for (i, name) in ["dave", "Alice", "carol", "bob", "Eve"].iter().enumerate() {
            dir.claim(entry(name, i as u64)).expect("free");
        }
        let names = |page: Vec<DirectoryEntry>| {
            page.iter()
                .map(|e| e.display_name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(dir.page("", 2)), ["Alice", "bob"]);
        assert_eq!(names(dir.page("BOB", 2)), ["carol", "dave"]);
        assert_eq!(names(dir.page("dave", 10)), ["Eve"]);
        assert!(dir.page("eve", 10).is_empty());
        assert!(dir.page("", 0).is_empty());
    }

    #[test]
    fn only_the_holder_can_release_a_name() {
        let dir = LocalDirectory::new();
        dir.claim(entry("bob", 1)).expect("free");
        dir.release("bob", SessionId(2));
        assert!(dir.lookup("bob").is_some());
        dir.release("BOB", SessionId(1));
        assert!(dir.lookup("bob").is_none());
        assert!(dir.is_empty());
    }

    #[test]
    fn concurrent_claims_of_one_name_have_exactly_one_winner() {
        let dir = Arc::new(LocalDirectory::new());
        let winners: usize = (0..8)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || dir.claim(entry("Name", i)).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| usize::from(h.join().expect("thread")))
            .sum();
        assert_eq!(winners, 1);
    }
}
