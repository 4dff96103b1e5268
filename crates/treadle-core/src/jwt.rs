//! HS256 JSON Web Tokens (RFC 7519), and nothing else.
//!
//! Only the header `{"alg":"HS256","typ":"JWT"}` is produced. On decode the header must
//! name `alg` `HS256` (`none` and every other algorithm are refused before the
//! signature is looked at), `typ` may be absent or `JWT`, and `crit` must be absent.
//! The MAC is compared in constant time. `exp` is required and `nbf` optional, both
//! JSON numbers (NumericDate); the claims are otherwise returned untouched as the JSON
//! bytes that were signed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use sha2::Sha256;
use std::fmt;

use crate::error::TokenError;

type HmacSha256 = Hmac<Sha256>;

/// `{"alg":"HS256","typ":"JWT"}`, base64url-encoded.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Signs `claims`, which must be one JSON object, and returns the compact token.
///
/// # Errors
///
/// [`TokenError::Malformed`] if `claims` is not a JSON object.
pub fn encode(claims: &[u8], key: &[u8]) -> Result<String, TokenError> {
    serde_json::from_slice::<AnyObject>(claims).map_err(|_| TokenError::Malformed {
        detail: "claims must be a JSON object",
    })?;
    let mut token = String::with_capacity(HEADER.len() + claims.len() * 4 / 3 + 48);
    token.push_str(HEADER);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let tag = mac(key, token.as_bytes()).finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    Ok(token)
}

/// Verifies `token` with `key` at time `now` (seconds since the epoch) and returns its
/// claims as the JSON bytes that were signed.
///
/// Valid when `exp > now - leeway` and, if `nbf` is present, `nbf <= now + leeway`.
///
/// # Errors
///
/// A [`TokenError`] naming the first check that failed, in this order: structure and
/// header ([`Malformed`](TokenError::Malformed),
/// [`UnsupportedAlgorithm`](TokenError::UnsupportedAlgorithm)), signature
/// ([`BadSignature`](TokenError::BadSignature)), claims
/// ([`Malformed`](TokenError::Malformed)), then time
/// ([`Expired`](TokenError::Expired), [`NotYetValid`](TokenError::NotYetValid)).
pub fn decode(token: &str, key: &[u8], now: i64, leeway: u64) -> Result<Vec<u8>, TokenError> {
    let (signed, signature) = token.rsplit_once('.').ok_or(MALFORMED_SHAPE)?;
    let (header, payload) = signed.split_once('.').ok_or(MALFORMED_SHAPE)?;
    if payload.contains('.') {
        return Err(MALFORMED_SHAPE);
    }
    if header != HEADER {
        check_header(header)?;
    }

    let mut tag = [0_u8; 32];
    match URL_SAFE_NO_PAD.decode_slice(signature, &mut tag) {
        Ok(32) => {}
        _ => return Err(TokenError::BadSignature),
    }
    mac(key, signed.as_bytes())
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;

    let claims = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed {
            detail: "claims are not base64url",
        })?;
    let times =
        serde_json::from_slice::<TimeClaims>(&claims).map_err(|_| TokenError::Malformed {
            detail: "claims must be a JSON object with a numeric exp and an optional numeric nbf",
        })?;
    let exp = times.exp.ok_or(TokenError::Malformed {
        detail: "exp claim is missing",
    })?;
    let now = i128::from(now);
    let leeway = i128::from(leeway);
    if !exp.is_after(now - leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = times.nbf {
        if nbf.is_after(now + leeway) {
            return Err(TokenError::NotYetValid);
        }
    }
    Ok(claims)
}

const MALFORMED_SHAPE: TokenError = TokenError::Malformed {
    detail: "a token is three base64url segments joined by '.'",
};

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    mac
}

