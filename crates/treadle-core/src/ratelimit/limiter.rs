//! [`LocalLimiter`]: GCRA state for one process.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::gcra::{Outcome, Quota};

/// Below this many keys the limiter never sweeps.
const MIN_SWEEP: usize = 1024;

/// In-process rate limiting: a theoretical arrival time per key, behind one mutex.
///
/// A key whose arrival time has passed holds no information (it is the same as a fresh
/// key), so once the map doubles in size since the last sweep, such keys are dropped.
///
/// ```
/// use treadle_core::ratelimit::{LocalLimiter, Quota};
///
/// let limiter = LocalLimiter::new();
/// let quota = Quota::per_seconds(100, 60.0)?;
/// let outcome = limiter.check("org_1:api", &quota, 1, LocalLimiter::now_us());
/// assert!(outcome.allowed && outcome.remaining == 99);
/// # Ok::<(), treadle_core::RateLimitError>(())
/// ```
#[derive(Debug, Default)]
pub struct LocalLimiter {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tats: HashMap<Box<str>, i64>,
    sweep_at: usize,
}

impl LocalLimiter {
    /// An empty limiter.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The UNIX time in microseconds: the clock [`check`](Self::check) expects.
    #[must_use]
    pub fn now_us() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// Decides a request of `cost` against `key` under `quota` at `now_us`.
    pub fn check(&self, key: &str, quota: &Quota, cost: u64, now_us: i64) -> Outcome {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (outcome, store) = quota.decide(inner.tats.get(key).copied(), now_us, cost);
        if let Some(tat) = store {
            match inner.tats.get_mut(key) {
                Some(slot) => *slot = tat,
                None => {
                    inner.tats.insert(Box::from(key), tat);
                    if inner.tats.len() > inner.sweep_at.max(MIN_SWEEP) {
                        inner.tats.retain(|_, &mut tat| tat > now_us);
                        inner.sweep_at = inner.tats.len() * 2;
                    }
                }
            }
        }
        outcome
    }

    /// The number of keys with state.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tats
            .len()
    }

    /// Whether no key has state.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key.
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.tats.clear();
        inner.sweep_at = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_separate_and_spent_keys_are_swept() {
        let limiter = LocalLimiter::new();
        let quota = Quota::new(1, 1_000_000).unwrap();
        assert!(limiter.check("a", &quota, 1, 0).allowed);
        assert!(!limiter.check("a", &quota, 1, 0).allowed);
        assert!(limiter.check("b", &quota, 1, 0).allowed);
        assert!(limiter.check("a", &quota, 1, 1_000_000).allowed);
        for i in 0..3000 {
            limiter.check(&format!("k{i}"), &quota, 1, i64::from(i) * 2_000_000);
        }
        assert!(limiter.len() < 3000);
        limiter.clear();
        assert!(limiter.is_empty());
    }
}
