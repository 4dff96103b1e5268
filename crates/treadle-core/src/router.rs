//! Path routing over a segment trie.
//!
//! A template such as `/v1/users/{id}/unlock` is split on `/`; each piece is either
//! static text or a `{name}` parameter that matches one whole non-empty segment. The
//! trie has one node per template prefix. At each node a static child is tried before
//! the parameter child; if the static branch leads nowhere, the lookup backtracks and
//! tries the parameter. The method is checked only at the node the path resolves to,
//! so `GET /users/me` plus `DELETE /users/{id}` answers `DELETE /users/me` with
//! "method not allowed", never with the parameter route.
//!
//! Paths are compared byte for byte as given: no percent-decoding, no case folding, and
//! a trailing `/` is a different path (`/users/` is not `/users`).

mod lookup;
mod template;

pub use lookup::{Allowed, Lookup, Match, Params};

use std::cmp::Ordering;

use crate::error::RouteError;
use template::Segment;

/// The most parameters one template may have.
pub const MAX_PARAMS: usize = 8;

/// Maps `(method, path template)` to values of type `T`.
///
/// ```
/// use treadle_core::router::{Lookup, Router};
///
/// let mut router = Router::new();
/// router.add("GET", "/v1/users/{id}", 7)?;
/// let Lookup::Match(m) = router.lookup("GET", "/v1/users/u_42") else { panic!() };
/// assert_eq!((*m.value, m.params.get("id")), (7, Some("u_42")));
/// # Ok::<(), treadle_core::RouteError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Router<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    /// Sorted by [`by_len_then_bytes`], for binary search.
    statics: Vec<(Box<str>, Node<T>)>,
    param: Option<Box<Node<T>>>,
    /// Sorted by method, so the allowed list comes out sorted.
    routes: Vec<Route<T>>,
}

#[derive(Debug, Clone)]
struct Route<T> {
    method: Box<str>,
    /// Parameter names in template order; one per parameter edge on the way here.
    names: Box<[Box<str>]>,
    value: T,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Router<T> {
    /// An empty router.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            root: Node::new(),
            len: 0,
        }
    }

    /// The number of `(method, template)` routes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no route has been added.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Registers `value` for `method` + `template`.
    ///
    /// # Errors
    ///
    /// [`RouteError::InvalidMethod`] if `method` is not an HTTP token,
    /// [`RouteError::InvalidTemplate`] if `template` breaks a template rule, and
    /// [`RouteError::Duplicate`] if the pair is already registered. The router is
    /// unchanged after an error.
    pub fn add(&mut self, method: &str, template: &str, value: T) -> Result<(), RouteError> {
        if !is_method_token(method) {
            return Err(RouteError::InvalidMethod {
                method: method.to_owned(),
            });
        }
        let segments =
            template::parse(template).map_err(|problem| RouteError::InvalidTemplate {
                template: template.to_owned(),
                problem,
            })?;
        let mut node = &mut self.root;
        let mut names = Vec::new();
        for segment in segments {
            node = match segment {
                Segment::Static(text) => node.static_child_or_insert(text),
                Segment::Param(name) => {
                    names.push(Box::from(name));
                    node.param.get_or_insert_with(|| Box::new(Node::new()))
                }
            };
        }
        match node.route_index(method) {
            Ok(_) => Err(RouteError::Duplicate {
                method: method.to_owned(),
                template: template.to_owned(),
            }),
            Err(at) => {
                let route = Route {
                    method: Box::from(method),
                    names: names.into_boxed_slice(),
                    value,
                };
                node.routes.insert(at, route);
                self.len += 1;
                Ok(())
            }
        }
    }

    /// Matches `method` + `path`.
    ///
    /// Allocates nothing: parameter values borrow from `path`, names from the router.
    #[must_use]
    pub fn lookup<'r, 'p>(&'r self, method: &str, path: &'p str) -> Lookup<'r, 'p, T> {
        let rest = match path.strip_prefix('/') {
            None => return Lookup::NotFound,
            Some("") => None,
            Some(rest) => Some(rest),
        };
        let mut captured = Captured::default();
        let Some(node) = self.root.find(rest, &mut captured) else {
            return Lookup::NotFound;
        };
        match node.route_index(method) {
            Ok(at) => {
                let route = &node.routes[at];
                Lookup::Match(Match {
                    value: &route.value,
                    params: Params::new(&route.names, captured.values),
                })
            }
            Err(_) => Lookup::MethodNotAllowed(Allowed::new(&node.routes)),
        }
    }
}

