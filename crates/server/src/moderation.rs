//! Server-wide sanctions in force — user bans, IP bans, mutes — and the moderation log.
//!
//! Sanctions are checked on hot paths (every login, every message of a muted user), so they
//! live in a concurrent map in memory; with storage on they are written through to the store
//! and loaded from it at start-up, so a restart does not lift them. Expired entries are dropped
//! when next looked at.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use suda_store::moderation::{ModerationEntry, Sanction, SanctionKind};
use tracing::{info, warn};

use crate::ids::unix_time_ms;
use crate::storage::Storage;

/// One sanction in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InForce {
    /// Unix ms; `None` until lifted.
    pub(crate) expires_at_ms: Option<u64>,
    pub(crate) reason: Arc<str>,
    pub(crate) actor: Arc<str>,
}

impl InForce {
    /// "reason (until …)" for an `ERROR_NOTIFY`.
    pub(crate) fn describe(&self, what: &str) -> String {
        let reason = if self.reason.is_empty() {
            "no reason given"
        } else {
            &self.reason
        };
        match self.expires_at_ms {
            None => format!("{what} by {}: {reason}", self.actor),
            Some(at) => {
                let left_s = at.saturating_sub(unix_time_ms()).div_ceil(1000);
                format!(
                    "{what} by {} for {left_s} more seconds: {reason}",
                    self.actor
                )
            }
        }
    }
}

/// The canonical key of an IP sanction: IPv4-mapped IPv6 addresses count as IPv4.
pub(crate) fn ip_key(ip: IpAddr) -> String {
    ip.to_canonical().to_string()
}

/// Every sanction in force, server-wide.
#[derive(Debug, Default)]
pub(crate) struct Sanctions {
    /// Keyed by the kind's code followed by the target, one string (see [`with_key`]).
    entries: DashMap<Box<str>, InForce>,
    /// How many entries there are: every message asks whether there are any, and counting a
    /// `DashMap` locks each of its shards.
    count: AtomicUsize,
}

fn kind_code(kind: SanctionKind) -> char {
    match kind {
        SanctionKind::UserBan => 'u',
        SanctionKind::IpBan => 'i',
        SanctionKind::Mute => 'm',
    }
}

/// The key under which a sanction of `kind` on `target` is kept.
fn owned_key(kind: SanctionKind, target: &str) -> Box<str> {
    let mut key = String::with_capacity(1 + target.len());
    key.push(kind_code(kind));
    key.push_str(target);
    key.into_boxed_str()
}

/// Longest key built on the stack: a kind's code and a username or an address fit.
const INLINE_KEY: usize = 64;

/// Calls `look` with the key of `kind` on `target`, `target` ASCII-lowercased first if `fold`.
///
/// The key is built on the stack when it fits: with any sanction in force, every chat message
/// checks its sender's mute, and that check should not allocate (it used to allocate twice: the
/// folded name, then the key).
fn with_key<R>(kind: SanctionKind, target: &str, fold: bool, look: impl FnOnce(&str) -> R) -> R {
    let len = 1 + target.len();
    if len > INLINE_KEY {
        return look(&heap_key(kind, target, fold));
    }
    let mut inline = [0u8; INLINE_KEY];
    // The code is ASCII; `as u8` keeps it whole.
    inline[0] = kind_code(kind) as u8;
    for (to, &from) in inline[1..len].iter_mut().zip(target.as_bytes()) {
        *to = if fold {
            from.to_ascii_lowercase()
        } else {
            from
        };
    }
    // Always valid UTF-8 (an ASCII code, then `target`, whose ASCII lowercasing changes ASCII
    // bytes only); the heap path stands in rather than a panic.
    match std::str::from_utf8(&inline[..len]) {
        Ok(key) => look(key),
        Err(_) => look(&heap_key(kind, target, fold)),
    }
}

/// [`with_key`]'s key, allocated.
fn heap_key(kind: SanctionKind, target: &str, fold: bool) -> String {
    let mut key = owned_key(kind, target).into_string();
    if fold {
        key.make_ascii_lowercase();
    }
    key
}

impl Sanctions {
    /// Loads what the store holds.
    pub(crate) fn load(&self, stored: Vec<Sanction>) {
        for s in stored {
            self.insert(
                owned_key(s.kind, &s.target),
                InForce {
                    expires_at_ms: s.expires_at_ms.and_then(|ms| u64::try_from(ms).ok()),
                    reason: s.reason.into(),
                    actor: s.actor.into(),
                },
            );
        }
    }

    /// The sanction of `kind` on `target` (a folded name or an [`ip_key`]), if in force now.
    pub(crate) fn check(&self, kind: SanctionKind, target: &str) -> Option<InForce> {
        with_key(kind, target, false, |key| self.check_key(key))
    }

    /// The sanction of `kind` on the user `name` (in any case), if in force now.
    pub(crate) fn check_name(&self, kind: SanctionKind, name: &str) -> Option<InForce> {
        with_key(kind, name, true, |key| self.check_key(key))
    }

