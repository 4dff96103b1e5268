//! Standard Webhooks 1.0 signatures: `v1,` and base64 of HMAC-SHA256 over
//! `{id}.{timestamp}.{body}`, keyed with the endpoint's secret (`whsec_` and base64).
//!
//! ```
//! use treadle_core::webhooks::{sign, Secret};
//!
//! // The example the specification publishes.
//! let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
//! let signature = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
//! assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! # Ok::<(), treadle_core::webhooks::SecretError>(())
//! ```
//!
//! While an endpoint's secret is being rotated, a delivery carries one signature per live
//! secret, separated by spaces, as the specification allows ([`sign_all`]); a receiver
//! accepts the delivery if any of them verifies ([`verify`]).

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::constant_time_eq;

const PREFIX: &str = "whsec_";
/// Bytes of key in a secret [`Secret::generate`] makes (the specification allows 24–64).
pub const SECRET_BYTES: usize = 32;

/// An endpoint's signing key.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret from its text form, `whsec_` and standard base64 of 24 to 64 bytes.
    ///
    /// # Errors
    ///
    /// [`SecretError`] without the prefix, with text that is not base64, or with a key
    /// outside 24–64 bytes.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(PREFIX).ok_or(SecretError::Prefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&key.len()) {
            return Err(SecretError::Length(key.len()));
        }
        Ok(Self(key))
    }

    /// A new random secret of [`SECRET_BYTES`] from the operating system's CSPRNG, in its
    /// text form.
    ///
    /// # Errors
    ///
    /// [`SecretError::Entropy`] if the OS random source fails.
    pub fn generate() -> Result<String, SecretError> {
        let mut key = [0_u8; SECRET_BYTES];
        getrandom::fill(&mut key).map_err(|_| SecretError::Entropy)?;
        Ok(format!("{PREFIX}{}", STANDARD.encode(key)))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)") // never the key
    }
}

/// Why a secret's text form was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretError {
    /// It does not start with `whsec_`.
    Prefix,
    /// What follows the prefix is not standard base64.
    Base64,
    /// The key is not 24 to 64 bytes long (the length found).
    Length(usize),
    /// The OS random source failed.
    Entropy,
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prefix => f.write_str("a webhook secret starts with whsec_"),
            Self::Base64 => f.write_str("a webhook secret is whsec_ and standard base64"),
            Self::Length(n) => write!(f, "a webhook secret's key is 24 to 64 bytes, not {n}"),
            Self::Entropy => f.write_str("the OS random source failed"),
        }
    }
}

impl std::error::Error for SecretError {}

fn mac(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The `webhook-signature` value of one secret: `v1,` and the base64 MAC.
#[must_use]
pub fn sign(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(mac(secret, msg_id, timestamp, body))
    )
}

/// The `webhook-signature` value of several secrets (a rotation's overlap), separated by
/// spaces, in the order given.
#[must_use]
pub fn sign_all(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1` signature of the space-separated `header` is `secret`'s MAC of the
/// message, compared in constant time. Other versions are skipped. The timestamp's age is
/// the receiver's to check.
#[must_use]
pub fn verify(secret: &Secret, msg_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = mac(secret, msg_id, timestamp, body);
    header.split(' ').any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .is_some_and(|given| constant_time_eq(&given, &expected))
    })
}

#[cfg(test)]
mod tests {
    use super::{sign, sign_all, verify, Secret, SecretError};

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_specifications_example() {
        let secret = Secret::parse(SPEC_SECRET).unwrap();
        assert_eq!(sign(&secret, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        assert!(verify(&secret, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIGNATURE));
        assert!(!verify(
            &secret,
            SPEC_ID,
            SPEC_TS + 1,
            SPEC_BODY,
            SPEC_SIGNATURE
        ));
        assert!(!verify(&secret, SPEC_ID, SPEC_TS, b"{}", SPEC_SIGNATURE));
    }

    #[test]
    fn an_overlap_signs_with_both_and_either_verifies() {
        let old = Secret::parse(SPEC_SECRET).unwrap();
        let new = Secret::parse(&Secret::generate().unwrap()).unwrap();
        let header = sign_all(&[new.clone(), old.clone()], SPEC_ID, SPEC_TS, SPEC_BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.ends_with(SPEC_SIGNATURE));
        assert!(verify(&old, SPEC_ID, SPEC_TS, SPEC_BODY, &header));
        assert!(verify(&new, SPEC_ID, SPEC_TS, SPEC_BODY, &header));
        assert!(!verify(&new, SPEC_ID, SPEC_TS, SPEC_BODY, SPEC_SIGNATURE));
        assert!(!verify(
            &old,
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY,
            "v2,abc v1,not-base64"
        ));
    }

    #[test]
    fn secrets_have_a_prefix_base64_and_a_bounded_key() {
        assert_eq!(Secret::parse("MfKQ9r8G").unwrap_err(), SecretError::Prefix);
        assert_eq!(Secret::parse("whsec_***").unwrap_err(), SecretError::Base64);
        assert_eq!(
            Secret::parse("whsec_AAAA").unwrap_err(),
            SecretError::Length(3)
        );
        let made = Secret::generate().unwrap();
        assert!(made.starts_with("whsec_"));
        assert!(Secret::parse(&made).is_ok());
        assert_ne!(made, Secret::generate().unwrap());
        assert_eq!(format!("{:?}", Secret::parse(&made).unwrap()), "Secret(..)");
    }
}
