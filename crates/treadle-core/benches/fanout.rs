//! Criterion benchmarks for the idempotency fingerprint and the fan-out hub's publish.

#![allow(missing_docs)] // criterion_group! and criterion_main! generate undocumented items.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use treadle_core::fanout::{Event, EventId, Filter, Hub, Subscription};
use treadle_core::idempotency::fingerprint;

/// A pretty-printed JSON array of telemetry-like objects, about `size` bytes, keys out
/// of order so the canonical form has to reorder them.
fn body(size: usize) -> Vec<u8> {
    let mut out = String::from("[\n");
    let mut n = 0u64;
    while out.len() < size {
        if n > 0 {
            out.push_str(",\n");
        }
        out.push_str(&format!(
            "  {{\"ts\": {}.25, \"metric\": \"cpu\", \"value\": {}.125, \"labels\": {{\"zone\": \"eu-1\", \"host\": \"h{}\"}}, \"ok\": true}}",
            1_777_000_000 + n,
            n % 100,
            n % 50
        ));
        n += 1;
    }
    out.push_str("\n]");
    out.into_bytes()
}

fn bench_fingerprint(c: &mut Criterion) {
    let mut group = c.benchmark_group("fingerprint");
    for (name, size) in [("1k", 1 << 10), ("64k", 64 << 10)] {
        let body = body(size);
        assert_eq!(
            fingerprint("POST", "/v1/jobs", &body, None),
            fingerprint("POST", "/v1/jobs", &body, Some("application/json"))
        );
        group.bench_function(name, |b| {
            b.iter(|| fingerprint("POST", "/v1/jobs", black_box(&body), None));
        });
    }
    group.finish();
}

/// One publish to an organization with 1,000 filtered subscribers, half of which match.
fn bench_publish(c: &mut Criterion) {
    let hub: Hub<u64> = Hub::new(10_000, 1 << 20, EventId::ZERO).unwrap();
    let subs: Vec<Subscription<u64, ()>> = (0..1_000)
        .map(|i| {
            let filter = if i % 2 == 0 {
                Filter::new(Some(["job.*"]), None, None)
            } else {
                Filter::new(Some([format!("run.{}", i % 10)]), Some("j1"), None)
            };
            hub.subscribe("org", filter.unwrap(), None)
        })
        .collect();
    let mut seq = 0;
    let mut publish = || {
        seq += 1;
        let event = Event::new(
            EventId::new(1, seq),
            "org",
            "job.completed",
            Some("j1"),
            None,
            seq,
        );
        hub.publish(event).queued
    };
    assert_eq!(publish(), 500);
    c.bench_function("fanout_publish_1000", |b| {
        b.iter_batched(
            || {
                if subs[0].len() > 100_000 {
                    for sub in &subs {
                        drop(sub.drain(usize::MAX));
                    }
                }
            },
            |()| publish(),
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, bench_fingerprint, bench_publish);
criterion_main!(benches);
