//! [`fingerprint`]: SHA-256 over method, path, media type and canonical body.

use sha2::{Digest, Sha256};

use super::canonical::canonical_json;
use crate::Hex;

/// A request fingerprint: 64 lowercase hex characters.
pub type Fingerprint = Hex<64>;

/// The first bytes hashed into every fingerprint; a new canonical form gets a new one.
pub const DOMAIN: &[u8] = b"treadle/idempotency/v1\n";

/// The fingerprint of a request: SHA-256 over [`DOMAIN`], then `method`, `path` and the
/// [`media_type`] of `content_type` (each as a big-endian `u64` length and its UTF-8
/// bytes), then `c` and the [canonical form](canonical_json) of a JSON body, or `r` and
/// the body as it came.
///
/// `method` and `path` are hashed exactly as given: pass the route's path with the query
/// string when the query is part of the request.
///
/// ```
/// use treadle_core::idempotency::fingerprint;
///
/// let retry = fingerprint("POST", "/v1/jobs", b"{ \"a\": 1 }", Some("application/json; charset=utf-8"));
/// assert_eq!(retry, fingerprint("POST", "/v1/jobs", b"{\"a\":1}", None));
/// assert_ne!(retry, fingerprint("POST", "/v1/jobs", b"{\"a\":1}", Some("application/yaml")));
/// assert_eq!(retry.len(), 64);
/// ```
#[must_use]
pub fn fingerprint(
    method: &str,
    path: &str,
    body: &[u8],
    content_type: Option<&str>,
) -> Fingerprint {
    fingerprint_as(method, path, body, content_type, true)
}

/// [`fingerprint`], with the body hashed as it came whatever its media type when
/// `canonical` is false: for bodies whose bytes are the request (a telemetry batch, where
/// a retry resends the same bytes and a canonical form would cost a parse of the whole
/// batch).
///
/// ```
/// use treadle_core::idempotency::{fingerprint, fingerprint_as};
///
/// let body = b"[{\"a\": 1}]";
/// assert_eq!(fingerprint_as("POST", "/x", body, None, true), fingerprint("POST", "/x", body, None));
/// assert_ne!(fingerprint_as("POST", "/x", body, None, false), fingerprint("POST", "/x", body, None));
/// ```
#[must_use]
pub fn fingerprint_as(
    method: &str,
    path: &str,
    body: &[u8],
    content_type: Option<&str>,
    canonical: bool,
) -> Fingerprint {
    let media = media_type(content_type);
    let canonical = (canonical && is_json(&media))
        .then(|| canonical_json(body))
        .flatten();
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    for part in [method, path, &media] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    match &canonical {
        Some(canonical) => {
            hasher.update(b"c");
            hasher.update(canonical);
        }
        None => {
            hasher.update(b"r");
            hasher.update(body);
        }
    }
    Hex::encode(&hasher.finalize())
}

/// The media type of a `Content-Type` value: the part before any `;`, trimmed of spaces
/// and tabs and lowercased (ASCII only); `application/json` when absent or empty.
///
/// ```
/// use treadle_core::idempotency::media_type;
///
/// assert_eq!(media_type(Some(" Application/JSON ; charset=UTF-8")), "application/json");
/// assert_eq!(media_type(None), "application/json");
/// assert_eq!(media_type(Some("application/yaml")), "application/yaml");
/// ```
#[must_use]
pub fn media_type(content_type: Option<&str>) -> String {
    let media = content_type
        .and_then(|value| value.split(';').next())
        .unwrap_or_default()
        .trim_matches([' ', '\t'])
        .to_ascii_lowercase();
    if media.is_empty() {
        String::from("application/json")
    } else {
        media
    }
}

/// Whether bodies of `media` (as [`media_type`] gives it) are canonicalised as JSON.
fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/json"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("application/yaml"));
    }

    #[test]
    fn raw_and_canonical_bodies_never_collide() {
        // `{"a":1}` canonical under JSON vs. the same bytes raw under another type.
        let json = fingerprint("POST", "/x", b"{\"a\":1}", None);
        assert_ne!(
            json,
            fingerprint("POST", "/x", b"{\"a\":1}", Some("text/plain"))
        );
        // Unparseable JSON is hashed raw and still differs from every canonical body.
        let broken = fingerprint("POST", "/x", b"{\"a\":1", None);
        assert_ne!(broken, json);
        assert_eq!(
            broken,
            fingerprint("POST", "/x", b"{\"a\":1", Some("application/json"))
        );
    }

    #[test]
    fn method_path_and_body_all_count() {
        let base = fingerprint("POST", "/v1/jobs", b"", None);
        assert_ne!(base, fingerprint("PUT", "/v1/jobs", b"", None));
        assert_ne!(base, fingerprint("POST", "/v1/job", b"", None));
        assert_ne!(base, fingerprint("POST", "/v1/jobs", b"null", None));
        // Length prefixes keep the boundary between method and path.
        assert_ne!(
            fingerprint("POS", "T/v1", b"", None),
            fingerprint("POST", "/v1", b"", None)
        );
    }
}
