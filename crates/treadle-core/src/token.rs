//! Keys, keyed hashes, random tokens and request ids.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngExt as _;

use crate::error::CryptoError;
use crate::hex::Hex;

/// The largest random token [`random_token`] makes, in bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// A 32-byte subkey of `secret` for `context`, with BLAKE3's `derive_key` mode.
///
/// `context` should be a hard-coded, unique string such as
/// `"treadle 2025-01 api-key hashing"`.
#[must_use]
pub fn derive_key(context: &str, secret: &[u8]) -> [u8; 32] {
    blake3::derive_key(context, secret)
}

/// Keyed BLAKE3 of `data`, as 64 lowercase hex characters.
///
/// # Errors
///
/// [`CryptoError::InvalidKeyLength`] unless `key` is 32 bytes.
pub fn keyed_hash(key: &[u8], data: &[u8]) -> Result<Hex<64>, CryptoError> {
    let key: &[u8; 32] = key.try_into().map_err(|_| CryptoError::InvalidKeyLength {
        expected: 32,
        actual: key.len(),
    })?;
    Ok(Hex::encode(blake3::keyed_hash(key, data).as_bytes()))
}

/// `nbytes` from the operating system's CSPRNG, URL-safe base64 without padding.
///
/// # Errors
///
/// [`CryptoError::TokenTooLong`] past [`MAX_TOKEN_BYTES`], and
/// [`CryptoError::EntropyUnavailable`] if the OS random source fails.
pub fn random_token(nbytes: usize) -> Result<String, CryptoError> {
    if nbytes > MAX_TOKEN_BYTES {
        return Err(CryptoError::TokenTooLong {
            requested: nbytes,
            max: MAX_TOKEN_BYTES,
        });
    }
    let mut buf = [0_u8; MAX_TOKEN_BYTES];
    let bytes = &mut buf[..nbytes];
    getrandom::fill(bytes).map_err(|_| CryptoError::EntropyUnavailable)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A fresh request id: 128 random bits as 32 lowercase hex characters.
///
/// Drawn from a thread-local ChaCha12 generator seeded (and periodically reseeded) from
/// the OS, so it costs a few nanoseconds and no system call.
///
/// # Panics
///
/// Only if the OS random source fails while seeding, as [`rand::rng`] does.
#[must_use]
pub fn request_id() -> Hex<32> {
    let bits: u128 = rand::rng().random();
    Hex::encode(&bits.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derive_key_matches_blake3_test_vector() {
        // From the BLAKE3 reference test vectors (input_len 0).
        let key = derive_key("BLAKE3 2019-12-27 16:29:52 test vectors context", b"");
        assert_eq!(
            Hex::<64>::encode(&key).as_str(),
            "2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d"
        );
    }

    #[test]
    fn keyed_hash_matches_blake3_test_vector() {
        let key = b"whats the Elvish word for friend";
        assert_eq!(
            keyed_hash(key, b"").unwrap().as_str(),
            "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"
        );
    }

    #[test]
    fn keyed_hash_needs_a_32_byte_key() {
        assert_eq!(
            keyed_hash(b"short", b"data"),
            Err(CryptoError::InvalidKeyLength {
                expected: 32,
                actual: 5
            })
        );
    }

    #[test]
    fn random_token_lengths() {
        assert_eq!(random_token(0).unwrap(), "");
        assert_eq!(random_token(32).unwrap().len(), 43);
        assert_eq!(random_token(MAX_TOKEN_BYTES).unwrap().len(), 1366);
        assert!(matches!(
            random_token(MAX_TOKEN_BYTES + 1),
            Err(CryptoError::TokenTooLong { .. })
        ));
        let token = random_token(48).unwrap();
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(random_token(16).unwrap(), random_token(16).unwrap());
    }

    #[test]
    fn request_ids_are_32_lowercase_hex() {
        let a = request_id();
        let b = request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    }
}
