//! The fan-out hub: isolation, filters, bounded queues, wakers, replay and resume, and
//! one publisher against many draining threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use treadle_core::fanout::{Event, EventId, Filter, Hub, Subscription};
use treadle_core::FanoutError;

type TestHub = Hub<u64, AtomicUsize>;

fn hub(ring: usize, queue: usize) -> TestHub {
    Hub::new(ring, queue, EventId::ZERO).unwrap()
}

fn event(ms: u64, org: &str, topic: &str) -> Event<u64> {
    Event::new(EventId::new(ms, 0), org, topic, None, None, ms)
}

fn payloads(sub: &Subscription<u64, AtomicUsize>) -> Vec<u64> {
    sub.drain(usize::MAX).iter().map(|e| *e.payload()).collect()
}

fn all() -> Filter {
    Filter::all()
}

#[test]
fn organizations_never_see_each_other() {
    let hub = hub(100, 100);
    let a = hub.subscribe("org_a", all(), None);
    let b = hub.subscribe("org_b", all(), None);
    let star = hub.subscribe("org_a", Filter::new(Some(["*"]), None, None).unwrap(), None);
    hub.publish(event(1, "org_a", "job.created"));
    hub.publish(event(2, "org_b", "job.created"));
    hub.publish(event(3, "org_a", "key.revoked"));
    assert_eq!(payloads(&a), [1, 3]);
    assert_eq!(payloads(&star), [1, 3]);
    assert_eq!(payloads(&b), [2]);
    let replay = hub.replay("org_b", EventId::ZERO, &all());
    assert_eq!(
        replay
            .events
            .iter()
            .map(|e| *e.payload())
            .collect::<Vec<_>>(),
        [2]
    );
    assert!(hub.replay("org_c", EventId::ZERO, &all()).events.is_empty());
    // A resume in one org replays only that org.
    let resumed = hub.subscribe("org_a", all(), Some(EventId::ZERO));
    assert_eq!(payloads(&resumed), [1, 3]);
}

#[test]
fn filters_pick_topics_jobs_and_runs() {
    let hub = hub(100, 100);
    let jobs = hub.subscribe("o", Filter::new(Some(["job.*"]), None, None).unwrap(), None);
    let one_job = hub.subscribe(
        "o",
        Filter::new(None::<[&str; 0]>, Some("j1"), None).unwrap(),
        None,
    );
    let one_run = hub.subscribe(
        "o",
        Filter::new(Some(["run.step"]), None, Some("r1")).unwrap(),
        None,
    );
    let publish = |ms, topic, job, run| {
        hub.publish(Event::new(EventId::new(ms, 0), "o", topic, job, run, ms))
            .queued
    };
    assert_eq!(publish(1, "job.created", Some("j1"), None), 2);
    assert_eq!(publish(2, "job.created", Some("j2"), None), 1);
    assert_eq!(publish(3, "run.step", Some("j1"), Some("r1")), 2);
    assert_eq!(publish(4, "run.step", None, Some("r2")), 0);
    assert_eq!(publish(5, "jobs", Some("j1"), None), 1);
    assert_eq!(payloads(&jobs), [1, 2]);
    assert_eq!(payloads(&one_job), [1, 3, 5]);
    assert_eq!(payloads(&one_run), [3]);
}

#[test]
fn a_full_queue_overflows_without_slowing_the_others() {
    let hub = hub(100, 3);
    let slow = hub.subscribe("o", all(), None);
    let fast = hub.subscribe("o", all(), None);
    for ms in 1..=5 {
        let published = hub.publish(event(ms, "o", "t"));
        assert_eq!(published.queued, if ms <= 3 { 2 } else { 1 });
        assert_eq!(payloads(&fast), [ms]);
    }
    assert!(slow.overflowed() && !fast.overflowed());
    assert_eq!(hub.len(), 1);
    // What was queued before the overflow can still be drained, then nothing comes.
    assert_eq!(payloads(&slow), [1, 2, 3]);
    hub.publish(event(6, "o", "t"));
    assert!(slow.is_empty());
    let stats = hub.stats();
    assert_eq!(
        (
            stats.overflowed,
            stats.subscribers,
            stats.queued,
            stats.published
        ),
        (1, 1, 9, 6)
    );
}

#[test]
fn the_waker_comes_once_per_empty_to_non_empty() {
    let hub = hub(100, 100);
    let sub = hub.subscribe("o", all(), None);
    assert!(sub.set_waker(Some(AtomicUsize::new(0))).is_none());
    let wake = |published: treadle_core::fanout::Published<AtomicUsize>| {
        for waker in &published.wakers {
            waker.fetch_add(1, Ordering::Relaxed);
        }
        published.wakers.len()
    };
    assert_eq!(wake(hub.publish(event(1, "o", "t"))), 1);
    assert_eq!(wake(hub.publish(event(2, "o", "t"))), 0);
    assert_eq!(sub.drain(1).len(), 1);
    assert_eq!(wake(hub.publish(event(3, "o", "t"))), 0, "not empty yet");
    assert_eq!(sub.drain(10).len(), 2);
    assert_eq!(wake(hub.publish(event(4, "o", "t"))), 1);
    // A waker installed while events wait is handed back at once.
    let now = sub.set_waker(Some(AtomicUsize::new(7))).unwrap();
    assert_eq!(now.load(Ordering::Relaxed), 7);
    sub.set_waker(None);
    assert_eq!(sub.drain(10).len(), 1);
    assert_eq!(wake(hub.publish(event(5, "o", "t"))), 0);
}

