//! `parse_telemetry` and `IngestError`: an edge agent's batch checked and turned into
//! binary COPY rows.
//!
//! `IngestError` is defined here rather than in `errors`: it derives from `ValueError`
//! (a refused batch is bad input, as the telemetry route treats it) instead of
//! `CoreError`, and it carries `code` and `message` for the route's error body.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use treadle_core::ingest::{self, Encoding, Format, Options};

use crate::gil::detach_if;

create_exception!(
    treadle._core,
    IngestError,
    PyValueError,
    "A telemetry batch refused as a whole. ``code`` is ``too_large``, ``bad_encoding``, \
     ``too_many_events`` or ``not_json``; ``message`` says what to fix."
);

/// Adds `IngestError` and `parse_telemetry` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("IngestError", m.py().get_type::<IngestError>())?;
    m.add_function(wrap_pyfunction!(parse_telemetry, m)?)
}

/// What `parse_telemetry` returns: accepted, `(index, code, message)` rejections, COPY data.
type Outcome<'py> = (
    usize,
    Vec<(usize, &'static str, String)>,
    Bound<'py, PyBytes>,
);

/// Identity bodies under this are parsed with the GIL held: detaching costs more.
const DETACH_AT: usize = 16 * 1024;

/// Checks a telemetry batch (a JSON array of events, or NDJSON) and returns
/// ``(accepted, rejected, copy_data)``: ``rejected`` lists ``(index, code, message)`` in
/// batch order, ``copy_data`` is a binary COPY stream with one row per accepted event.
/// Raises ``IngestError`` when the batch as a whole is refused. Decompression, parsing
/// and encoding run with the GIL released (except for small uncompressed bodies).
#[pyfunction]
#[pyo3(signature = (
    body,
    *,
    ndjson = false,
    encoding = "identity",
    max_bytes = 8_388_608,
    max_events = 10_000,
    max_attributes = 64,
    max_key_bytes = 128,
    max_value_bytes = 4096,
    allowed_types = None,
    organization_id,
    agent_id,
    batch_id,
    received_at_us,
    max_age_seconds = 604_800,
    max_future_seconds = 300,
))]
#[allow(clippy::too_many_arguments, reason = "mirrors the Python signature")]
pub(crate) fn parse_telemetry<'py>(
    py: Python<'py>,
    body: &[u8],
    ndjson: bool,
    encoding: &str,
    max_bytes: usize,
    max_events: usize,
    max_attributes: usize,
    max_key_bytes: usize,
    max_value_bytes: usize,
    allowed_types: Option<Vec<String>>,
    organization_id: &[u8],
    agent_id: &[u8],
    batch_id: &[u8],
    received_at_us: i64,
    max_age_seconds: u64,
    max_future_seconds: u64,
) -> PyResult<Outcome<'py>> {
    let encoding = encoding
        .parse::<Encoding>()
        .map_err(|err| ingest_error(py, &err))?;
    let options = Options {
        format: if ndjson { Format::Ndjson } else { Format::Json },
        encoding,
        max_bytes,
        max_events,
        max_attributes,
        max_key_bytes,
        max_value_bytes,
        allowed_types: allowed_types.as_deref(),
        organization_id: uuid("organization_id", organization_id)?,
        agent_id: uuid("agent_id", agent_id)?,
        batch_id: uuid("batch_id", batch_id)?,
        received_at_us,
        max_age_seconds,
        max_future_seconds,
    };
    let heavy = body.len() >= DETACH_AT || encoding != Encoding::Identity;
    let parsed = detach_if(py, heavy, || ingest::parse(body, &options))
        .map_err(|err| ingest_error(py, &err))?;
    let rejected = parsed
        .rejected
        .iter()
        .map(|r| (r.index, r.reason.code(), r.reason.to_string()))
        .collect();
    Ok((
        parsed.accepted,
        rejected,
        PyBytes::new(py, &parsed.copy_data),
    ))
}

fn uuid(name: &str, bytes: &[u8]) -> PyResult<[u8; 16]> {
    bytes
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{name} must be 16 bytes (a UUID's .bytes)")))
}

fn ingest_error(py: Python<'_>, err: &ingest::IngestError) -> PyErr {
    let message = err.to_string();
    let exc = IngestError::new_err(message.clone());
    let value = exc.value(py);
    let set = value
        .setattr(intern!(py, "code"), err.code())
        .and_then(|()| value.setattr(intern!(py, "message"), message));
    match set {
        Ok(()) => exc,
        Err(setattr_failed) => setattr_failed,
    }
}
