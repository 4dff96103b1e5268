//! The one helper that releases the GIL around slow calls.

use pyo3::prelude::*;

/// Runs `work` with the GIL released when `heavy`, so other Python threads run
/// meanwhile; small jobs keep the GIL, as detaching costs more than they do.
pub(crate) fn detach_if<T, F>(py: Python<'_>, heavy: bool, work: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    if heavy {
        py.detach(work)
    } else {
        work()
    }
}