impl<T> Node<T> {
    const fn new() -> Self {
        Self {
            statics: Vec::new(),
            param: None,
            routes: Vec::new(),
        }
    }

    fn static_child(&self, text: &str) -> Option<&Self> {
        self.statics
            .binary_search_by(|(key, _)| by_len_then_bytes(key, text))
            .ok()
            .map(|at| &self.statics[at].1)
    }

    fn static_child_or_insert(&mut self, text: &str) -> &mut Self {
        let at = match self
            .statics
            .binary_search_by(|(key, _)| by_len_then_bytes(key, text))
        {
            Ok(at) => at,
            Err(at) => {
                self.statics.insert(at, (Box::from(text), Self::new()));
                at
            }
        };
        &mut self.statics[at].1
    }

    fn route_index(&self, method: &str) -> Result<usize, usize> {
        self.routes
            .binary_search_by(|route| (*route.method).cmp(method))
    }

    /// The node `rest` leads to, static children first, backtracking into parameters.
    /// `None` for `rest` means the path has been consumed.
    fn find<'p>(&self, rest: Option<&'p str>, captured: &mut Captured<'p>) -> Option<&Self> {
        let Some(rest) = rest else {
            return (!self.routes.is_empty()).then_some(self);
        };
        let (segment, tail) = match rest.split_once('/') {
            Some((segment, tail)) => (segment, Some(tail)),
            None => (rest, None),
        };
        if let Some(found) = self
            .static_child(segment)
            .and_then(|child| child.find(tail, captured))
        {
            return Some(found);
        }
        let child = self.param.as_deref()?;
        if segment.is_empty() || !captured.push(segment) {
            return None;
        }
        let found = child.find(tail, captured);
        if found.is_none() {
            captured.len -= 1;
        }
        found
    }
}

/// Parameter values captured on the way down, without allocating.
#[derive(Default)]
struct Captured<'p> {
    values: [&'p str; MAX_PARAMS],
    len: usize,
}

impl<'p> Captured<'p> {
    /// False when full, which templates never allow to happen.
    fn push(&mut self, value: &'p str) -> bool {
        let Some(slot) = self.values.get_mut(self.len) else {
            return false;
        };
        *slot = value;
        self.len += 1;
        true
    }
}

/// The parameter names of `template`, in template order.
///
/// ```
/// assert_eq!(treadle_core::router::param_names("/orgs/{org}/teams/{team}")?, ["org", "team"]);
/// # Ok::<(), treadle_core::RouteError>(())
/// ```
///
/// # Errors
///
/// [`RouteError::InvalidTemplate`] if `template` breaks a template rule.
pub fn param_names(template: &str) -> Result<Vec<&str>, RouteError> {
    let segments = template::parse(template).map_err(|problem| RouteError::InvalidTemplate {
        template: template.to_owned(),
        problem,
    })?;
    Ok(segments
        .into_iter()
        .filter_map(|segment| match segment {
            Segment::Param(name) => Some(name),
            Segment::Static(_) => None,
        })
        .collect())
}

/// Orders segments by length first, so most probes of a binary search settle on a
/// length compare and only same-length keys reach `memcmp`.
fn by_len_then_bytes(key: &str, text: &str) -> Ordering {
    key.len()
        .cmp(&text.len())
        .then_with(|| key.as_bytes().cmp(text.as_bytes()))
}

