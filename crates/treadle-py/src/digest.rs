//! `ContentDigest`: BLAKE3 of a body fed chunk by chunk (uploads hash while they stream).

use pyo3::prelude::*;

use crate::gil::detach_if;

/// Chunks at least this long are hashed with the GIL released.
const DETACH_AT: usize = 64 * 1024;

/// BLAKE3 of the chunks fed so far, as ``blake3:<64 hex>``.
#[pyclass(module = "treadle._core")]
pub(crate) struct ContentDigest {
    inner: treadle_core::digest::ContentDigest,
}

#[pymethods]
impl ContentDigest {
    #[new]
    fn new() -> Self {
        Self {
            inner: treadle_core::digest::ContentDigest::new(),
        }
    }

    /// Feed the next chunk (``bytes``, which cannot change while the GIL is released:
    /// chunks of 64 KiB or more are hashed without it).
    fn update(&mut self, py: Python<'_>, chunk: &[u8]) {
        let inner = &mut self.inner;
        detach_if(py, chunk.len() >= DETACH_AT, || inner.update(chunk));
    }

    /// Bytes fed so far.
    #[getter]
    fn size(&self) -> u64 {
        self.inner.size()
    }

    /// ``blake3:`` and 64 lowercase hex digits, of what was fed so far.
    fn finish(&self) -> String {
        self.inner.finish()
    }
}
