//! treadle's hot paths in plain Rust: authorization, API keys, rate limiting, route
//! matching, HS256 JWTs, keyed hashing and random tokens, idempotency fingerprints,
//! live-event fan-out, Standard Webhooks signatures ([`webhooks`]) and telemetry batch ingest ([`ingest`]: decompressed within a
//! limit, checked event by event, written as binary COPY rows), with no Python in sight.
//!
//! The `treadle-py` crate wraps these functions for Python as `treadle._core`; this
//! crate never depends on PyO3.
//!
//! ```
//! use treadle_core::router::{Lookup, Router};
//!
//! let mut router = Router::new();
//! router.add("GET", "/v1/users/{id}", 1)?;
//! router.add("POST", "/v1/users/{id}/unlock", 2)?;
//!
//! match router.lookup("GET", "/v1/users/u_42") {
//!     Lookup::Match(m) => assert_eq!((*m.value, m.params.get("id")), (1, Some("u_42"))),
//!     other => panic!("{other:?}"),
//! }
//!
//! let claims = br#"{"sub":"u_42","exp":1900000000}"#;
//! let token = treadle_core::jwt::encode(claims, b"signing key")?;
//! let back = treadle_core::jwt::decode(&token, b"signing key", 1_800_000_000, 30)?;
//! assert_eq!(back, claims);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Routing rules
//!
//! - A template starts with `/`; each segment is static text or a whole-segment
//!   `{name}` parameter (`[A-Za-z0-9_]+`), at most [`router::MAX_PARAMS`] of them.
//! - Static segments win over parameters; a dead static branch backtracks into the
//!   parameter. The method is checked where the path lands, giving
//!   [`Lookup::MethodNotAllowed`](router::Lookup::MethodNotAllowed) with the sorted
//!   allowed methods rather than falling through to another template.
//! - Paths are matched byte for byte: decode them before the lookup if you need to.
//!
//! # Token rules
//!
//! - [`jwt`] speaks HS256 only. `alg: none` and every other algorithm fail with
//!   [`TokenError::UnsupportedAlgorithm`] before the signature is checked.
//! - `exp` is required; `nbf` is optional; both allow a leeway in seconds.
//! - MACs and secrets are compared with [`constant_time_eq`] semantics.
//!
//! # Authorization rules
//!
//! - [`authz::Authz`] holds a [`Policy`](authz::Policy) and one immutable
//!   [`Snapshot`](authz::Snapshot) per organization, replaced only by a newer revision.
//! - Precedence: a user outside the organization is refused; then deny ACL > allow ACL >
//!   role (team role where the resource belongs to the user's team, else organization
//!   role); an API key has scopes instead of roles.
//! - Every [`Decision`](authz::Decision) carries a stable reason code and the rule that
//!   decided. A check touches only the ACL entries on its resource for its principal and
//!   the principal's teams.
//!
//! # Keys and limits
//!
//! - [`keys`]: `trd_live_`/`trd_test_` keys whose CRC-32 checksum refuses malformed
//!   keys offline, and a verification cache with negative entries and generations.
//! - [`ratelimit`]: GCRA over integer microseconds, in process
//!   ([`LocalLimiter`](ratelimit::LocalLimiter)) or as a Redis script
//!   ([`GCRA_LUA`](ratelimit::GCRA_LUA)) that computes the same numbers.
//!
//! # Idempotency and fan-out
//!
//! - [`idempotency::fingerprint`]: SHA-256 over method, path, media type and body, a
//!   JSON body in a canonical form (sorted keys, no whitespace, normalised escapes and
//!   floats) byte-identical to Python's `json.dumps(..., sort_keys=True,
//!   separators=(",", ":"), ensure_ascii=False)`. `1` and `1.0` stay different; a body
//!   that is not JSON is hashed as it came.
//! - [`fanout::Hub`]: per organization, a bounded replay ring and subscribers with
//!   topic/job/run filters and bounded queues; a full queue overflows its subscriber,
//!   never the publisher. Replay and resume report a `gap` when history was trimmed;
//!   event ids compare as Redis stream ids.
//!
//! # Errors
//!
//! Every fallible function returns one of the `#[non_exhaustive]` enums in [`error`]:
//! [`RouteError`], [`TokenError`] (whose [`reason`](TokenError::reason) is a stable
//! code), [`CryptoError`], [`AuthzError`], [`ApiKeyError`], [`RateLimitError`] or
//! [`FanoutError`].

pub mod authz;
mod ct;
pub mod digest;
pub mod error;
pub mod fanout;
mod hex;
pub mod idempotency;
pub mod ingest;
pub mod jwt;
pub mod keys;
pub mod ratelimit;
pub mod router;
mod token;
pub mod tokens;
pub mod webhooks;

pub use ct::constant_time_eq;
pub use error::{
    ApiKeyError, AuthzError, CryptoError, FanoutError, RateLimitError, RouteError, TemplateProblem,
    TokenError,
};
pub use hex::Hex;
pub use router::Router;
pub use token::{derive_key, keyed_hash, random_token, request_id, MAX_TOKEN_BYTES};
