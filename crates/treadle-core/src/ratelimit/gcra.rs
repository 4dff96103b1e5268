//! The generic cell rate algorithm, as one pure function over integer microseconds.

use crate::error::RateLimitError;

/// `limit` requests per `period`, admitted in bursts of up to `limit`.
///
/// Requests are spaced by an emission interval of `period / limit` microseconds
/// (rounded down, at least 1); the burst allowance is `limit` intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    limit: u64,
    period_us: i64,
    interval_us: i64,
}

/// One rate-limit decision, with what the `RateLimit` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// The quota's limit.
    pub limit: u64,
    /// How many cost-1 requests would be admitted right after this decision.
    pub remaining: u64,
    /// Microseconds until the quota is whole again.
    pub reset_after_us: i64,
    /// Microseconds until this request would be admitted; 0 when it was.
    pub retry_after_us: i64,
}

impl Quota {
    /// `limit` requests per `period_us` microseconds.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::ZeroLimit`] for a limit of 0 and
    /// [`RateLimitError::InvalidPeriod`] for a period below 1 µs.
    pub fn new(limit: u64, period_us: i64) -> Result<Self, RateLimitError> {
        if limit == 0 {
            return Err(RateLimitError::ZeroLimit);
        }
        if period_us < 1 {
            return Err(RateLimitError::InvalidPeriod);
        }
        let interval_us = (period_us / i64::try_from(limit).unwrap_or(i64::MAX)).max(1);
        Ok(Self {
            limit,
            period_us,
            interval_us,
        })
    }

    /// `limit` requests per `period` seconds (rounded to the microsecond).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); also [`RateLimitError::InvalidPeriod`] for a period that is
    /// not finite.
    pub fn per_seconds(limit: u64, period: f64) -> Result<Self, RateLimitError> {
        Self::new(
            limit,
            seconds_to_us(period).ok_or(RateLimitError::InvalidPeriod)?,
        )
    }

    /// The number of requests per period.
    #[must_use]
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// The period in microseconds.
    #[must_use]
    pub const fn period_us(&self) -> i64 {
        self.period_us
    }

    /// The emission interval in microseconds: `period / limit`, rounded down, at least 1.
    #[must_use]
    pub const fn interval_us(&self) -> i64 {
        self.interval_us
    }

    /// Decides a request costing `cost` at `now_us`, given the stored theoretical arrival
    /// time `tat_us` (`None` when nothing is stored). Returns the outcome and the TAT to
    /// store, `None` to leave the store as it is (refused, or a cost of 0, which only
    /// reads the state).
    ///
    /// ```
    /// use treadle_core::ratelimit::Quota;
    ///
    /// let quota = Quota::new(2, 1_000_000)?; // 2 per second
    /// let (first, tat) = quota.decide(None, 0, 1);
    /// assert!(first.allowed && first.remaining == 1);
    /// let (second, tat) = quota.decide(tat, 0, 1);
    /// assert!(second.allowed && second.remaining == 0);
    /// let (third, stored) = quota.decide(tat, 0, 1);
    /// assert!(!third.allowed && stored.is_none());
    /// assert_eq!(third.retry_after_us, 500_000);
    /// # Ok::<(), treadle_core::RateLimitError>(())
    /// ```
    #[must_use]
    pub fn decide(&self, tat_us: Option<i64>, now_us: i64, cost: u64) -> (Outcome, Option<i64>) {
        let limit = i64::try_from(self.limit).unwrap_or(i64::MAX);
        let burst = self.interval_us.saturating_mul(limit);
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        let tat = tat_us.map_or(now_us, |tat| tat.max(now_us));
        let new_tat = tat.saturating_add(self.interval_us.saturating_mul(cost));
        let allow_at = new_tat.saturating_sub(burst);
        let remaining_at = |tat: i64| {
            let left = now_us.saturating_sub(tat.saturating_sub(burst)).max(0);
            u64::try_from(left / self.interval_us).unwrap_or(0)
        };
        if now_us < allow_at {
            let outcome = Outcome {
                allowed: false,
                limit: self.limit,
                remaining: remaining_at(tat),
                reset_after_us: tat - now_us,
                retry_after_us: allow_at - now_us,
            };
            return (outcome, None);
        }
        let outcome = Outcome {
            allowed: true,
            limit: self.limit,
            remaining: remaining_at(new_tat),
            reset_after_us: new_tat - now_us,
            retry_after_us: 0,
        };
        (outcome, (cost > 0).then_some(new_tat))
    }
}

