//! The API key verification cache: keyed-hash → record, with negative entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Caches what verifying an API key found, keyed by the key's keyed hash.
///
/// A positive entry holds the key's record for `ttl`; a negative entry remembers for
/// `negative_ttl` that no key has that hash, so a flood of unknown keys costs one lookup
/// each. At `capacity`, expired entries are purged first, then about an eighth of the
/// rest, in no particular order.
///
/// Fills can race invalidations: a reader loads a record from storage while a revoke
/// invalidates it, then caches the stale record. To close that gap, read
/// [`generation`](Self::generation) before loading and pass it to
/// [`put`](Self::put); every invalidation bumps it, and a put carrying an older
/// generation is dropped.
///
/// Values are dropped after the lock is released, so a value's destructor may use the
/// cache.
///
/// ```
/// use std::time::{Duration, Instant};
/// use treadle_core::keys::{Cached, VerifyCache};
///
/// let cache = VerifyCache::new(Duration::from_secs(60), Duration::from_secs(5), 10_000);
/// let now = Instant::now();
/// let generation = cache.generation();
/// assert!(cache.put("hash-a", "key record", now, Some(generation)));
/// assert!(cache.put_missing("hash-b", now, None));
/// assert_eq!(cache.get("hash-a", now), Cached::Found("key record"));
/// assert_eq!(cache.get("hash-b", now), Cached::Missing);
/// assert_eq!(cache.get("hash-b", now + Duration::from_secs(6)), Cached::Miss);
/// cache.invalidate("hash-a");
/// assert_eq!(cache.get("hash-a", now), Cached::Miss);
/// assert!(!cache.put("hash-a", "stale record", now, Some(generation)));
/// ```
#[derive(Debug)]
pub struct VerifyCache<V> {
    ttl: Duration,
    negative_ttl: Duration,
    capacity: usize,
    generation: AtomicU64,
    entries: RwLock<HashMap<Box<str>, Entry<V>>>,
}

/// What [`VerifyCache::get`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached<R> {
    /// A live positive entry.
    Found(R),
    /// A live negative entry: no key has this hash.
    Missing,
    /// Nothing cached, or it expired: look in storage.
    Miss,
}

#[derive(Debug)]
struct Entry<V> {
    /// `None` for a negative entry.
    value: Option<V>,
    expires: Instant,
}

