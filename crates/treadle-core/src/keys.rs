//! API keys: the key format with its offline checksum, and the verification cache.
//!
//! A key reads `trd_live_` or `trd_test_`, then 32 random base62 characters (≈ 190
//! bits from the OS CSPRNG), then 6 base62 characters of CRC-32 over prefix and body:
//!
//! ```text
//! trd_live_7HqK2m9ZbX4cN1pQrS8tUvW3yZa5Bc6D0eF2kL
//! └ prefix ┘└──────────── body (32) ────────────┘└ crc ┘
//! ```
//!
//! [`check`] refuses a malformed key (wrong prefix, length or alphabet, or any
//! single-character change) without touching storage. Store only the key's keyed hash
//! ([`keyed_hash`](crate::keyed_hash)) and its display prefix; cache what a lookup found
//! in a [`VerifyCache`].

mod cache;
mod checksum;
mod format;

pub use cache::{Cached, VerifyCache};
pub use format::{
    check, environment, generate, Environment, NewKey, BODY_LEN, DISPLAY_BODY_LEN, KEY_LEN,
};
