//! Idempotency: the request fingerprint that tells a retry from a different request.
//!
//! A stored response is replayed only for the same request under the same
//! `Idempotency-Key`. "Same" is decided by [`fingerprint`]: SHA-256 over the method, the
//! path, the media type and the body, where a JSON body is first put in canonical form
//! ([`canonical_json`]), so that key order and whitespace do not count but every value
//! does.
//!
//! ```
//! use treadle_core::idempotency::{canonical_json, fingerprint};
//!
//! let a = fingerprint("POST", "/v1/jobs", br#"{"type": "render", "n": 2}"#, None);
//! let b = fingerprint("POST", "/v1/jobs", b"{\"n\":2,\n \"type\":\"render\"}", Some("application/json"));
//! let c = fingerprint("POST", "/v1/jobs", br#"{"type": "render", "n": 3}"#, None);
//! assert_eq!(a, b);
//! assert_ne!(a, c);
//! assert_eq!(canonical_json(b"{ \"b\": 1.50, \"a\": [1E2, \"\\u00e9\"] }").unwrap(), "{\"a\":[100.0,\"é\"],\"b\":1.5}".as_bytes());
//! ```
//!
//! # The canonical form
//!
//! It is byte for byte what Python writes for the same document with
//! `json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)`, encoded as UTF-8:
//!
//! - Object keys sorted by code point; of duplicate keys the last one wins.
//! - No whitespace outside strings.
//! - Strings hold their characters unescaped (non-ASCII included), except `"`, `\` and
//!   the control characters below U+0020: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, else
//!   `\u00XX` in lowercase hex. `\/`, `\u00e9` and `é` are the same string.
//! - Integers (no fraction, no exponent) keep their exact digits at any size up to
//!   4,300 digits; `-0` is `0`. **An integer and a float are different values**: `1` and
//!   `1.0` give different fingerprints, as they decode to different types (a typed field
//!   may take one and refuse the other).
//! - A number with a fraction or an exponent is an IEEE double, written as Python's
//!   `repr` writes it: the shortest digits that read back to the same double, in fixed
//!   notation (`100.0`, `0.0001`) when the decimal exponent is in `-4..16`, else in
//!   exponent notation (`1e+16`, `1e-05`, `1.5e+300`). So `1.0`, `1.00` and `10e-1`
//!   are the same value, and so are `0.1` and `0.10000000000000001`; `-0.0` stays `-0.0`.
//!
//! # What is not canonicalised
//!
//! The body is hashed as it came, byte for byte, when the media type is not JSON, or
//! when it is but the body is not a JSON document this form covers: empty, not UTF-8
//! (a byte-order mark included), malformed, `NaN`/`Infinity`, a float that overflows a
//! double, an integer longer than 4,300 digits, a string with an unpaired surrogate
//! escape, or containers nested deeper than [`MAX_DEPTH`]. Raw and canonical bodies are
//! told apart inside the hash, so they never collide.
//!
//! # Media types
//!
//! The media type is the `Content-Type` before any `;` parameters, trimmed and
//! lowercased (ASCII). An absent or empty `Content-Type` means `application/json`.
//! `application/json` and every `application/<anything>+json` are JSON. The media type
//! is part of the hash: the same bytes sent as YAML and as TOML are different requests,
//! while `application/json; charset=utf-8` and no `Content-Type` at all are the same.

mod canonical;
mod fingerprint;
mod float;
mod string;

pub use canonical::canonical_json;
pub use fingerprint::{fingerprint, fingerprint_as, media_type, Fingerprint, DOMAIN};

/// Containers nested deeper than this leave a JSON body raw.
pub const MAX_DEPTH: usize = 128;

/// Integers with more digits than this leave a JSON body raw (Python's own limit for
/// turning text into an `int`).
pub const MAX_INT_DIGITS: usize = 4300;
