//! Property tests: JWTs round-trip, and no single-byte change survives verification.

use proptest::prelude::*;
use treadle_core::jwt;

const NOW: i64 = 1_700_000_000;

fn claims() -> impl Strategy<Value = Vec<u8>> {
    (
        NOW + 1..NOW + 1_000_000,
        proptest::option::of(NOW - 1_000_000..=NOW),
        "[a-zA-Z0-9 _\\-\u{e9}\u{1f600}]{0,40}",
        proptest::collection::vec(any::<u16>(), 0..6),
    )
        .prop_map(|(exp, nbf, sub, scopes)| {
            let mut claims = serde_json::json!({ "exp": exp, "sub": sub, "scopes": scopes });
            if let Some(nbf) = nbf {
                claims["nbf"] = nbf.into();
            }
            serde_json::to_vec(&claims).unwrap()
        })
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips(
        claims in claims(),
        key in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let token = jwt::encode(&claims, &key).unwrap();
        prop_assert_eq!(jwt::decode(&token, &key, NOW, 0).unwrap(), claims);
    }

    #[test]
    fn any_single_byte_tamper_fails(
        claims in claims(),
        key in proptest::collection::vec(any::<u8>(), 1..64),
        index in any::<prop::sample::Index>(),
        replacement in proptest::char::range('!', '~'),
    ) {
        let token = jwt::encode(&claims, &key).unwrap();
        let at = index.index(token.len());
        prop_assume!(token.as_bytes()[at] != replacement as u8);
        let mut tampered = token.into_bytes();
        tampered[at] = replacement as u8;
        let tampered = String::from_utf8(tampered).unwrap();
        prop_assert!(jwt::decode(&tampered, &key, NOW, 0).is_err(), "{}", tampered);
    }

    #[test]
    fn another_key_fails(
        claims in claims(),
        key in proptest::collection::vec(any::<u8>(), 1..64),
        other in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        // HMAC pads short keys with zeros, so `k` and `k\0` are the same key.
        let trim = |k: &[u8]| k.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        prop_assume!(key[..trim(&key)] != other[..trim(&other)]);
        let token = jwt::encode(&claims, &key).unwrap();
        let err = jwt::decode(&token, &other, NOW, 0).unwrap_err();
        prop_assert_eq!(err.reason(), "bad_signature");
    }
}
