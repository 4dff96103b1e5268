//! `RateLimiter` (in-process GCRA) and `GCRA_LUA` (the same algorithm for Redis).

use pyo3::prelude::*;
use treadle_core::ratelimit::{seconds_to_us, LocalLimiter, Quota};
use treadle_core::RateLimitError;

use crate::errors::Error;

/// In-process GCRA rate limiting: ``limit`` requests per ``period_seconds`` per key,
/// bursts of up to ``limit``.
#[pyclass(module = "treadle._core", frozen)]
pub(crate) struct RateLimiter {
    inner: LocalLimiter,
}

#[pymethods]
impl RateLimiter {
    #[new]
    fn new() -> Self {
        Self {
            inner: LocalLimiter::new(),
        }
    }

    /// Decide a request costing ``cost`` (0 only reads) against ``key`` at ``now`` (UNIX
    /// seconds; default: the system clock). Returns ``(allowed, limit, remaining,
    /// reset_after_seconds, retry_after_seconds)``; ``retry_after_seconds`` is 0.0 when
    /// allowed. Raises ``CoreError`` for a limit of 0 or a period that is not positive.
    #[pyo3(signature = (key, limit, period_seconds, cost = 1, now = None))]
    fn check(
        &self,
        key: &str,
        limit: u64,
        period_seconds: f64,
        cost: u64,
        now: Option<f64>,
    ) -> Result<(bool, u64, u64, f64, f64), Error> {
        let quota = Quota::per_seconds(limit, period_seconds)?;
        let now_us = match now {
            None => LocalLimiter::now_us(),
            Some(now) => seconds_to_us(now).ok_or(RateLimitError::InvalidTime)?,
        };
        let o = self.inner.check(key, &quota, cost, now_us);
        Ok((
            o.allowed,
            o.limit,
            o.remaining,
            o.reset_after(),
            o.retry_after(),
        ))
    }

    /// Forget every key.
    fn clear(&self) {
        self.inner.clear();
    }

    /// The number of keys with state.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
