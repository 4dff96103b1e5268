//! Criterion benchmarks for authorization: one check and effective permissions at 1k,
//! 10k and 100k ACL entries (the time should not grow with the entry count), plus an
//! API key format check and a GCRA decision.

#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented items.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use treadle_core::authz::{AclEntry, Authz, Item, Policy, Resource, Snapshot};
use treadle_core::keys::{self, Environment};
use treadle_core::ratelimit::{LocalLimiter, Quota};

const USERS: u64 = 2_000;
const TEAMS: u64 = 100;

fn policy() -> Policy {
    let mut p = Policy::builder();
    p.org_role("viewer", ["org.read", "doc.read"]).unwrap();
    p.org_role("member", ["doc.write", "doc.share"]).unwrap();
    p.org_role("admin", ["doc.delete", "members.manage"])
        .unwrap();
    p.org_role("owner", ["*"]).unwrap();
    p.team_role("member", ["doc.write"]).unwrap();
    p.build()
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// The shape of bench/test_authz_micro.py: about four entries per document, users in
/// two teams each, and the probe's document carrying entries for the probe user and team.
fn authz(rules: u64) -> Authz {
    let mut rng = Rng(rules);
    let mut s = Snapshot::builder("org", 1);
    let roles = ["viewer", "member", "member", "member", "admin", "owner"];
    for u in 0..USERS {
        s.member(&format!("u{u}"), roles[rng.below(6) as usize])
            .unwrap();
        for k in [0, 37] {
            let team = format!("t{}", (u + k) % TEAMS);
            s.team_member(&team, &format!("u{u}"), "member").unwrap();
        }
    }
    s.member("u7", "member").unwrap();
    let docs = (rules / 4).max(1);
    let actions = ["doc.read", "doc.write", "doc.delete", "doc.share", "*"];
    for n in 0..rules {
        let subject = if rng.below(10) < 7 {
            format!("user:u{}", rng.below(USERS))
        } else {
            format!("team:t{}", rng.below(TEAMS))
        };
        s.acl(AclEntry {
            entry_id: &format!("e{n:06}"),
            resource_type: "doc",
            resource_id: &format!("d{}", rng.below(docs)),
            action: actions[rng.below(5) as usize],
            subject: &subject,
            effect: if rng.below(5) == 0 { "deny" } else { "allow" },
        })
        .unwrap();
    }
    for (id, action, subject, effect) in [
        ("p1", "doc.share", "user:u7", "allow"),
        ("p2", "doc.read", "team:t7", "deny"),
    ] {
        s.acl(AclEntry {
            entry_id: id,
            resource_type: "doc",
            resource_id: "d3",
            action,
            subject,
            effect,
        })
        .unwrap();
    }
    let authz = Authz::new(policy());
    authz.load(Arc::new(s.build()));
    authz
}

const PROBE: Item<'static> = Item {
    subject: "user:u7",
    action: "doc.write",
    resource: Resource {
        resource_type: "doc",
        resource_id: "d3",
        team_id: None,
    },
};

fn bench_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("authz_check");
    for (name, rules) in [("1k", 1_000), ("10k", 10_000), ("100k", 100_000)] {
        let authz = authz(rules);
        assert!(authz.check("org", &PROBE, &[]).unwrap().allowed);
        group.bench_function(name, |b| {
            b.iter(|| authz.check("org", black_box(&PROBE), &[]));
        });
    }
    group.finish();

    let authz = authz(1_000);
    c.bench_function("authz_permissions", |b| {
        b.iter(|| authz.permissions("org", black_box("user:u7"), &PROBE.resource, &[]));
    });
}

fn bench_keys_and_limits(c: &mut Criterion) {
    let key = keys::generate(Environment::Live).unwrap().raw;
    assert!(keys::check(&key));
    c.bench_function("api_key_check", |b| b.iter(|| keys::check(black_box(&key))));

    let limiter = LocalLimiter::new();
    let quota = Quota::per_seconds(1_000_000_000, 1.0).unwrap();
    let now = LocalLimiter::now_us();
    c.bench_function("ratelimit_local", |b| {
        b.iter(|| limiter.check(black_box("org_1:key_1"), &quota, 1, now));
    });
}

criterion_group!(benches, bench_check, bench_keys_and_limits);
criterion_main!(benches);
