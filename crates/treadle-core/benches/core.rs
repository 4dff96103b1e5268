//! Criterion benchmarks for the per-request hot paths: router lookup and JWT decode.

#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented items.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use treadle_core::router::{Lookup, Router};
use treadle_core::{jwt, request_id};

const NOW: i64 = 1_700_000_000;
const KEY: &[u8] = b"bench-signing-key-32-bytes-long!";

/// About 60 routes shaped like treadle's API: 12 resources × 5 routes each.
fn route_table() -> Router<usize> {
    let resources = [
        "users",
        "orgs",
        "teams",
        "roles",
        "keys",
        "jobs",
        "runs",
        "workflows",
        "events",
        "usage",
        "audit",
        "webhooks",
    ];
    let mut router = Router::new();
    let mut id = 0;
    for resource in resources {
        for (method, template) in [
            ("GET", format!("/v1/{resource}")),
            ("POST", format!("/v1/{resource}")),
            ("GET", format!("/v1/{resource}/{{id}}")),
            ("PATCH", format!("/v1/{resource}/{{id}}")),
            ("POST", format!("/v1/{resource}/{{id}}/actions/{{action}}")),
        ] {
            router.add(method, &template, id).unwrap();
            id += 1;
        }
    }
    router
}

fn bench_router(c: &mut Criterion) {
    let router = route_table();
    let mut group = c.benchmark_group("router");
    for (name, method, path) in [
        ("static", "GET", "/v1/webhooks"),
        ("one_param", "GET", "/v1/workflows/wf_01HZX3"),
        ("two_params", "POST", "/v1/jobs/job_9/actions/cancel"),
        ("not_found", "GET", "/v1/nothing/here"),
    ] {
        assert_eq!(
            matches!(router.lookup(method, path), Lookup::Match(_)),
            name != "not_found"
        );
        group.bench_function(name, |b| {
            b.iter(|| match router.lookup(black_box(method), black_box(path)) {
                Lookup::Match(m) => *m.value + m.params.len(),
                Lookup::MethodNotAllowed(allowed) => allowed.len(),
                Lookup::NotFound => 0,
            });
        });
    }
    group.finish();
}

fn bench_jwt(c: &mut Criterion) {
    let claims = br#"{"sub":"usr_01HZX3K9","org":"org_01HZX3K9","scopes":["jobs:write"],"exp":1700003600,"iat":1700000000}"#;
    let token = jwt::encode(claims, KEY).unwrap();
    assert_eq!(jwt::decode(&token, KEY, NOW, 0).unwrap(), claims);
    let mut group = c.benchmark_group("jwt");
    group.bench_function("decode", |b| {
        b.iter(|| jwt::decode(black_box(&token), black_box(KEY), NOW, 0));
    });
    group.bench_function("encode", |b| {
        b.iter(|| jwt::encode(black_box(claims), black_box(KEY)));
    });
    group.finish();
    c.bench_function("request_id", |b| b.iter(request_id));
}

criterion_group!(benches, bench_router, bench_jwt);
criterion_main!(benches);