/// RFC 9110 `token`: the characters an HTTP method may contain.
fn is_method_token(method: &str) -> bool {
    !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TemplateProblem;

    fn methods<'r, T>(lookup: Lookup<'r, '_, T>) -> Vec<&'r str> {
        match lookup {
            Lookup::MethodNotAllowed(allowed) => allowed.iter().collect(),
            other => panic!(
                "expected MethodNotAllowed, got {other:?}",
                other = kind(&other)
            ),
        }
    }

    fn kind<T>(lookup: &Lookup<'_, '_, T>) -> &'static str {
        match lookup {
            Lookup::Match(_) => "Match",
            Lookup::MethodNotAllowed(_) => "MethodNotAllowed",
            Lookup::NotFound => "NotFound",
        }
    }

    #[test]
    fn matches_root() {
        let mut router = Router::new();
        router.add("GET", "/", 1).unwrap();
        assert!(matches!(router.lookup("GET", "/"), Lookup::Match(m) if *m.value == 1));
        assert!(matches!(router.lookup("GET", ""), Lookup::NotFound));
        assert!(matches!(router.lookup("GET", "//"), Lookup::NotFound));
    }

    #[test]
    fn static_beats_param() {
        let mut router = Router::new();
        router.add("GET", "/users/{id}", 1).unwrap();
        router.add("GET", "/users/me", 2).unwrap();
        let Lookup::Match(m) = router.lookup("GET", "/users/me") else {
            panic!("no match");
        };
        assert_eq!((*m.value, m.params.len()), (2, 0));
        let Lookup::Match(m) = router.lookup("GET", "/users/u1") else {
            panic!("no match");
        };
        assert_eq!((*m.value, m.params.get("id")), (1, Some("u1")));
    }

    #[test]
    fn backtracks_from_a_dead_static_branch() {
        let mut router = Router::new();
        router.add("GET", "/users/me/settings", 1).unwrap();
        router.add("GET", "/users/{id}/keys", 2).unwrap();
        let Lookup::Match(m) = router.lookup("GET", "/users/me/keys") else {
            panic!("no match");
        };
        assert_eq!((*m.value, m.params.get("id")), (2, Some("me")));
    }

    #[test]
    fn method_is_checked_where_the_path_resolves() {
        let mut router = Router::new();
        router.add("GET", "/users/me", 1).unwrap();
        router.add("DELETE", "/users/{id}", 2).unwrap();
        assert_eq!(methods(router.lookup("DELETE", "/users/me")), ["GET"]);
    }

    #[test]
    fn allowed_methods_are_sorted() {
        let mut router = Router::new();
        for method in ["PUT", "GET", "DELETE", "PATCH"] {
            router.add(method, "/items/{id}", 0).unwrap();
        }
        assert_eq!(
            methods(router.lookup("POST", "/items/9")),
            ["DELETE", "GET", "PATCH", "PUT"]
        );
    }

    #[test]
    fn param_names_are_per_route() {
        let mut router = Router::new();
        router.add("GET", "/orgs/{org}", 1).unwrap();
        router.add("DELETE", "/orgs/{org_id}", 2).unwrap();
        let Lookup::Match(m) = router.lookup("DELETE", "/orgs/o1") else {
            panic!("no match");
        };
        assert_eq!(m.params.get("org_id"), Some("o1"));
        assert_eq!(m.params.get("org"), None);
    }

    #[test]
    fn duplicates_ignore_param_names() {
        let mut router = Router::new();
        router.add("GET", "/users/{id}", 1).unwrap();
        let err = router.add("GET", "/users/{uid}", 2).unwrap_err();
        assert!(matches!(err, RouteError::Duplicate { .. }));
        assert_eq!(router.len(), 1);
        router.add("POST", "/users/{uid}", 2).unwrap();
        assert_eq!(router.len(), 2);
    }

    #[test]
    fn rejects_bad_methods_and_templates() {
        let mut router = Router::<u8>::new();
        for method in ["", "GE T", "GET\n", "Ü"] {
            let err = router.add(method, "/", 0).unwrap_err();
            assert!(
                matches!(err, RouteError::InvalidMethod { .. }),
                "{method:?}"
            );
        }
        let err = router.add("GET", "/a//b", 0).unwrap_err();
        assert_eq!(
            err,
            RouteError::InvalidTemplate {
                template: "/a//b".into(),
                problem: TemplateProblem::EmptySegment,
            }
        );
        assert!(router.is_empty());
    }

    #[test]
    fn params_do_not_match_empty_segments() {
        let mut router = Router::new();
        router.add("GET", "/users/{id}/keys", 1).unwrap();
        assert!(matches!(
            router.lookup("GET", "/users//keys"),
            Lookup::NotFound
        ));
        assert!(matches!(
            router.lookup("GET", "/users/u1/keys/"),
            Lookup::NotFound
        ));
    }

    #[test]
    fn many_params_capture_in_order() {
        let template: String = (0..MAX_PARAMS).map(|i| format!("/{{p{i}}}")).collect();
        let path: String = (0..MAX_PARAMS).map(|i| format!("/v{i}")).collect();
        let mut router = Router::new();
        router.add("GET", &template, ()).unwrap();
        let Lookup::Match(m) = router.lookup("GET", &path) else {
            panic!("no match");
        };
        let pairs: Vec<_> = m.params.iter().collect();
        assert_eq!(pairs.len(), MAX_PARAMS);
        assert_eq!(pairs[3], ("p3", "v3"));
        let last = MAX_PARAMS - 1;
        assert_eq!(pairs[last], (&*format!("p{last}"), &*format!("v{last}")));
    }

    #[test]
    fn display_says_what_to_fix() {
        let err = Router::new().add("GET", "users", 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid route template \"users\": it must start with '/'"
        );
    }
}
