//! PyO3 bindings for `treadle-core`, built by maturin as `treadle._core`.
//!
//! Only wiring lives here: each binding module wraps one concern of the core crate, and
//! `errors` maps the core's errors onto the Python exceptions rooted at `CoreError`.
//! The Python API is pinned by `python/treadle/_core.pyi`, checked with
//! `python -m mypy.stubtest treadle._core`.

mod api_keys;
mod authz;
mod digest;
mod errors;
mod fanout;
mod gil;
mod idempotency;
mod ingest;
mod jwt;
mod key_cache;
mod keys;
mod ratelimit;
mod router;
mod tokens;
mod webhooks;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    m.add_class::<router::Router>()?;
    m.add_function(wrap_pyfunction!(jwt::jwt_encode, m)?)?;
    m.add_function(wrap_pyfunction!(jwt::jwt_decode, m)?)?;
    m.add_function(wrap_pyfunction!(keys::derive_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::keyed_hash, m)?)?;
    m.add_function(wrap_pyfunction!(keys::random_token, m)?)?;
    m.add_function(wrap_pyfunction!(keys::request_id, m)?)?;
    m.add_function(wrap_pyfunction!(keys::constant_time_eq, m)?)?;
    m.add_class::<authz::Policy>()?;
    m.add_class::<authz::Snapshot>()?;
    m.add_class::<authz::Decision>()?;
    m.add_class::<authz::Authz>()?;
    m.add_function(wrap_pyfunction!(api_keys::api_key_generate, m)?)?;
    m.add_function(wrap_pyfunction!(api_keys::api_key_check, m)?)?;
    m.add_class::<key_cache::KeyCache>()?;
    m.add_class::<ratelimit::RateLimiter>()?;
    m.add("GCRA_LUA", treadle_core::ratelimit::GCRA_LUA)?;
    m.add_function(wrap_pyfunction!(idempotency::fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(idempotency::canonical_json, m)?)?;
    m.add_class::<fanout::Hub>()?;
    m.add_class::<fanout::Subscription>()?;
    ingest::register(m)?;
    tokens::register(m)?;
    m.add_function(wrap_pyfunction!(webhooks::webhook_secret, m)?)?;
    m.add_function(wrap_pyfunction!(webhooks::webhook_sign, m)?)?;
    m.add_function(wrap_pyfunction!(webhooks::webhook_verify, m)?)?;
    m.add_class::<digest::ContentDigest>()?;
    Ok(())
}
