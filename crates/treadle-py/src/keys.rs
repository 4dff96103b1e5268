//! Key derivation, keyed hashing, random tokens, request ids, constant-time compare.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::Error;

/// BLAKE3 ``derive_key`` mode: a 32-byte subkey of ``secret`` for ``context``.
#[pyfunction]
pub(crate) fn derive_key<'py>(
    py: Python<'py>,
    context: &str,
    secret: &[u8],
) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &treadle_core::derive_key(context, secret))
}

/// Keyed BLAKE3 of ``data`` (``key`` is 32 bytes), hex-encoded (64 chars).
#[pyfunction]
pub(crate) fn keyed_hash<'py>(
    py: Python<'py>,
    key: &[u8],
    data: &[u8],
) -> Result<Bound<'py, PyString>, Error> {
    Ok(PyString::new(py, &treadle_core::keyed_hash(key, data)?))
}

/// ``nbytes`` from the OS CSPRNG, URL-safe base64 without padding.
#[pyfunction]
#[pyo3(signature = (nbytes = 32))]
pub(crate) fn random_token(nbytes: usize) -> Result<String, Error> {
    Ok(treadle_core::random_token(nbytes)?)
}

/// A fresh request id: 32 lowercase hex chars (128 random bits).
#[pyfunction]
pub(crate) fn request_id(py: Python<'_>) -> Bound<'_, PyString> {
    PyString::new(py, &treadle_core::request_id())
}

/// Compare two byte strings in time independent of where they differ.
#[pyfunction]
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    treadle_core::constant_time_eq(a, b)
}
