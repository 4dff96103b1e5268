//! `estimate_tokens` and `estimate_chat_tokens`: prompt token estimates for the
//! providers gateway (cost estimates and budget checks before a model is called).

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use treadle_core::tokens;

use crate::gil::detach_if;

/// Texts under this many bytes are counted with the GIL held: detaching costs more.
const DETACH_AT: usize = 64 * 1024;

/// Adds `estimate_tokens` and `estimate_chat_tokens` to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(estimate_tokens, m)?)?;
    m.add_function(wrap_pyfunction!(estimate_chat_tokens, m)?)
}

/// The estimated number of tokens in ``text`` (a heuristic after byte-pair encoders,
/// erring high; see ``treadle_core::tokens``). The GIL is released for large texts.
#[pyfunction]
pub(crate) fn estimate_tokens(py: Python<'_>, text: &str) -> u64 {
    detach_if(py, text.len() >= DETACH_AT, || tokens::estimate(text))
}

/// The estimated prompt tokens of a chat request whose messages hold ``contents``: each
/// one's tokens, 4 per message for its framing and 3 for the reply's priming. The GIL is
/// released when the contents are large.
#[pyfunction]
pub(crate) fn estimate_chat_tokens(py: Python<'_>, contents: Vec<PyBackedStr>) -> u64 {
    let size: usize = contents.iter().map(|text| text.len()).sum();
    detach_if(py, size >= DETACH_AT, || {
        tokens::estimate_chat(contents.iter().map(|text| &**text))
    })
}
