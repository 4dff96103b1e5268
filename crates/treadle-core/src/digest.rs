//! Streaming content digests: BLAKE3 over a body fed in chunks, named `blake3:<hex>`.
//!
//! ```
//! use treadle_core::digest::ContentDigest;
//!
//! let mut digest = ContentDigest::new();
//! digest.update(b"hello ");
//! digest.update(b"world");
//! assert_eq!(digest.size(), 11);
//! let mut whole = ContentDigest::new();
//! whole.update(b"hello world");
//! assert_eq!(digest.finish(), whole.finish());
//! assert!(digest.finish().starts_with("blake3:"));
//! assert_eq!(digest.finish().len(), ContentDigest::TEXT_LEN);
//! ```
//!
//! The digest names content: two bodies with the same digest are the same bytes, so a
//! store keyed by it holds each content once. Its hex is lowercase and fixed-length,
//! fit to be a file name or an object key as it is.

use crate::hex::Hex;

/// The digest algorithm's name, and the prefix of every digest's text form.
pub const PREFIX: &str = "blake3:";

/// BLAKE3 of everything passed to [`update`](Self::update) so far, and its length.
#[derive(Clone, Default)]
pub struct ContentDigest {
    hasher: blake3::Hasher,
    size: u64,
}

impl ContentDigest {
    /// Characters of [`finish`](Self::finish)'s text: the prefix and 64 hex digits.
    pub const TEXT_LEN: usize = PREFIX.len() + 64;

    /// A digest of nothing yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of content.
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
    }

    /// Bytes fed so far.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of what was fed so far, as `blake3:` and 64 lowercase hex digits;
    /// more chunks may still follow.
    #[must_use]
    pub fn finish(&self) -> String {
        let hash = self.hasher.finalize();
        format!("{PREFIX}{}", Hex::<64>::encode(hash.as_bytes()).as_str())
    }
}

/// Whether `text` is a digest's text form: `blake3:` and 64 lowercase hex digits.
#[must_use]
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix(PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_vector_of_the_empty_input() {
        assert_eq!(
            ContentDigest::new().finish(),
            "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn chunking_does_not_change_the_digest() {
        let data: Vec<u8> = (0..100_000_u32).map(|i| (i % 251) as u8).collect();
        let mut whole = ContentDigest::new();
        whole.update(&data);
        for size in [1, 7, 1024, 65_536] {
            let mut parts = ContentDigest::new();
            for chunk in data.chunks(size) {
                parts.update(chunk);
            }
            assert_eq!(parts.finish(), whole.finish());
            assert_eq!(parts.size(), data.len() as u64);
        }
    }

    #[test]
    fn recognises_only_the_text_form() {
        let good = ContentDigest::new().finish();
        assert!(is_digest(&good));
        assert!(!is_digest(&good.to_uppercase()));
        assert!(!is_digest(&good[..good.len() - 1]));
        assert!(!is_digest(&format!("{good}0")));
        assert!(!is_digest(&good.replace("blake3:", "sha256:")));
        assert!(!is_digest("blake3:../../../../etc/passwd"));
    }
}
