//! Rate limiting with GCRA (the generic cell rate algorithm), in-process or in Redis.
//!
//! A [`Quota`] of `limit` requests per `period` admits a burst of `limit` at once and
//! then one request per `period / limit`. State per key is a single number, the
//! theoretical arrival time (TAT), in integer UNIX microseconds.
//!
//! Two modes run the same arithmetic: [`LocalLimiter`] keeps the TATs in process, and
//! [`GCRA_LUA`] is the same algorithm as a Redis script, so every worker shares one
//! state with one round trip per decision. Both return an [`Outcome`]: allowed, limit,
//! remaining, reset-after and retry-after, the values of the IETF `RateLimit` and
//! `Retry-After` headers.

mod gcra;
mod limiter;

pub use gcra::{seconds_to_us, Outcome, Quota};
pub use limiter::LocalLimiter;

/// The GCRA as a Redis Lua script (run it with `EVALSHA`).
///
/// `KEYS[1]` is the state key; `ARGV` is limit, period in microseconds, cost, and
/// optionally now in UNIX microseconds (omit it to use the Redis server's `TIME`). It
/// returns `{allowed (0/1), limit, remaining, reset_after_us, retry_after_us}`, equal
/// to [`Quota::decide`] on the same inputs.
pub const GCRA_LUA: &str = include_str!("ratelimit/gcra.lua");