impl<V> VerifyCache<V> {
    /// An empty cache. A `capacity` of 0 caches nothing.
    #[must_use]
    pub fn new(ttl: Duration, negative_ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            negative_ttl,
            capacity,
            generation: AtomicU64::new(0),
            entries: RwLock::default(),
        }
    }

    /// Looks `key` up as of `now`, handing a positive entry's value to `read`.
    pub fn get_with<R>(&self, key: &str, now: Instant, read: impl FnOnce(&V) -> R) -> Cached<R> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some(entry) if entry.expires > now => entry
                .value
                .as_ref()
                .map_or(Cached::Missing, |v| Cached::Found(read(v))),
            _ => Cached::Miss,
        }
    }

    /// Looks `key` up as of `now`, cloning a positive entry's value.
    pub fn get(&self, key: &str, now: Instant) -> Cached<V>
    where
        V: Clone,
    {
        self.get_with(key, now, V::clone)
    }

    /// Caches `value` for `key` until `now + ttl`. With `generation`, only if no
    /// invalidation happened since it was read. Returns whether it was stored.
    pub fn put(&self, key: &str, value: V, now: Instant, generation: Option<u64>) -> bool {
        self.store(key, Some(value), now, now + self.ttl, generation)
    }

    /// Caches "no such key" for `key` until `now + negative_ttl`. With `generation`, only
    /// if no invalidation happened since it was read. Returns whether it was stored.
    pub fn put_missing(&self, key: &str, now: Instant, generation: Option<u64>) -> bool {
        self.store(key, None, now, now + self.negative_ttl, generation)
    }

    /// Forgets `key` and bumps the generation. Returns whether an entry was there.
    pub fn invalidate(&self, key: &str) -> bool {
        let removed = {
            let mut entries = self.write();
            self.generation.fetch_add(1, Ordering::AcqRel);
            entries.remove(key)
        };
        removed.is_some()
    }

    /// Forgets every entry and bumps the generation.
    pub fn clear(&self) {
        let removed = {
            let mut entries = self.write();
            self.generation.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *entries)
        };
        drop(removed);
    }

    /// The current generation: read it before loading a record from storage.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The number of entries held, counting expired ones not yet purged.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no entry is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Box<str>, Entry<V>>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn store(
        &self,
        key: &str,
        value: Option<V>,
        now: Instant,
        expires: Instant,
        generation: Option<u64>,
    ) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let mut garbage = Vec::new();
        {
            let mut entries = self.write();
            if generation.is_some_and(|g| g != self.generation.load(Ordering::Acquire)) {
                return false;
            }
            if entries.len() >= self.capacity && !entries.contains_key(key) {
                garbage.extend(entries.extract_if(|_, entry| entry.expires <= now));
                let target = self.capacity - (self.capacity / 8).max(1);
                if entries.len() > target {
                    let excess = entries.len() - target;
                    let doomed: Vec<Box<str>> = entries.keys().take(excess).cloned().collect();
                    garbage.extend(doomed.into_iter().filter_map(|k| entries.remove_entry(&k)));
                }
            }
            if let Some(old) = entries.insert(Box::from(key), Entry { value, expires }) {
                garbage.push((Box::from(key), old));
            }
        }
        drop(garbage);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn cache(capacity: usize) -> VerifyCache<u32> {
        VerifyCache::new(10 * SECOND, 2 * SECOND, capacity)
    }

    #[test]
    fn positive_and_negative_entries_expire_separately() {
        let c = cache(100);
        let t = Instant::now();
        assert!(c.put("a", 1, t, None));
        assert!(c.put_missing("b", t, None));
        assert_eq!(c.get("a", t + SECOND), Cached::Found(1));
        assert_eq!(c.get("b", t + SECOND), Cached::Missing);
        assert_eq!(c.get("b", t + 2 * SECOND), Cached::Miss);
        assert_eq!(c.get("a", t + 9 * SECOND), Cached::Found(1));
        assert_eq!(c.get("a", t + 10 * SECOND), Cached::Miss);
        assert_eq!(c.get("c", t), Cached::Miss);
        assert_eq!(c.get_with("a", t, |v| v * 2), Cached::Found(2));
    }

    #[test]
    fn invalidation_and_generations() {
        let c = cache(100);
        let t = Instant::now();
        let g = c.generation();
        c.put("a", 1, t, Some(g));
        assert!(c.invalidate("a"));
        assert!(!c.invalidate("a"));
        assert_eq!(c.get("a", t), Cached::Miss);
        assert!(!c.put("a", 1, t, Some(g)));
        assert!(!c.put_missing("a", t, Some(g)));
        assert!(c.put("a", 2, t, Some(c.generation())));
        c.clear();
        assert!(c.is_empty());
        assert_eq!(c.generation(), g + 3);
        assert!(c.put("a", 3, t, None));
        assert_eq!(c.get("a", t), Cached::Found(3));
    }

    #[test]
    fn capacity_is_a_bound() {
        let c = cache(64);
        let t = Instant::now();
        for i in 0..1000 {
            assert!(c.put(&format!("k{i}"), i, t, None));
            assert!(c.len() <= 64);
        }
        assert_eq!(c.get("k999", t), Cached::Found(999));
        // Expired entries go first.
        let c = cache(4);
        c.put_missing("old", t, None);
        for i in 0..3 {
            c.put(&format!("k{i}"), i, t + 5 * SECOND, None);
        }
        c.put("new", 9, t + 5 * SECOND, None);
        assert_eq!(c.len(), 4);
        assert_eq!(c.get("k0", t + 5 * SECOND), Cached::Found(0));
        assert!(!cache(0).put("a", 1, t, None));
    }
}
