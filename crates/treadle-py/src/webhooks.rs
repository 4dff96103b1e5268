//! `webhook_secret`, `webhook_sign` and `webhook_verify`: Standard Webhooks signatures.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use treadle_core::webhooks::{self, Secret};

fn secret(text: &str) -> PyResult<Secret> {
    Secret::parse(text).map_err(|err| PyValueError::new_err(err.to_string()))
}

/// A new endpoint secret, ``whsec_`` and base64 of 32 random bytes.
#[pyfunction]
pub(crate) fn webhook_secret() -> PyResult<String> {
    Secret::generate().map_err(|err| PyValueError::new_err(err.to_string()))
}

/// The ``webhook-signature`` header for ``body``: one ``v1,`` signature per secret (in the
/// order given: a rotation's overlap signs with both), separated by spaces. Raises
/// ``ValueError`` for a secret that is not ``whsec_`` and base64 of 24 to 64 bytes.
#[pyfunction]
pub(crate) fn webhook_sign(
    secrets: Vec<String>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> PyResult<String> {
    let keys = secrets
        .iter()
        .map(|text| secret(text))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(webhooks::sign_all(&keys, msg_id, timestamp, body))
}

/// Whether one of the ``v1`` signatures in ``header`` is ``secret_``'s for the message
/// (constant-time); the timestamp's age is the caller's to check.
#[pyfunction]
pub(crate) fn webhook_verify(
    secret_: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> PyResult<bool> {
    Ok(webhooks::verify(
        &secret(secret_)?,
        msg_id,
        timestamp,
        body,
        header,
    ))
}
