//! Property test of the fan-out hub against a model: for random events over three
//! organizations and random filters, every subscriber gets exactly its organization's
//! matching events in order, and replay equals the model's ring.

use proptest::prelude::*;
use treadle_core::fanout::{Event, EventId, Filter, Hub};

const ORGS: &[&str] = &["a", "b", "c"];
const TOPICS: &[&str] = &["job.created", "job.step.done", "key.revoked", "audit"];
const PATTERNS: &[&str] = &["job.*", "key.revoked", "*", "audit", "job.step.*"];

#[derive(Debug, Clone)]
struct Spec {
    org: usize,
    topic: usize,
    job: Option<u8>,
    /// How far the id moves on: ms step and a new sequence number.
    step: (u64, u64),
}

#[derive(Debug, Clone)]
struct Sub {
    org: usize,
    patterns: Option<Vec<usize>>,
    job: Option<u8>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..3usize,
        0..4usize,
        proptest::option::of(0..3u8),
        (0..3u64, 0..12u64),
    )
        .prop_map(|(org, topic, job, step)| Spec {
            org,
            topic,
            job,
            step,
        })
}

fn sub() -> impl Strategy<Value = Sub> {
    (
        0..3usize,
        proptest::option::of(proptest::collection::vec(0..5usize, 1..3)),
        proptest::option::of(0..3u8),
    )
        .prop_map(|(org, patterns, job)| Sub { org, patterns, job })
}

fn model_matches(sub: &Sub, spec: &Spec) -> bool {
    let topic = TOPICS[spec.topic];
    sub.org == spec.org
        && sub.job.is_none_or(|j| spec.job == Some(j))
        && sub.patterns.as_ref().is_none_or(|ps| {
            ps.iter().any(|&p| match PATTERNS[p] {
                "*" => true,
                p if p.ends_with(".*") => topic.starts_with(&p[..p.len() - 1]),
                p => p == topic,
            })
        })
}

proptest! {
    #[test]
    fn hub_equals_model(
        specs in proptest::collection::vec(spec(), 0..120),
        subs in proptest::collection::vec(sub(), 1..8),
        ring in 0..20usize,
        after in (0..300u64, 0..12u64),
    ) {
        let hub: Hub<usize> = Hub::new(ring, 1_000, EventId::ZERO).unwrap();
        let job = |j: Option<u8>| j.map(|j| format!("j{j}"));
        let filter = |s: &Sub| {
            let patterns = s.patterns.as_ref().map(|ps| ps.iter().map(|&p| PATTERNS[p]).collect::<Vec<_>>());
            Filter::new(patterns, job(s.job).as_deref(), None).unwrap()
        };
        let live: Vec<_> = subs.iter().map(|s| hub.subscribe(ORGS[s.org], filter(s), None)).collect();
        // Ids increase overall (ms, then seq), as one stream would hand them out.
        let mut id = EventId::new(1, 0);
        let mut ids = Vec::new();
        for (n, s) in specs.iter().enumerate() {
            id = if s.step.0 == 0 { EventId::new(id.ms, id.seq + 1 + s.step.1) } else { EventId::new(id.ms + s.step.0 * 7, s.step.1) };
            ids.push(id);
            let job = job(s.job);
            hub.publish(Event::new(id, ORGS[s.org], TOPICS[s.topic], job.as_deref(), None, n));
        }
        for (s, sub) in subs.iter().zip(&live) {
            let got: Vec<usize> = sub.drain(usize::MAX).iter().map(|e| *e.payload()).collect();
            let want: Vec<usize> = (0..specs.len()).filter(|&n| model_matches(s, &specs[n])).collect();
            prop_assert_eq!(got, want);
        }
        let after = EventId::new(after.0, after.1);
        for (s, sub) in subs.iter().zip(&live) {
            let in_org: Vec<usize> = (0..specs.len()).filter(|&n| specs[n].org == s.org).collect();
            let kept = &in_org[in_org.len().saturating_sub(ring)..];
            let trimmed = &in_org[..in_org.len() - kept.len()];
            let want: Vec<usize> = kept.iter().copied()
                .filter(|&n| ids[n] > after && model_matches(s, &specs[n])).collect();
            let replay = hub.replay(ORGS[s.org], after, &filter(s));
            prop_assert_eq!(replay.events.iter().map(|e| *e.payload()).collect::<Vec<_>>(), want.clone());
            prop_assert_eq!(replay.gap, trimmed.last().is_some_and(|&n| ids[n] > after));
            let resumed = hub.subscribe(ORGS[s.org], filter(s), Some(after));
            prop_assert_eq!(resumed.drain(usize::MAX).iter().map(|e| *e.payload()).collect::<Vec<_>>(), want);
            prop_assert_eq!(resumed.gap(), replay.gap);
            prop_assert!(!sub.overflowed());
        }
    }
}
