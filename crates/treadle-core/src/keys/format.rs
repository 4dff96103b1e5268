//! API key text: `trd_live_` or `trd_test_`, a random base62 body, a checksum.

use std::fmt;
use std::str::FromStr;

use super::checksum::{self, BASE62, CHECKSUM_LEN};
use crate::error::ApiKeyError;

/// Characters of random base62 body: 32 × log2(62) ≈ 190 bits.
pub const BODY_LEN: usize = 32;

/// Characters of body shown in the display prefix: the first 8 (≈ 48 bits).
pub const DISPLAY_BODY_LEN: usize = 8;

/// The length of every API key: prefix (9) + body (32) + checksum (6).
pub const KEY_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;

const PREFIX_LEN: usize = 9;

/// Which environment a key belongs to, readable from its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// `trd_live_`: production traffic.
    Live,
    /// `trd_test_`: test traffic.
    Test,
}

impl Environment {
    /// The key prefix: `trd_live_` or `trd_test_`.
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Live => "trd_live_",
            Self::Test => "trd_test_",
        }
    }

    /// The name: `live` or `test`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Test => "test",
        }
    }
}

impl FromStr for Environment {
    type Err = ApiKeyError;

    fn from_str(environment: &str) -> Result<Self, ApiKeyError> {
        match environment {
            "live" => Ok(Self::Live),
            "test" => Ok(Self::Test),
            _ => Err(ApiKeyError::UnknownEnvironment {
                environment: environment.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A freshly made key. Show `raw` once and keep only its keyed hash and `display_prefix`.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The whole key, e.g. `trd_live_7Hq…` (47 characters).
    pub raw: String,
    /// The prefix plus the first [`DISPLAY_BODY_LEN`] body characters, e.g.
    /// `trd_live_7HqK2m9Z`, to tell keys apart in listings.
    pub display_prefix: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("display_prefix", &self.display_prefix)
            .finish_non_exhaustive()
    }
}

/// Makes a key for `environment` with a body from the OS CSPRNG.
///
/// ```
/// use treadle_core::keys::{self, Environment};
///
/// let key = keys::generate(Environment::Test)?;
/// assert!(key.raw.starts_with(&key.display_prefix));
/// assert!(keys::check(&key.raw));
/// # Ok::<(), treadle_core::ApiKeyError>(())
/// ```
///
/// # Errors
///
/// [`ApiKeyError::EntropyUnavailable`] if the OS random source fails.
pub fn generate(environment: Environment) -> Result<NewKey, ApiKeyError> {
    let mut raw = String::with_capacity(KEY_LEN);
    raw.push_str(environment.prefix());
    let mut body = [0_u8; BODY_LEN];
    let mut filled = 0;
    let mut random = [0_u8; 64];
    while filled < BODY_LEN {
        getrandom::fill(&mut random).map_err(|_| ApiKeyError::EntropyUnavailable)?;
        // 248 = 4 × 62: rejecting bytes above it keeps every digit equally likely.
        for &byte in random.iter().filter(|&&b| b < 248) {
            if filled == BODY_LEN {
                break;
            }
            body[filled] = BASE62[usize::from(byte % 62)];
            filled += 1;
        }
    }
    let sum = checksum::crc32(&[environment.prefix().as_bytes(), &body]);
    for part in [&body[..], &checksum::encode(sum)] {
        raw.extend(part.iter().map(|&b| char::from(b)));
    }
    let display_prefix = raw[..PREFIX_LEN + DISPLAY_BODY_LEN].to_owned();
    Ok(NewKey {
        raw,
        display_prefix,
    })
}

/// Whether `raw` is a well-formed key: a known prefix, a base62 body of the right length
/// and a checksum that matches. Needs no storage, so malformed keys are refused without
/// I/O. A key that passes may still be unknown or revoked.
#[must_use]
pub fn check(raw: &str) -> bool {
    environment(raw).is_some()
}

/// The environment of a well-formed key (see [`check`]); `None` for a malformed one.
#[must_use]
pub fn environment(raw: &str) -> Option<Environment> {
    let raw = raw.as_bytes();
    if raw.len() != KEY_LEN {
        return None;
    }
    let (prefix, rest) = raw.split_at(PREFIX_LEN);
    let environment = [Environment::Live, Environment::Test]
        .into_iter()
        .find(|e| e.prefix().as_bytes() == prefix)?;
    let (body, sum) = rest.split_at(BODY_LEN);
    if !body.iter().all(|&c| checksum::digit(c).is_some()) {
        return None;
    }
    (checksum::decode(sum)? == checksum::crc32(&[prefix, body])).then_some(environment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_format() {
        let live = generate(Environment::Live).unwrap();
        let test = generate(Environment::Test).unwrap();
        assert_eq!(live.raw.len(), KEY_LEN);
        assert_eq!(KEY_LEN, 47);
        assert!(live.raw.starts_with("trd_live_") && test.raw.starts_with("trd_test_"));
        assert_eq!(live.display_prefix.len(), 17);
        assert!(live.raw.starts_with(&live.display_prefix));
        assert_eq!(environment(&live.raw), Some(Environment::Live));
        assert_eq!(environment(&test.raw), Some(Environment::Test));
        assert_ne!(live.raw[9..], generate(Environment::Live).unwrap().raw[9..]);
        assert!(!format!("{live:?}").contains(&live.raw));
    }

    #[test]
    fn every_single_character_change_is_refused() {
        let key = generate(Environment::Live).unwrap().raw;
        let mut bytes = key.clone().into_bytes();
        for at in 0..bytes.len() {
            let original = bytes[at];
            for &c in BASE62.iter().chain(b"_-") {
                if c != original {
                    bytes[at] = c;
                    let changed = std::str::from_utf8(&bytes).unwrap();
                    assert!(!check(changed), "{changed} passed");
                }
            }
            bytes[at] = original;
        }
        assert!(check(&key));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let key = generate(Environment::Test).unwrap().raw;
        for bad in [
            String::new(),
            key[..KEY_LEN - 1].to_owned(),
            format!("{key}0"),
            key.replacen("trd_test_", "trd_prod_", 1),
            key.replacen("trd_test_", "trd_live_", 1),
            key.to_uppercase(),
            format!(" {}", &key[1..]),
        ] {
            assert!(!check(&bad), "{bad:?}");
        }
        assert!(!check("trd_live_ééééééééééééééééAAAAAAAAAAAAAAAA000000"));
        assert!("prod".parse::<Environment>().is_err());
    }
}