#[test]
fn replay_reports_a_gap_only_when_history_was_trimmed() {
    let hub = hub(3, 100);
    for ms in 1..=5 {
        hub.publish(event(ms, "o", "t"));
    }
    let ids = |after: EventId| {
        let r = hub.replay("o", after, &all());
        (
            r.events.iter().map(|e| e.id().ms).collect::<Vec<_>>(),
            r.gap,
        )
    };
    assert_eq!(ids(EventId::new(2, 0)), (vec![3, 4, 5], false));
    assert_eq!(ids(EventId::new(1, 0)), (vec![3, 4, 5], true));
    assert_eq!(ids(EventId::new(4, 0)), (vec![5], false));
    assert_eq!(ids(EventId::new(9, 0)), (vec![], false));
    // Ids compare as numbers: 10-0 comes after 9-0.
    hub.publish(event(10, "o", "t"));
    assert_eq!(ids(EventId::parse("9-0").unwrap()), (vec![10], false));
    // A horizon: the hub started reading the stream after 100-0.
    let late: Hub<u64> = Hub::new(10, 10, EventId::new(100, 0)).unwrap();
    assert!(late.replay("o", EventId::new(99, 0), &all()).gap);
    assert!(!late.replay("o", EventId::new(100, 0), &all()).gap);
}

#[test]
fn resuming_meets_live_events_with_no_gap_or_repeat() {
    let hub = hub(100, 2);
    for ms in 1..=10 {
        hub.publish(event(ms, "o", "t"));
    }
    // The backlog is bounded by the ring, not by the queue size.
    let sub = hub.subscribe("o", all(), Some(EventId::new(4, 0)));
    assert!(!sub.gap());
    hub.publish(event(11, "o", "t"));
    hub.publish(event(12, "o", "t"));
    assert_eq!(payloads(&sub), (5..=12).collect::<Vec<_>>());
    assert!(!sub.overflowed());
}

#[test]
fn redelivered_events_are_ignored() {
    let hub = hub(100, 100);
    let sub = hub.subscribe("o", all(), None);
    assert!(hub.publish(event(5, "o", "t")).accepted);
    let again = hub.publish(event(5, "o", "t"));
    assert!(!again.accepted && again.queued == 0);
    assert!(!hub.publish(event(4, "o", "t")).accepted);
    assert!(hub.publish(event(4, "other", "t")).accepted);
    assert_eq!(payloads(&sub), [5]);
    assert_eq!(hub.stats().stale, 2);
}

#[test]
fn close_and_drop_unsubscribe() {
    let hub = hub(100, 100);
    let a = hub.subscribe("o", all(), None);
    let b = hub.subscribe("o", all(), None);
    assert_eq!(hub.len(), 2);
    hub.publish(event(1, "o", "t"));
    a.close();
    a.close();
    assert!(a.is_closed() && a.is_empty());
    assert_eq!(hub.len(), 1);
    drop(b);
    assert!(hub.is_empty());
    assert_eq!(hub.publish(event(2, "o", "t")).queued, 0);
    assert!(a.drain(10).is_empty());
}

#[test]
fn queue_size_zero_is_refused() {
    assert_eq!(
        Hub::<()>::new(1, 0, EventId::ZERO).unwrap_err(),
        FanoutError::ZeroQueueSize
    );
}

#[test]
fn one_publisher_many_drainers() {
    const EVENTS: u64 = 20_000;
    let hub = Arc::new(hub(1000, EVENTS as usize));
    let subs: Vec<_> = (0..4).map(|_| hub.subscribe("o", all(), None)).collect();
    let received = AtomicUsize::new(0);
    thread::scope(|s| {
        for sub in &subs {
            let received = &received;
            s.spawn(move || {
                let mut next = 1;
                while next <= EVENTS {
                    for e in sub.drain(64) {
                        assert_eq!(*e.payload(), next);
                        next += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    thread::yield_now();
                }
            });
        }
        let hub = Arc::clone(&hub);
        s.spawn(move || {
            for ms in 1..=EVENTS {
                assert_eq!(hub.publish(event(ms, "o", "t")).queued, 4);
            }
        });
    });
    assert_eq!(received.into_inner(), 4 * EVENTS as usize);
    assert_eq!(hub.stats().ring_events, 1000);
}