/// Checks a header that is not byte-for-byte the one [`encode`] writes.
fn check_header(header: &str) -> Result<(), TokenError> {
    let malformed = TokenError::Malformed {
        detail: "header must be a base64url JSON object",
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed)?;
    let header = serde_json::from_slice::<Header>(&json).map_err(|_| malformed)?;
    if header.alg != Some(true) || header.crit {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.typ == Some(false) {
        return Err(TokenError::Malformed {
            detail: "header typ must be JWT",
        });
    }
    Ok(())
}

/// A JSON number used as a NumericDate: whole seconds exactly, or fractional.
#[derive(Debug, Clone, Copy, PartialEq)]
enum NumericDate {
    Whole(i128),
    Fraction(f64),
}

impl NumericDate {
    fn is_after(self, t: i128) -> bool {
        match self {
            Self::Whole(v) => v > t,
            // i128 -> f64 is exact for any realistic time; this is the spec's comparison.
            #[allow(clippy::cast_precision_loss)]
            Self::Fraction(v) => v > t as f64,
        }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumericDate, E> {
                Ok(NumericDate::Whole(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumericDate, E> {
                Ok(NumericDate::Whole(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumericDate, E> {
                Ok(NumericDate::Fraction(v))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// The keys this module reads; every other key is skipped without allocating.
enum Key {
    Alg,
    Typ,
    Crit,
    Exp,
    Nbf,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "alg" => Key::Alg,
                    "typ" => Key::Typ,
                    "crit" => Key::Crit,
                    "exp" => Key::Exp,
                    "nbf" => Key::Nbf,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A string compared against `expected` without being copied out.
struct StrIs {
    expected: &'static str,
    ignore_case: bool,
}

impl<'de> de::DeserializeSeed<'de> for StrIs {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for StrIs {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(if self.ignore_case {
            v.eq_ignore_ascii_case(self.expected)
        } else {
            v == self.expected
        })
    }
}

/// What the header says: whether `alg` is HS256 and `typ` is JWT (`None` when absent),
/// and whether `crit` is present.
struct Header {
    alg: Option<bool>,
    typ: Option<bool>,
    crit: bool,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
                let mut header = Header {
                    alg: None,
                    typ: None,
                    crit: false,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Alg => {
                            let is = StrIs {
                                expected: "HS256",
                                ignore_case: false,
                            };
                            set_once(&mut header.alg, map.next_value_seed(is)?, "alg")?;
                        }
                        Key::Typ => {
                            let is = StrIs {
                                expected: "JWT",
                                ignore_case: true,
                            };
                            set_once(&mut header.typ, map.next_value_seed(is)?, "typ")?;
                        }
                        Key::Crit => {
                            map.next_value::<IgnoredAny>()?;
                            header.crit = true;
                        }
                        Key::Exp | Key::Nbf | Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(header)
            }
        }
        deserializer.deserialize_map(HeaderVisitor)
    }
}

/// The time claims; every other claim is skipped.
struct TimeClaims {
    exp: Option<NumericDate>,
    nbf: Option<NumericDate>,
}

impl<'de> Deserialize<'de> for TimeClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;
        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = TimeClaims;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claims object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TimeClaims, A::Error> {
                let mut claims = TimeClaims {
                    exp: None,
                    nbf: None,
                };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Exp => set_once(&mut claims.exp, map.next_value()?, "exp")?,
                        Key::Nbf => set_once(&mut claims.nbf, map.next_value()?, "nbf")?,
                        Key::Alg | Key::Typ | Key::Crit | Key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(claims)
            }
        }
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

/// Any JSON object, checked and thrown away.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyObject, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyObject)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Duplicate keys are refused: parsers disagree on which one wins.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, value: T, key: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(key));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"test-key-0123456789abcdef0123456";
    const NOW: i64 = 1_700_000_000;

    fn token_with_header(header_json: &str, claims: &str) -> String {
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header_json),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let tag = mac(KEY, signed.as_bytes()).finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    fn reason(result: Result<Vec<u8>, TokenError>) -> &'static str {
        result.map_or_else(|e| e.reason(), |_| "ok")
    }

    #[test]
    fn header_constant_is_the_canonical_header() {
        assert_eq!(
            URL_SAFE_NO_PAD.decode(HEADER).unwrap(),
            br#"{"alg":"HS256","typ":"JWT"}"#
        );
    }

    #[test]
    fn matches_an_independent_signer() {
        // Expected value computed with Python's hmac, hashlib and base64 modules.
        let token = encode(br#"{"sub":"1234567890","exp":1900000000}"#, b"secret").unwrap();
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
             eyJzdWIiOiIxMjM0NTY3ODkwIiwiZXhwIjoxOTAwMDAwMDAwfQ.\
             C-M7NTDsexPMuH4QG_zsahhAofFzmp1NDxIn_1mWxrQ"
        );
    }

    #[test]
    fn round_trips_claims_bytes() {
        let claims = br#"{"sub":"u1","exp":1700000100,"scopes":["a","b"]}"#;
        let token = encode(claims, KEY).unwrap();
        assert_eq!(decode(&token, KEY, NOW, 0).unwrap(), claims);
    }

    #[test]
    fn exp_and_nbf_boundaries() {
        let token = encode(br#"{"exp":1700000000,"nbf":1700000000}"#, KEY).unwrap();
        assert_eq!(reason(decode(&token, KEY, NOW - 1, 0)), "not_yet_valid");
        assert_eq!(reason(decode(&token, KEY, NOW - 1, 1)), "ok");
        assert_eq!(reason(decode(&token, KEY, NOW, 0)), "expired");
        assert_eq!(reason(decode(&token, KEY, NOW, 1)), "ok");
        assert_eq!(reason(decode(&token, KEY, NOW + 1, 1)), "expired");
    }

    #[test]
    fn fractional_and_huge_dates() {
        let token = encode(br#"{"exp":1700000000.5}"#, KEY).unwrap();
        assert_eq!(reason(decode(&token, KEY, NOW, 0)), "ok");
        assert_eq!(reason(decode(&token, KEY, NOW + 1, 0)), "expired");
        let token = encode(br#"{"exp":18446744073709551615}"#, KEY).unwrap();
        assert_eq!(reason(decode(&token, KEY, i64::MAX, u64::MAX)), "ok");
        let token = encode(br#"{"exp":-5}"#, KEY).unwrap();
        assert_eq!(reason(decode(&token, KEY, i64::MIN, u64::MAX)), "ok");
    }

    #[test]
    fn exp_is_required_and_numeric() {
        for claims in [
            r#"{"sub":"u1"}"#,
            r#"{"exp":"1800000000"}"#,
            r#"{"exp":null}"#,
            r#"{"exp":1800000000,"exp":1800000001}"#,
            r#"{"exp":1800000000,"nbf":"0"}"#,
            r#"[1800000000]"#,
        ] {
            let token = token_with_header(r#"{"alg":"HS256","typ":"JWT"}"#, claims);
            assert_eq!(reason(decode(&token, KEY, NOW, 0)), "malformed", "{claims}");
        }
    }

    #[test]
    fn refuses_other_algorithms() {
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"HS256","crit":["b64"]}"#,
        ] {
            let token = token_with_header(header, r#"{"exp":1800000000}"#);
            assert_eq!(
                reason(decode(&token, KEY, NOW, 0)),
                "unsupported_algorithm",
                "{header}"
            );
        }
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"exp":1800000000}"#)
        );
        assert_eq!(
            reason(decode(&unsigned, KEY, NOW, 0)),
            "unsupported_algorithm"
        );
    }

    #[test]
    fn accepts_equivalent_headers() {
        for header in [
            r#"{"typ":"JWT","alg":"HS256"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"HS256","typ":"jwt","kid":"k1"}"#,
        ] {
            let token = token_with_header(header, r#"{"exp":1800000000}"#);
            assert_eq!(reason(decode(&token, KEY, NOW, 0)), "ok", "{header}");
        }
        let token = token_with_header(r#"{"alg":"HS256","typ":"at+jwt"}"#, r#"{"exp":1}"#);
        assert_eq!(reason(decode(&token, KEY, NOW, 0)), "malformed");
    }

    #[test]
    fn wrong_key_is_bad_signature() {
        let token = encode(br#"{"exp":1800000000}"#, KEY).unwrap();
        assert_eq!(reason(decode(&token, b"other", NOW, 0)), "bad_signature");
        let (signed, _) = token.rsplit_once('.').unwrap();
        assert_eq!(
            reason(decode(&format!("{signed}.AAAA"), KEY, NOW, 0)),
            "bad_signature"
        );
        assert_eq!(
            reason(decode(&format!("{signed}."), KEY, NOW, 0)),
            "bad_signature"
        );
    }

    #[test]
    fn structure_errors_are_malformed() {
        let token = encode(br#"{"exp":1800000000}"#, KEY).unwrap();
        for bad in [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            format!("{token}.x"),
            format!("!!!.{}", token.split_once('.').unwrap().1),
        ] {
            assert_eq!(reason(decode(&bad, KEY, NOW, 0)), "malformed", "{bad}");
        }
    }

    #[test]
    fn encode_requires_an_object() {
        for claims in [&b"[]"[..], b"1", b"\"x\"", b"{", b"{} {}", b"\xff"] {
            assert!(matches!(
                encode(claims, KEY),
                Err(TokenError::Malformed { .. })
            ));
        }
    }
}