impl Outcome {
    /// [`reset_after_us`](Self::reset_after_us) in seconds.
    #[must_use]
    pub fn reset_after(&self) -> f64 {
        us_to_seconds(self.reset_after_us)
    }

    /// [`retry_after_us`](Self::retry_after_us) in seconds.
    #[must_use]
    pub fn retry_after(&self) -> f64 {
        us_to_seconds(self.retry_after_us)
    }
}

/// Seconds to whole microseconds, rounding halves to even (as Python's `round` does, so
/// a caller computing the Lua script's arguments with `round(seconds * 1e6)` gets the
/// same number); `None` if not finite or out of range.
#[must_use]
pub fn seconds_to_us(seconds: f64) -> Option<i64> {
    let us = (seconds * 1e6).round_ties_even();
    // i64::MAX as f64 rounds up to 2^63, which does not fit.
    (us.is_finite() && us.abs() < 9.2e18).then(|| {
        #[allow(clippy::cast_possible_truncation, reason = "range checked above")]
        let us = us as i64;
        us
    })
}

#[allow(
    clippy::cast_precision_loss,
    reason = "durations here are far below 2^53 µs (285 years)"
)]
fn us_to_seconds(us: i64) -> f64 {
    us as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    /// Runs `costs` at `now` in order, threading the state through.
    fn run(quota: &Quota, tat: &mut Option<i64>, now: i64, cost: u64) -> Outcome {
        let (outcome, stored) = quota.decide(*tat, now, cost);
        if stored.is_some() {
            *tat = stored;
        }
        outcome
    }

    #[test]
    fn a_burst_of_limit_then_refusal_then_refill() {
        let quota = Quota::new(10, 60 * SECOND).unwrap();
        let mut tat = None;
        for left in (0..10).rev() {
            let o = run(&quota, &mut tat, 0, 1);
            assert!(o.allowed);
            assert_eq!(o.remaining, left);
            assert_eq!(o.retry_after_us, 0);
        }
        let o = run(&quota, &mut tat, 0, 1);
        assert!(!o.allowed);
        assert_eq!(
            (o.remaining, o.retry_after_us, o.reset_after_us),
            (0, 6 * SECOND, 60 * SECOND)
        );
        // One interval later, exactly one more.
        assert!(run(&quota, &mut tat, 6 * SECOND, 1).allowed);
        assert!(!run(&quota, &mut tat, 6 * SECOND, 1).allowed);
        // After a whole period, the full burst again.
        let o = run(&quota, &mut tat, 120 * SECOND, 0);
        assert_eq!((o.allowed, o.remaining, o.reset_after_us), (true, 10, 0));
    }

    #[test]
    fn costs() {
        let quota = Quota::new(5, 5 * SECOND).unwrap();
        let mut tat = None;
        assert_eq!(run(&quota, &mut tat, 0, 3).remaining, 2);
        let o = run(&quota, &mut tat, 0, 3);
        assert!(!o.allowed);
        assert_eq!((o.remaining, o.retry_after_us), (2, SECOND));
        assert!(run(&quota, &mut tat, 0, 2).allowed);
        // A cost above the limit never fits.
        assert!(!run(&quota, &mut Some(0), 100 * SECOND, 6).allowed);
        // Cost 0 reads without spending.
        let (o, stored) = quota.decide(tat, 0, 0);
        assert_eq!((o.allowed, o.remaining, stored), (true, 0, None));
    }

    #[test]
    fn a_clock_that_goes_back_is_safe() {
        let quota = Quota::new(2, SECOND).unwrap();
        let mut tat = None;
        run(&quota, &mut tat, 10 * SECOND, 2);
        let o = run(&quota, &mut tat, 0, 1);
        assert_eq!((o.allowed, o.remaining), (false, 0));
    }

    #[test]
    fn quota_validation_and_rounding() {
        assert_eq!(Quota::new(0, SECOND), Err(RateLimitError::ZeroLimit));
        assert_eq!(Quota::new(1, 0), Err(RateLimitError::InvalidPeriod));
        assert_eq!(
            Quota::per_seconds(1, f64::NAN),
            Err(RateLimitError::InvalidPeriod)
        );
        assert_eq!(Quota::per_seconds(3, 1.0).unwrap().interval_us(), 333_333);
        assert_eq!(Quota::new(10, 5).unwrap().interval_us(), 1);
        assert_eq!(seconds_to_us(1.5e-6), Some(2));
        assert_eq!(seconds_to_us(2.5e-6), Some(2));
        assert_eq!(seconds_to_us(1e300), None);
    }
}