    fn check_key(&self, key: &str) -> Option<InForce> {
        let found = self.entries.get(key)?.value().clone();
        if found.expires_at_ms.is_some_and(|at| at <= unix_time_ms()) {
            let removed = self
                .entries
                .remove_if(key, |_, entry| entry.expires_at_ms == found.expires_at_ms);
            if removed.is_some() {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
            return None;
        }
        Some(found)
    }

    /// Whether nothing is in force (the common case: no lookup needed per message).
    pub(crate) fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    fn insert(&self, key: Box<str>, sanction: InForce) {
        if self.entries.insert(key, sanction).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Imposes a sanction, and stores it when the server has storage.
    pub(crate) async fn impose(
        &self,
        storage: Option<&Arc<Storage>>,
        kind: SanctionKind,
        target: &str,
        sanction: InForce,
    ) -> Result<(), suda_store::Error> {
        if let Some(storage) = storage {
            storage
                .store
                .put_sanction(&Sanction {
                    kind,
                    target: target.to_owned(),
                    expires_at_ms: sanction.expires_at_ms.and_then(|ms| i64::try_from(ms).ok()),
                    reason: sanction.reason.to_string(),
                    actor: sanction.actor.to_string(),
                    created_at_ms: i64::try_from(unix_time_ms()).unwrap_or(i64::MAX),
                })
                .await?;
        }
        self.insert(owned_key(kind, target), sanction);
        Ok(())
    }

    /// Lifts a sanction. `Ok(false)` when there was none in force.
    pub(crate) async fn lift(
        &self,
        storage: Option<&Arc<Storage>>,
        kind: SanctionKind,
        target: &str,
    ) -> Result<bool, suda_store::Error> {
        let present = self.check(kind, target).is_some();
        if let Some(storage) = storage {
            match storage.store.remove_sanction(kind, target).await {
                Ok(()) | Err(suda_store::Error::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        if with_key(kind, target, false, |key| self.entries.remove(key)).is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(present)
    }
}

/// Logs a moderation action — always to the server's log, and to the store's moderation log
/// when there is one. A failure to store it is logged, not fatal: the action has happened.
pub(crate) async fn log_action(
    storage: Option<&Arc<Storage>>,
    actor: &str,
    action: &str,
    target: &str,
    room: Option<&str>,
    reason: &str,
) {
    info!(
        target: "suda::moderation",
        actor, action, target, room = room.unwrap_or(""), reason, "moderation action"
    );
    if let Some(storage) = storage {
        let entry = ModerationEntry {
            at_ms: i64::try_from(unix_time_ms()).unwrap_or(i64::MAX),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            room: room.map(str::to_owned),
            reason: reason.to_owned(),
        };
        if let Err(err) = storage.store.log_moderation(&entry).await {
            warn!(%err, "cannot store a moderation log entry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanction(expires_at_ms: Option<u64>) -> InForce {
        InForce {
            expires_at_ms,
            reason: "spam".into(),
            actor: "root".into(),
        }
    }

    #[tokio::test]
    async fn sanctions_apply_until_they_expire_or_are_lifted() {
        let sanctions = Sanctions::default();
        assert!(sanctions.is_empty());
        sanctions
            .impose(None, SanctionKind::UserBan, "bob", sanction(None))
            .await
            .expect("in memory");
        sanctions
            .impose(
                None,
                SanctionKind::Mute,
                "carol",
                sanction(Some(unix_time_ms() - 1)),
            )
            .await
            .expect("in memory");
        assert!(sanctions.check(SanctionKind::UserBan, "bob").is_some());
        assert!(
            sanctions.check(SanctionKind::Mute, "bob").is_none(),
            "kinds are apart"
        );
        assert!(
            sanctions.check(SanctionKind::Mute, "carol").is_none(),
            "expired"
        );
        assert!(
            sanctions
                .lift(None, SanctionKind::UserBan, "bob")
                .await
                .expect("ok")
        );
        assert!(
            !sanctions
                .lift(None, SanctionKind::UserBan, "bob")
                .await
                .expect("ok")
        );
        assert!(sanctions.check(SanctionKind::UserBan, "bob").is_none());
    }

    #[tokio::test]
    async fn names_are_checked_in_any_case_and_long_targets_too() {
        let sanctions = Sanctions::default();
        sanctions
            .impose(None, SanctionKind::Mute, "carol", sanction(None))
            .await
            .expect("in memory");
        assert!(sanctions.check_name(SanctionKind::Mute, "CaRoL").is_some());
        assert!(
            sanctions
                .check_name(SanctionKind::UserBan, "carol")
                .is_none()
        );
        assert!(sanctions.check_name(SanctionKind::Mute, "caro").is_none());
        // Longer than a key built on the stack: the same answers through the heap.
        let long = "x".repeat(INLINE_KEY + 10);
        sanctions
            .impose(None, SanctionKind::IpBan, &long, sanction(None))
            .await
            .expect("in memory");
        assert!(sanctions.check(SanctionKind::IpBan, &long).is_some());
        assert!(
            sanctions
                .check_name(SanctionKind::IpBan, &long.to_ascii_uppercase())
                .is_some()
        );
        assert!(
            sanctions
                .lift(None, SanctionKind::IpBan, &long)
                .await
                .expect("ok")
        );
        assert!(sanctions.check(SanctionKind::IpBan, &long).is_none());
        assert!(!sanctions.is_empty(), "the mute is still there");
    }

    #[test]
    fn mapped_addresses_share_a_key() {
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(ip_key(v4), ip_key(mapped));
    }

    #[test]
    fn descriptions_name_the_operator_and_the_reason() {
        let text = sanction(None).describe("banned");
        assert_eq!(text, "banned by root: spam");
        let timed = sanction(Some(unix_time_ms() + 60_000)).describe("muted");
        assert!(timed.contains("for 60 more seconds"), "{timed}");
    }
}
