//! `Subscription`: one subscriber's end of the `Hub`.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::{Item, Waker};

/// One subscriber: a bounded queue of ``(event_id, payload)`` pairs (see the stub for
/// the whole contract).
#[pyclass(module = "treadle._core", frozen)]
pub(crate) struct Subscription {
    inner: treadle_core::fanout::Subscription<Item, Waker>,
}

impl Subscription {
    pub(super) fn new(inner: treadle_core::fanout::Subscription<Item, Waker>) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl Subscription {
    /// Up to ``max`` queued ``(event_id, payload)`` pairs, oldest first, without
    /// blocking.
    #[pyo3(signature = (max = 256))]
    fn drain(&self, py: Python<'_>, max: usize) -> Vec<Item> {
        self.inner
            .drain(max)
            .iter()
            .map(|e| e.payload().clone_ref(py))
            .collect()
    }

    /// Install the callable the hub calls when the queue goes from empty to non-empty
    /// (``None`` removes it). Called at once when events are already waiting.
    fn set_waker(&self, py: Python<'_>, waker: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        if let Some(waker) = &waker {
            if !waker.is_callable() {
                return Err(PyTypeError::new_err("waker must be callable or None"));
            }
        }
        if let Some(now) = self.inner.set_waker(waker.map(Bound::unbind)) {
            now.call0(py)?;
        }
        Ok(())
    }

    /// Stop: the hub forgets the subscription, queued events are dropped, the waker is
    /// released. Closing twice does nothing.
    fn close(&self) {
        self.inner.close();
    }

    /// Whether the queue filled up; what was queued can still be drained.
    #[getter]
    fn overflowed(&self) -> bool {
        self.inner.overflowed()
    }

    /// Whether ``close`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether history after ``after_id`` was lost before the subscription was made.
    #[getter]
    fn gap(&self) -> bool {
        self.inner.gap()
    }

    /// The organization subscribed to.
    #[getter]
    fn org_id(&self) -> &str {
        self.inner.org_id()
    }

    /// The number of events waiting.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type, exc_value, traceback))]
    fn __exit__(
        &self,
        exc_type: Option<Bound<'_, PyAny>>,
        exc_value: Option<Bound<'_, PyAny>>,
        traceback: Option<Bound<'_, PyAny>>,
    ) {
        drop((exc_type, exc_value, traceback));
        self.inner.close();
    }
}
