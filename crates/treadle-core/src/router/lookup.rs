//! What [`Router::lookup`](super::Router::lookup) returns.

use std::fmt;

use super::{Route, MAX_PARAMS};

/// The outcome of a lookup.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "Match carries the captured parameters inline so a lookup never allocates"
)]
pub enum Lookup<'r, 'p, T> {
    /// A route matched the method and the path.
    Match(Match<'r, 'p, T>),
    /// The path exists, but not for this method.
    MethodNotAllowed(Allowed<'r, T>),
    /// No template matches the path.
    NotFound,
}

/// A matched route: its value and the parameters captured from the path.
#[derive(Debug)]
pub struct Match<'r, 'p, T> {
    /// The value given to [`Router::add`](super::Router::add).
    pub value: &'r T,
    /// The parameters, in template order.
    pub params: Params<'r, 'p>,
}

/// Parameters captured by a match: names borrowed from the router, values from the path.
#[derive(Clone, Copy)]
pub struct Params<'r, 'p> {
    names: &'r [Box<str>],
    values: [&'p str; MAX_PARAMS],
}

impl<'r, 'p> Params<'r, 'p> {
    /// `values` holds at least `names.len()` captures.
    pub(super) fn new(names: &'r [Box<str>], values: [&'p str; MAX_PARAMS]) -> Self {
        Self { names, values }
    }

    /// The number of parameters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the template had no parameters.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The value captured for `name`, if the template has such a parameter.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The values in template order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &'p str> + '_ {
        self.values[..self.names.len()].iter().copied()
    }

    /// `(name, value)` pairs in template order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'r str, &'p str)> + '_ {
        self.names
            .iter()
            .zip(self.values)
            .map(|(name, value)| (&**name, value))
    }
}

impl fmt::Debug for Params<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The methods registered for a path, sorted.
pub struct Allowed<'r, T> {
    routes: &'r [Route<T>],
}

impl<'r, T> Allowed<'r, T> {
    pub(super) fn new(routes: &'r [Route<T>]) -> Self {
        Self { routes }
    }

    /// The number of methods.
    #[must_use]
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Always false: a path only exists if some method is registered for it.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The methods, sorted in byte order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'r str> + 'r {
        self.routes.iter().map(|route| &*route.method)
    }
}

impl<T> fmt::Debug for Allowed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
