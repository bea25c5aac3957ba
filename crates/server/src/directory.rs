//! The user directory: who is online, under which name, and where their session lives.
//!
//! It sits behind a trait because a cluster will answer these questions from a shared store;
//! the local implementation is a sharded concurrent map, so logins and whisper lookups on
//! different workers never queue behind one lock.

use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

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
    /// Up to `limit` online users whose folded name sorts after `after` (folded), in that order.
    fn page(&self, after: &str, limit: usize) -> Vec<DirectoryEntry>;
    /// How many names are held.
    fn len(&self) -> usize;
    /// Whether no name is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The key a name is stored under: usernames are ASCII, so folding is ASCII lowercase.
fn fold(name: &str) -> Box<str> {
    name.to_ascii_lowercase().into_boxed_str()
}

/// The single-node directory.
#[derive(Debug, Default)]
pub struct LocalDirectory {
    names: DashMap<Box<str>, DirectoryEntry>,
}

impl LocalDirectory {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Directory for LocalDirectory {
    fn claim(&self, entry: DirectoryEntry) -> Result<(), NameTaken> {
        match self.names.entry(fold(&entry.display_name)) {
            Entry::Occupied(_) => Err(NameTaken),
            Entry::Vacant(slot) => {
                slot.insert(entry);
                Ok(())
            }
        }
    }

    fn release(&self, name: &str, session_id: SessionId) {
        self.names
            .remove_if(&*fold(name), |_, entry| entry.session_id == session_id);
    }

    fn lookup(&self, name: &str) -> Option<DirectoryEntry> {
        self.names.get(&*fold(name)).map(|e| e.value().clone())
    }

    fn page(&self, after: &str, limit: usize) -> Vec<DirectoryEntry> {
        let after = fold(after);
        let mut found: Vec<(Box<str>, DirectoryEntry)> = self
            .names
            .iter()
            .filter(|entry| **entry.key() > *after)
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        // Only the first `limit` need sorting: partition around the limit first, so a page
        // costs O(n) plus O(limit log limit) however many users are online.
        if found.len() > limit && limit > 0 {
            found.select_nth_unstable_by(limit - 1, |a, b| a.0.cmp(&b.0));
        }
        found.truncate(limit);
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
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
