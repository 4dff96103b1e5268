//! The API key verification cache: keyed-hash → record, with negative entries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Caches what verifying an API key found, keyed by the key's keyed hash.
///
/// A positive entry holds the key's record for `ttl`; a negative entry remembers for
/// `negative_ttl` that no key has that hash, so a flood of unknown keys costs one lookup
/// each. Positive and negative entries are held apart, each bounded on its own (`capacity`
/// and `negative_capacity`): anyone can invent unknown keys, and a flood of them must not
/// evict the valid keys' entries. At its bound, a side purges its expired entries first,
/// then about an eighth of the rest, in no particular order.
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
    negative_capacity: usize,
    generation: AtomicU64,
    entries: RwLock<Entries<V>>,
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
    value: V,
    expires: Instant,
}

/// Both sides, under one lock so that a key is never found on both.
#[derive(Debug)]
struct Entries<V> {
    found: HashMap<Box<str>, Entry<V>>,
    /// Negative entries: when each expires.
    missing: HashMap<Box<str>, Entry<()>>,
}

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Self {
            found: HashMap::new(),
            missing: HashMap::new(),
        }
    }
}

type Garbage<V> = Vec<(Box<str>, Entry<V>)>;

impl<V> VerifyCache<V> {
    /// An empty cache holding up to `capacity` positive and as many negative entries.
    /// A `capacity` of 0 caches nothing.
    #[must_use]
    pub fn new(ttl: Duration, negative_ttl: Duration, capacity: usize) -> Self {
        Self::with_negative_capacity(ttl, negative_ttl, capacity, capacity)
    }

    /// An empty cache with its own bound for negative entries (0: none are kept).
    #[must_use]
    pub fn with_negative_capacity(
        ttl: Duration,
        negative_ttl: Duration,
        capacity: usize,
        negative_capacity: usize,
    ) -> Self {
        Self {
            ttl,
            negative_ttl,
            capacity,
            negative_capacity,
            generation: AtomicU64::new(0),
            entries: RwLock::default(),
        }
    }

    /// Looks `key` up as of `now`, handing a positive entry's value to `read`.
    pub fn get_with<R>(&self, key: &str, now: Instant, read: impl FnOnce(&V) -> R) -> Cached<R> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.found.get(key) {
            if entry.expires > now {
                return Cached::Found(read(&entry.value));
            }
        }
        match entries.missing.get(key) {
            Some(entry) if entry.expires > now => Cached::Missing,
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
        if self.capacity == 0 {
            return false;
        }
        let mut garbage = Vec::new();
        {
            let mut entries = self.write();
            if self.stale(generation) {
                return false;
            }
            entries.missing.remove(key);
            make_room(&mut entries.found, key, self.capacity, now, &mut garbage);
            let entry = Entry {
                value,
                expires: now + self.ttl,
            };
            if let Some(old) = entries.found.insert(Box::from(key), entry) {
                garbage.push((Box::from(key), old));
            }
        }
        drop(garbage);
        true
    }

    /// Caches "no such key" for `key` until `now + negative_ttl`. With `generation`, only
    /// if no invalidation happened since it was read. Returns whether it was stored.
    pub fn put_missing(&self, key: &str, now: Instant, generation: Option<u64>) -> bool {
        if self.negative_capacity == 0 {
            return false;
        }
        let mut garbage = Vec::new();
        let mut negative_garbage = Vec::new();
        {
            let mut entries = self.write();
            if self.stale(generation) {
                return false;
            }
            if let Some(old) = entries.found.remove_entry(key) {
                garbage.push(old);
            }
            let (missing, bound) = (&mut entries.missing, self.negative_capacity);
            make_room(missing, key, bound, now, &mut negative_garbage);
            let entry = Entry {
                value: (),
                expires: now + self.negative_ttl,
            };
            missing.insert(Box::from(key), entry);
        }
        drop(garbage);
        true
    }

    /// Forgets `key` and bumps the generation. Returns whether an entry was there.
    pub fn invalidate(&self, key: &str) -> bool {
        let (removed, was_missing) = {
            let mut entries = self.write();
            self.generation.fetch_add(1, Ordering::AcqRel);
            (
                entries.found.remove(key),
                entries.missing.remove(key).is_some(),
            )
        };
        removed.is_some() || was_missing
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

    /// The number of entries held, both sides, counting expired ones not yet purged.
    #[must_use]
    pub fn len(&self) -> usize {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.found.len() + entries.missing.len()
    }

    /// The number of negative entries held, counting expired ones not yet purged.
    #[must_use]
    pub fn negative_len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .missing
            .len()
    }

    /// Whether no entry is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries<V>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn stale(&self, generation: Option<u64>) -> bool {
        generation.is_some_and(|g| g != self.generation.load(Ordering::Acquire))
    }
}

/// Before inserting `key` into a side at its bound: expired entries go, then about an
/// eighth of the rest, into `garbage` (dropped by the caller once the lock is released).
fn make_room<T>(
    side: &mut HashMap<Box<str>, Entry<T>>,
    key: &str,
    capacity: usize,
    now: Instant,
    garbage: &mut Garbage<T>,
) {
    if side.len() < capacity || side.contains_key(key) {
        return;
    }
    garbage.extend(side.extract_if(|_, entry| entry.expires <= now));
    let target = capacity - (capacity / 8).max(1);
    if side.len() > target {
        let excess = side.len() - target;
        let doomed: Vec<Box<str>> = side.keys().take(excess).cloned().collect();
        garbage.extend(doomed.into_iter().filter_map(|k| side.remove_entry(&k)));
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
        let later = t + 11 * SECOND;
        c.put("old", 0, t, None);
        for i in 0..3 {
            c.put(&format!("k{i}"), i, later, None);
        }
        c.put("new", 9, later, None);
        assert_eq!(c.len(), 4);
        assert_eq!(c.get("k0", later), Cached::Found(0));
        assert!(!cache(0).put("a", 1, t, None));
    }

    /// Regression: unknown-key lookups shared one bound with valid keys, so a flood of
    /// invented keys evicted every valid key's entry.
    #[test]
    fn unknown_keys_cannot_evict_valid_ones() {
        let c = VerifyCache::with_negative_capacity(10 * SECOND, 2 * SECOND, 1_000, 10_000);
        let t = Instant::now();
        assert!(c.put("valid", 7, t, None));
        for i in 0..100_000 {
            assert!(c.put_missing(&format!("unknown-{i}"), t, None));
        }
        assert_eq!(c.get("valid", t), Cached::Found(7));
        assert!(c.negative_len() <= 10_000);
        assert_eq!(c.get("unknown-99999", t), Cached::Missing);
        assert_eq!(c.len(), c.negative_len() + 1);
    }

    #[test]
    fn a_key_is_on_one_side_at_a_time() {
        let c = cache(10);
        let t = Instant::now();
        c.put_missing("a", t, None);
        c.put("a", 1, t, None);
        assert_eq!(c.get("a", t), Cached::Found(1));
        c.put_missing("a", t, None);
        assert_eq!(c.get("a", t), Cached::Missing);
        assert_eq!(c.len(), 1);
        assert!(c.invalidate("a"));
        assert_eq!(c.get("a", t), Cached::Miss);
        let none = VerifyCache::<u32>::with_negative_capacity(SECOND, SECOND, 10, 0);
        assert!(!none.put_missing("a", t, None));
        assert!(none.put("a", 1, t, None));
    }
}
