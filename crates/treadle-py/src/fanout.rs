//! `Hub`: the live-event fan-out hub, with its `Subscription`s.

mod subscription;

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};
use treadle_core::fanout::{Event, EventId, Filter};

pub(crate) use subscription::Subscription;

use crate::errors::Error;

/// What subscribers get for an event: the ``(event_id, payload)`` tuple, built once at
/// publish and shared by every subscriber.
type Item = Py<PyTuple>;

/// The callable a subscription's consumer installs to be woken.
type Waker = Py<PyAny>;

/// The live-event hub of one server process (see the stub for the whole contract).
#[pyclass(module = "treadle._core", frozen)]
pub(crate) struct Hub {
    inner: treadle_core::fanout::Hub<Item, Waker>,
}

#[pymethods]
impl Hub {
    #[new]
    #[pyo3(signature = (ring_size = 10_000, queue_size = 1_000, horizon = "0-0"))]
    fn new(ring_size: usize, queue_size: usize, horizon: &str) -> Result<Self, Error> {
        Ok(Self {
            inner: treadle_core::fanout::Hub::new(ring_size, queue_size, event_id(horizon)?)?,
        })
    }

    /// Record an event in its organization's replay ring and queue it for every matching
    /// subscriber; returns how many it was queued for. Calls the wakers of subscribers
    /// whose queue was empty.
    #[pyo3(signature = (event_id, org_id, topic, payload, job_id = None, run_id = None))]
    #[allow(clippy::too_many_arguments, reason = "mirrors the Python signature")]
    fn publish(
        &self,
        py: Python<'_>,
        event_id: Bound<'_, PyString>,
        org_id: &str,
        topic: &str,
        payload: Bound<'_, PyBytes>,
        job_id: Option<&str>,
        run_id: Option<&str>,
    ) -> PyResult<usize> {
        let id = self::event_id(event_id.to_str()?)?;
        let item = PyTuple::new(py, [event_id.into_any(), payload.into_any()])?.unbind();
        let published = self
            .inner
            .publish(Event::new(id, org_id, topic, job_id, run_id, item));
        for waker in &published.wakers {
            if let Err(err) = waker.call0(py) {
                err.write_unraisable(py, Some(waker.bind(py)));
            }
        }
        Ok(published.queued)
    }

    /// Subscribe to ``org_id``'s events that pass the filters, resuming after
    /// ``after_id`` when given.
    #[pyo3(signature = (org_id, topics = None, job_id = None, run_id = None, after_id = None))]
    fn subscribe(
        &self,
        org_id: &str,
        topics: Option<Vec<PyBackedStr>>,
        job_id: Option<&str>,
        run_id: Option<&str>,
        after_id: Option<&str>,
    ) -> Result<Subscription, Error> {
        let filter = Filter::new(topics, job_id, run_id)?;
        let after = after_id.map(event_id).transpose()?;
        Ok(Subscription::new(
            self.inner.subscribe(org_id, filter, after),
        ))
    }

    /// ``(events, gap)``: the ring's events of ``org_id`` after ``after_id`` that pass
    /// the filters, and whether history after ``after_id`` was lost.
    #[pyo3(signature = (org_id, after_id, topics = None, job_id = None, run_id = None))]
    fn replay(
        &self,
        py: Python<'_>,
        org_id: &str,
        after_id: &str,
        topics: Option<Vec<PyBackedStr>>,
        job_id: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<(Vec<Item>, bool), Error> {
        let filter = Filter::new(topics, job_id, run_id)?;
        let replay = self.inner.replay(org_id, event_id(after_id)?, &filter);
        let items = replay
            .events
            .iter()
            .map(|e| e.payload().clone_ref(py))
            .collect();
        Ok((items, replay.gap))
    }

    /// Counts: ``orgs``, ``subscribers``, ``ring_events``, ``published``, ``queued``,
    /// ``overflowed``, ``stale``.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let dict = PyDict::new(py);
        dict.set_item("orgs", s.orgs)?;
        dict.set_item("subscribers", s.subscribers)?;
        dict.set_item("ring_events", s.ring_events)?;
        dict.set_item("published", s.published)?;
        dict.set_item("queued", s.queued)?;
        dict.set_item("overflowed", s.overflowed)?;
        dict.set_item("stale", s.stale)?;
        Ok(dict)
    }

    /// The number of live subscriptions.
    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

fn event_id(text: &str) -> Result<EventId, Error> {
    Ok(EventId::parse(text)?)
}
