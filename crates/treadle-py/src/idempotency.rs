//! `fingerprint` and `canonical_json`: the idempotency request fingerprint.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::gil::detach_if;

/// Bodies larger than this are hashed with the GIL released.
const DETACH_AT: usize = 64 * 1024;

/// SHA-256 fingerprint of a request (64 lowercase hex chars) for ``Idempotency-Key``
/// checks: method, path, media type and body, with a JSON body (``content_type`` absent,
/// ``application/json`` or ``application/*+json``) in canonical form, so key order and
/// whitespace do not count but every value does. Any other body, or JSON the canonical
/// form does not cover, is hashed as it came; with ``canonical=False`` every body is.
/// Bodies over 64 KiB release the GIL.
#[pyfunction]
#[pyo3(signature = (method, path, body, content_type = None, canonical = true))]
pub(crate) fn fingerprint<'py>(
    py: Python<'py>,
    method: &str,
    path: &str,
    body: &[u8],
    content_type: Option<&str>,
    canonical: bool,
) -> Bound<'py, PyString> {
    let fingerprint = detach_if(py, body.len() > DETACH_AT, || {
        treadle_core::idempotency::fingerprint_as(method, path, body, content_type, canonical)
    });
    PyString::new(py, &fingerprint)
}

/// The canonical form of a JSON body (what ``json.dumps(json.loads(body),
/// sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` gives, as UTF-8), or
/// ``None`` when ``body`` is not JSON the canonical form covers.
#[pyfunction]
pub(crate) fn canonical_json<'py>(py: Python<'py>, body: &[u8]) -> Option<Bound<'py, PyBytes>> {
    let canonical = detach_if(py, body.len() > DETACH_AT, || {
        treadle_core::idempotency::canonical_json(body)
    });
    canonical.map(|c| PyBytes::new(py, &c))
}
