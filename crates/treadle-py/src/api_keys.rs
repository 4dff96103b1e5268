//! `api_key_generate` and `api_key_check`: the API key format.

use pyo3::prelude::*;
use treadle_core::keys::{self, Environment};

use crate::errors::Error;

/// A new API key for ``environment`` (``"live"`` or ``"test"``):
/// ``(raw_key, display_prefix)``, e.g. ``("trd_live_<32 base62><6 checksum>",
/// "trd_live_AbCd1234")``. Show the raw key once; store its keyed hash and the prefix.
#[pyfunction]
pub(crate) fn api_key_generate(environment: &str) -> Result<(String, String), Error> {
    let key = keys::generate(environment.parse::<Environment>()?)?;
    Ok((key.raw, key.display_prefix))
}

/// Whether ``raw`` is a well-formed API key (prefix, length, alphabet, checksum),
/// decided without any I/O. A well-formed key may still be unknown or revoked.
#[pyfunction]
pub(crate) fn api_key_check(raw: &str) -> bool {
    keys::check(raw)
}
