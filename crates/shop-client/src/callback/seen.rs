//! The `webhook-id`s already accepted, so that a repeated one is not applied twice.
//!
//! An id has to be remembered only while a message carrying it can still pass the timestamp
//! check: until its `webhook-timestamp` plus the tolerance. After that the timestamp refuses
//! the message on its own, so the set forgets the id and stays bounded by the traffic of one
//! tolerance window.
//!
//! [`InMemorySeenIds`] serves one receiver process. Several instances behind a load balancer
//! each see only part of the deliveries, so a message replayed to another instance would pass:
//! they need one shared store (a table with the id as primary key, Redis `SET id 1 NX EXAT
//! until`), plugged in by implementing [`SeenIds`].

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

/// Why a store of seen ids could not answer (a shared store that is down, say).
pub type SeenIdsError = Box<dyn std::error::Error + Send + Sync>;

/// What a [`SeenIds`] method returns: boxed, so that the verifier can hold any store as
/// `Arc<dyn SeenIds>`, and a future, so that a shared store can do I/O.
pub type SeenIdsFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SeenIdsError>> + Send + 'a>>;

/// A set of `webhook-id`s whose entries expire.
pub trait SeenIds: Send + Sync {
    /// Records `id` until `until` (Unix seconds; `now` is the current time). Answers `true` if
    /// the id is new — never recorded, or recorded and since expired — and `false` if it was
    /// already there. Checking and recording must be one atomic step, or two deliveries of one
    /// message arriving together could both pass.
    fn insert<'a>(&'a self, id: &'a str, until: i64, now: i64) -> SeenIdsFuture<'a, bool>;

    /// Forgets `id`, so that the next delivery carrying it is accepted: for a receiver that
    /// failed to apply a verified callback and wants order-api's retry to come through.
    fn remove<'a>(&'a self, id: &'a str) -> SeenIdsFuture<'a, ()>;
}

/// Ids remembered by default: a receiver getting more callbacks than this within one
/// tolerance window (five minutes) should raise it with [`InMemorySeenIds::with_capacity`].
/// At the 36 bytes of order-api's ids, a full set holds a few megabytes.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// [`SeenIds`] in this process's memory, bounded.
///
/// When full, it first drops the expired ids, then the one expiring soonest. Only messages
/// whose signature matched are recorded, so only the sender can fill the set; dropping an id
/// early reopens a replay of that one message for the rest of its window, which is better than
/// refusing genuine callbacks (order-api would retry them, then give up).
#[derive(Debug)]
pub struct InMemorySeenIds {
    /// Most ids held at once.
    capacity: usize,
    /// The ids and when each expires, with the same entries ordered by expiry for purging.
    inner: Mutex<Entries>,
}

/// The set's entries, indexed both ways.
#[derive(Debug, Default)]
struct Entries {
    /// Id → expiry: the lookup.
    expiry_of: HashMap<String, i64>,
    /// (expiry, id), oldest first: what to drop.
    by_expiry: BTreeSet<(i64, String)>,
}

impl InMemorySeenIds {
    /// An empty set holding up to [`DEFAULT_CAPACITY`] ids.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// An empty set holding up to `capacity` ids (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    /// Ids currently held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.entries().expiry_of.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries; a panic elsewhere while holding the lock leaves them consistent (every
    /// change below is complete before anything can panic), so a poisoned lock is used as is.
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The synchronous heart of [`SeenIds::insert`].
    fn insert_now(&self, id: &str, until: i64, now: i64) -> bool {
        let mut entries = self.entries();
        entries.drop_expired(now);
        if entries.expiry_of.contains_key(id) {
            return false;
        }
        while entries.expiry_of.len() >= self.capacity {
            entries.drop_soonest();
        }
        entries.expiry_of.insert(id.to_owned(), until);
        entries.by_expiry.insert((until, id.to_owned()));
        true
    }
}

impl Default for InMemorySeenIds {
    fn default() -> Self {
        Self::new()
    }
}

impl Entries {
    /// Drops every id whose expiry is before `now`.
    fn drop_expired(&mut self, now: i64) {
        while self
            .by_expiry
            .first()
            .is_some_and(|(until, _)| *until < now)
        {
            self.drop_soonest();
        }
    }

    /// Drops the id expiring soonest.
    fn drop_soonest(&mut self) {
        if let Some((_, id)) = self.by_expiry.pop_first() {
            self.expiry_of.remove(&id);
        }
    }
}

impl SeenIds for InMemorySeenIds {
    fn insert<'a>(&'a self, id: &'a str, until: i64, now: i64) -> SeenIdsFuture<'a, bool> {
        let new = self.insert_now(id, until, now);
        Box::pin(std::future::ready(Ok(new)))
    }

    fn remove<'a>(&'a self, id: &'a str) -> SeenIdsFuture<'a, ()> {
        let mut entries = self.entries();
        if let Some(until) = entries.expiry_of.remove(id) {
            entries.by_expiry.remove(&(until, id.to_owned()));
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_refused_until_it_expires_then_accepted_again() {
        let seen = InMemorySeenIds::new();
        assert!(seen.insert_now("msg_1", 1_300, 1_000));
        assert!(!seen.insert_now("msg_1", 1_400, 1_100));
        assert!(
            !seen.insert_now("msg_1", 1_600, 1_300),
            "still valid at its expiry"
        );
        assert!(
            seen.insert_now("msg_1", 1_601, 1_301),
            "expired a second later"
        );
    }

    #[test]
    fn expired_ids_are_dropped_so_the_set_stays_small() {
        let seen = InMemorySeenIds::new();
        for i in 0..100 {
            assert!(seen.insert_now(&format!("msg_{i}"), 1_000 + i, 700 + i));
        }
        assert_eq!(seen.len(), 100);
        assert!(seen.insert_now("msg_late", 2_000, 1_050));
        assert_eq!(seen.len(), 51, "msg_0 to msg_49 expired before 1050");
    }

    #[test]
    fn a_full_set_drops_the_id_expiring_soonest() {
        let seen = InMemorySeenIds::with_capacity(2);
        assert!(seen.insert_now("msg_b", 1_200, 1_000));
        assert!(seen.insert_now("msg_a", 1_100, 1_000));
        assert!(seen.insert_now("msg_c", 1_300, 1_000));
        assert_eq!(seen.len(), 2);
        assert!(seen.insert_now("msg_a", 1_100, 1_000), "msg_a was dropped");
        assert!(!seen.insert_now("msg_c", 1_300, 1_000), "msg_c was kept");
    }
}
