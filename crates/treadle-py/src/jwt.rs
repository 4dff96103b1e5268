//! `jwt_encode` and `jwt_decode`: HS256 only.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::Error;

/// HS256-sign ``claims`` (a JSON object, UTF-8 bytes) and return the compact JWT.
#[pyfunction]
pub(crate) fn jwt_encode(claims: &[u8], key: &[u8]) -> Result<String, Error> {
    Ok(treadle_core::jwt::encode(claims, key)?)
}

/// Verify an HS256 JWT (constant-time MAC check) and return its claims as JSON bytes.
///
/// ``exp`` (required) must be > now - leeway; ``nbf`` (optional) must be <= now + leeway.
/// Raises ``TokenError``.
#[pyfunction]
#[pyo3(signature = (token, key, now, leeway = 0))]
pub(crate) fn jwt_decode<'py>(
    py: Python<'py>,
    token: &str,
    key: &[u8],
    now: i64,
    leeway: u64,
) -> Result<Bound<'py, PyBytes>, Error> {
    let claims = treadle_core::jwt::decode(token, key, now, leeway)?;
    Ok(PyBytes::new(py, &claims))
}
