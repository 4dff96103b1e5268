//! `Router`: the route table's matcher.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyString, PyTuple};
use treadle_core::router::{param_names, Lookup};

use crate::errors::Error;

/// Path router for the route table.
///
/// Templates use ``{name}`` segments (a whole segment each, e.g.
/// ``/v1/users/{id}/unlock``). Static segments win over parameters.
#[pyclass(module = "treadle._core")]
pub(crate) struct Router {
    inner: treadle_core::Router<Entry>,
}

/// What a match hands back, kept as Python objects so a lookup only bumps refcounts
/// for the id and the parameter names.
struct Entry {
    route_id: Py<PyInt>,
    /// Interned, in template order.
    names: Box<[Py<PyString>]>,
}

#[pymethods]
impl Router {
    #[new]
    fn new() -> Self {
        Self {
            inner: treadle_core::Router::new(),
        }
    }

    /// Register ``route_id`` for ``method`` + ``template``.
    /// Raises ``RouteError`` for a malformed template or a duplicate method+template.
    fn add(
        &mut self,
        method: &str,
        template: &str,
        route_id: Bound<'_, PyInt>,
    ) -> Result<(), Error> {
        let py = route_id.py();
        let names = param_names(template)?
            .into_iter()
            .map(|name| PyString::intern(py, name).unbind())
            .collect();
        let entry = Entry {
            route_id: route_id.unbind(),
            names,
        };
        Ok(self.inner.add(method, template, entry)?)
    }

    /// Match a request.
    ///
    /// - matched: ``(route_id, params)``
    /// - the path exists but not for this method: the sorted list of allowed methods
    /// - no such path: ``[]``
    fn lookup<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        path: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.lookup(method, path) {
            Lookup::Match(m) => {
                let params = PyDict::new(py);
                for (name, value) in m.value.names.iter().zip(m.params.values()) {
                    params.set_item(name.bind(py), PyString::new(py, value))?;
                }
                let route_id = m.value.route_id.bind(py).as_any();
                Ok(PyTuple::new(py, [route_id, params.as_any()])?.into_any())
            }
            Lookup::MethodNotAllowed(allowed) => Ok(PyList::new(py, allowed.iter())?.into_any()),
            Lookup::NotFound => Ok(PyList::empty(py).into_any()),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}
