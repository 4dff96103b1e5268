//! `KeyCache`: the API key verification cache.

use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use treadle_core::keys::{Cached, VerifyCache};

/// Verification cache keyed by an API key's keyed hash, holding any Python object (the
/// key's record) for ``ttl_seconds``, or a negative entry ("no such key") for
/// ``negative_ttl_seconds``. Positive entries (at most ``capacity``) and negative ones
/// (at most ``negative_capacity``, by default ``capacity``) are bounded apart, so a flood
/// of unknown keys cannot evict valid ones; at its bound, a side drops its expired entries
/// first, then about an eighth of the rest.
///
/// ``get`` returns ``(True, record)`` for a positive hit, ``(True, None)`` for a
/// negative hit and ``(False, None)`` for a miss. To keep a fill from racing an
/// invalidation, read ``generation`` before loading the record and pass it to
/// ``put``/``put_missing``: the put is dropped if anything was invalidated meanwhile.
#[pyclass(module = "treadle._core", frozen)]
pub(crate) struct KeyCache {
    inner: VerifyCache<Py<PyAny>>,
}

#[pymethods]
impl KeyCache {
    #[new]
    #[pyo3(signature = (ttl_seconds, negative_ttl_seconds, capacity, negative_capacity = None))]
    fn new(
        ttl_seconds: f64,
        negative_ttl_seconds: f64,
        capacity: usize,
        negative_capacity: Option<usize>,
    ) -> PyResult<Self> {
        Ok(Self {
            inner: VerifyCache::with_negative_capacity(
                duration(ttl_seconds, "ttl_seconds")?,
                duration(negative_ttl_seconds, "negative_ttl_seconds")?,
                capacity,
                negative_capacity.unwrap_or(capacity),
            ),
        })
    }

    /// ``(hit, record)``: ``(True, record)``, ``(True, None)`` for a cached unknown key,
    /// ``(False, None)`` for a miss.
    fn get(&self, py: Python<'_>, key_hash: &str) -> (bool, Option<Py<PyAny>>) {
        match self
            .inner
            .get_with(key_hash, Instant::now(), |record| record.clone_ref(py))
        {
            Cached::Found(record) => (true, Some(record)),
            Cached::Missing => (true, None),
            Cached::Miss => (false, None),
        }
    }

    /// Cache ``record`` (not ``None``; use ``put_missing``) for ``key_hash``. Returns
    /// whether it was stored (not when ``generation`` is stale or capacity is 0).
    #[pyo3(signature = (key_hash, record, generation = None))]
    fn put(
        &self,
        key_hash: &str,
        record: Bound<'_, PyAny>,
        generation: Option<u64>,
    ) -> PyResult<bool> {
        if record.is_none() {
            return Err(PyValueError::new_err(
                "record must not be None: use put_missing for unknown keys",
            ));
        }
        Ok(self
            .inner
            .put(key_hash, record.unbind(), Instant::now(), generation))
    }

    /// Remember that no key has ``key_hash``. Returns whether it was stored.
    #[pyo3(signature = (key_hash, generation = None))]
    fn put_missing(&self, key_hash: &str, generation: Option<u64>) -> bool {
        self.inner.put_missing(key_hash, Instant::now(), generation)
    }

    /// Forget ``key_hash`` and bump ``generation``. Returns whether it was cached.
    fn invalidate(&self, key_hash: &str) -> bool {
        self.inner.invalidate(key_hash)
    }

    /// Forget everything and bump ``generation``.
    fn clear(&self) {
        self.inner.clear();
    }

    /// Bumped by every invalidation; pass the value read before a load to ``put``.
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// How many negative entries are held (expired ones not yet purged included).
    #[getter]
    fn negative_len(&self) -> usize {
        self.inner.negative_len()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

fn duration(seconds: f64, name: &str) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| PyValueError::new_err(format!("{name} must be a finite number >= 0")))
}
