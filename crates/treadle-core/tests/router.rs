//! Table-driven checks of the router against a route table shaped like treadle's API.

use treadle_core::router::{Lookup, Router};
use treadle_core::{RouteError, TemplateProblem};

const ROUTES: &[(&str, &str, u32)] = &[
    ("GET", "/", 0),
    ("GET", "/healthz", 1),
    ("GET", "/v1/users", 2),
    ("POST", "/v1/users", 3),
    ("GET", "/v1/users/me", 4),
    ("GET", "/v1/users/{id}", 5),
    ("PATCH", "/v1/users/{id}", 6),
    ("DELETE", "/v1/users/{id}", 7),
    ("POST", "/v1/users/{id}/unlock", 8),
    ("GET", "/v1/users/me/settings", 9),
    ("GET", "/v1/orgs/{org}/teams/{team}", 10),
    ("PUT", "/v1/orgs/{org_id}/teams/{team_id}", 11),
    ("GET", "/v1/orgs/{org}/teams/{team}/members/{user}", 12),
    ("GET", "/v1/orgs/{org}/teams/default", 13),
    ("POST", "/v1/jobs", 14),
    ("GET", "/v1/jobs/{job}/runs/{run}/events", 15),
];

#[derive(Debug, PartialEq)]
enum Outcome<'a> {
    Found(u32, Vec<(&'a str, &'a str)>),
    NotAllowed(Vec<&'a str>),
    Missing,
}

fn router() -> Router<u32> {
    let mut router = Router::new();
    for &(method, template, id) in ROUTES {
        router.add(method, template, id).unwrap();
    }
    router
}

fn outcome<'a>(router: &'a Router<u32>, method: &str, path: &'a str) -> Outcome<'a> {
    match router.lookup(method, path) {
        Lookup::Match(m) => Outcome::Found(*m.value, m.params.iter().collect()),
        Lookup::MethodNotAllowed(allowed) => Outcome::NotAllowed(allowed.iter().collect()),
        Lookup::NotFound => Outcome::Missing,
    }
}

#[test]
fn lookups() {
    use Outcome::{Found, Missing, NotAllowed};
    let cases: Vec<(&str, &str, Outcome<'_>)> = vec![
        ("GET", "/", Found(0, vec![])),
        ("GET", "/healthz", Found(1, vec![])),
        ("POST", "/v1/users", Found(3, vec![])),
        ("GET", "/v1/users/me", Found(4, vec![])),
        ("GET", "/v1/users/u_1", Found(5, vec![("id", "u_1")])),
        ("DELETE", "/v1/users/u_1", Found(7, vec![("id", "u_1")])),
        ("POST", "/v1/users/me/unlock", Found(8, vec![("id", "me")])),
        ("GET", "/v1/users/me/settings", Found(9, vec![])),
        (
            "GET",
            "/v1/orgs/o1/teams/t1",
            Found(10, vec![("org", "o1"), ("team", "t1")]),
        ),
        (
            "PUT",
            "/v1/orgs/o1/teams/t1",
            Found(11, vec![("org_id", "o1"), ("team_id", "t1")]),
        ),
        (
            "GET",
            "/v1/orgs/o1/teams/default",
            Found(13, vec![("org", "o1")]),
        ),
        (
            "GET",
            "/v1/orgs/o1/teams/default/members/u9",
            Found(12, vec![("org", "o1"), ("team", "default"), ("user", "u9")]),
        ),
        (
            "GET",
            "/v1/jobs/j%2F1/runs/r-2/events",
            Found(15, vec![("job", "j%2F1"), ("run", "r-2")]),
        ),
        ("DELETE", "/v1/users", NotAllowed(vec!["GET", "POST"])),
        (
            "PUT",
            "/v1/users/u_1",
            NotAllowed(vec!["DELETE", "GET", "PATCH"]),
        ),
        ("DELETE", "/v1/users/me", NotAllowed(vec!["GET"])),
        ("PUT", "/v1/orgs/o1/teams/default", NotAllowed(vec!["GET"])),
        ("get", "/healthz", NotAllowed(vec!["GET"])),
        ("GET", "", Missing),
        ("GET", "healthz", Missing),
        ("GET", "/healthz/", Missing),
        ("GET", "/HEALTHZ", Missing),
        ("GET", "//healthz", Missing),
        ("GET", "/v1", Missing),
        ("GET", "/v1/users//unlock", Missing),
        ("GET", "/v1/users/u_1/unlock/extra", Missing),
        ("GET", "/v1/jobs/j1/runs", Missing),
    ];
    let router = router();
    assert_eq!(router.len(), ROUTES.len());
    for (method, path, expected) in cases {
        assert_eq!(outcome(&router, method, path), expected, "{method} {path}");
    }
}

#[test]
fn add_errors() {
    let cases: &[(&str, &str, RouteError)] = &[
        (
            "GET",
            "/v1/users/{uid}",
            RouteError::Duplicate {
                method: "GET".into(),
                template: "/v1/users/{uid}".into(),
            },
        ),
        (
            "GET",
            "/",
            RouteError::Duplicate {
                method: "GET".into(),
                template: "/".into(),
            },
        ),
        (
            "G ET",
            "/x",
            RouteError::InvalidMethod {
                method: "G ET".into(),
            },
        ),
        (
            "GET",
            "/v1/{a}/{a}",
            RouteError::InvalidTemplate {
                template: "/v1/{a}/{a}".into(),
                problem: TemplateProblem::DuplicateParamName,
            },
        ),
        (
            "GET",
            "/v1/users/{id}x",
            RouteError::InvalidTemplate {
                template: "/v1/users/{id}x".into(),
                problem: TemplateProblem::StrayBrace,
            },
        ),
    ];
    let mut router = router();
    for (method, template, expected) in cases {
        assert_eq!(
            router.add(method, template, 99).as_ref(),
            Err(expected),
            "{method} {template}"
        );
    }
    assert_eq!(router.len(), ROUTES.len(), "a failed add changes nothing");
}

#[test]
fn many_siblings() {
    let mut router = Router::new();
    for i in 0..500 {
        router.add("GET", &format!("/r{i}/{{id}}"), i).unwrap();
    }
    for i in (0..500).step_by(37) {
        let path = format!("/r{i}/x");
        let Lookup::Match(m) = router.lookup("GET", &path) else {
            panic!("{path}");
        };
        assert_eq!(*m.value, i);
    }
}
