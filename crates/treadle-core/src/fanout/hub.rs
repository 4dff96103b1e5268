//! [`Hub`]: the subscription hub.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use super::org::Org;
use super::queue::Queue;
use super::stats::{Counters, Stats};
use super::{Event, EventId, Filter, Subscription};
use crate::error::FanoutError;

/// The live-event hub of one process: per organization, a replay ring of the newest
/// events and the subscribers with their filters and bounded queues.
///
/// `P` is the payload handed to subscribers; `W` is the waker type a subscription may
/// install (see [`Subscription::set_waker`]). All methods take `&self` and are safe to
/// call from many threads: one lock per organization orders its publishes, and each
/// subscriber's queue has its own lock, so draining never waits for a publish to other
/// subscribers. Wakers are only handed back, never called, so no lock is held when they
/// run.
///
/// ```
/// use treadle_core::fanout::{Event, EventId, Filter, Hub};
///
/// let hub: Hub<&str> = Hub::new(10_000, 1_000, EventId::ZERO)?;
/// let jobs = hub.subscribe("org_1", Filter::new(Some(["job.*"]), None, None)?, None);
/// let other = hub.subscribe("org_2", Filter::all(), None);
/// let event = Event::new(EventId::parse("1700000000000-0")?, "org_1", "job.created", Some("j_1"), None, "{}");
/// assert_eq!(hub.publish(event).queued, 1);
/// assert_eq!(jobs.drain(256).iter().map(|e| *e.payload()).collect::<Vec<_>>(), ["{}"]);
/// assert!(other.drain(256).is_empty());
///
/// let replay = hub.replay("org_1", EventId::ZERO, &Filter::all());
/// assert_eq!((replay.events.len(), replay.gap), (1, false));
/// # Ok::<(), treadle_core::FanoutError>(())
/// ```
#[derive(Debug)]
pub struct Hub<P, W = ()> {
    ring_size: usize,
    queue_size: usize,
    horizon: EventId,
    orgs: RwLock<Orgs<P, W>>,
    counters: Arc<Counters>,
}

/// What [`Hub::publish`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Published<W> {
    /// The number of subscribers the event was queued for.
    pub queued: usize,
    /// `false` when the event was ignored because its id was not above the last one
    /// published for its organization (a redelivery).
    pub accepted: bool,
    /// The wakers of the subscribers whose queue went from empty to non-empty: call each
    /// once.
    pub wakers: Vec<Arc<W>>,
}

/// What [`Hub::replay`] found.
#[derive(Debug)]
#[non_exhaustive]
pub struct Replay<P> {
    /// The events in the ring after the given id that pass the filter, oldest first.
    pub events: Vec<Arc<Event<P>>>,
    /// Whether events after the given id may be missing: some were trimmed from the
    /// ring, or came before the hub's horizon. Trimmed events are not kept, so this is
    /// `true` even when the lost events would not have passed the filter.
    pub gap: bool,
}

impl<P, W> Hub<P, W> {
    /// An empty hub keeping the newest `ring_size` events of each organization for
    /// replay (0 keeps none), with subscriber queues of `queue_size` events. `horizon`
    /// is the id after which the hub sees every event: the id of the stream position its
    /// feed starts after, or [`EventId::ZERO`] when it sees the whole stream.
    ///
    /// # Errors
    ///
    /// [`FanoutError::ZeroQueueSize`] when `queue_size` is 0.
    pub fn new(ring_size: usize, queue_size: usize, horizon: EventId) -> Result<Self, FanoutError> {
        if queue_size == 0 {
            return Err(FanoutError::ZeroQueueSize);
        }
        Ok(Self {
            ring_size,
            queue_size,
            horizon,
            orgs: RwLock::default(),
            counters: Arc::default(),
        })
    }

    /// Records `event` in its organization's ring and queues it for every subscriber of
    /// that organization whose filter it passes. A subscriber whose queue is full is
    /// marked overflowed and dropped from the hub instead; the publisher never waits for
    /// a subscriber.
    ///
    /// Events of one organization must come in increasing id order: one whose id is not
    /// above the last one published is ignored ([`Published::accepted`] is `false`), so
    /// a redelivered event is not delivered twice.
    pub fn publish(&self, event: Event<P>) -> Published<W> {
        let org = self.org(event.org_id());
        let delivery = lock(&org).publish(event);
        let Some(delivery) = delivery else {
            Counters::add(&self.counters.stale, 1);
            return Published {
                queued: 0,
                accepted: false,
                wakers: Vec::new(),
            };
        };
        Counters::add(&self.counters.published, 1);
        Counters::add(&self.counters.queued, delivery.queued);
        Counters::add(&self.counters.overflowed, delivery.overflowed);
        self.counters.unsubscribed(delivery.removed);
        drop(delivery.trimmed);
        Published {
            queued: delivery.queued,
            accepted: true,
            wakers: delivery.wakers,
        }
    }

    /// Subscribes to the events of `org_id` that pass `filter`.
    ///
    /// With `after`, the subscription resumes after that id: the ring's events after it
    /// that pass the filter are queued first (beyond the queue's size; the ring bounds
    /// them), and [`Subscription::gap`] tells whether history after it was lost. This
    /// happens under the organization's lock, so the replayed and the live events meet
    /// with no event missing or repeated.
    pub fn subscribe(
        &self,
        org_id: &str,
        filter: Filter,
        after: Option<EventId>,
    ) -> Subscription<P, W> {
        let org = self.org(org_id);
        let queue = {
            let mut guard = lock(&org);
            let (backlog, gap) = after.map_or((Vec::new(), false), |after| {
                guard.ring.after(after, &filter)
            });
            let queue = Arc::new(Queue::new(filter, self.queue_size, backlog, gap));
            guard.subscribers.push(Arc::clone(&queue));
            queue
        };
        self.counters.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscription {
            queue,
            org,
            org_id: org_id.into(),
            counters: Arc::clone(&self.counters),
        }
    }

    /// The events of `org_id` after `after` still in the ring that pass `filter`, and
    /// whether history after `after` was lost (see [`Replay::gap`]).
    pub fn replay(&self, org_id: &str, after: EventId, filter: &Filter) -> Replay<P> {
        let org = self.find(org_id);
        let (events, gap) = match &org {
            Some(org) => lock(org).ring.after(after, filter),
            None => (Vec::new(), after < self.horizon),
        };
        Replay { events, gap }
    }

    /// The number of live subscriptions (not closed, not overflowed).
    #[must_use]
    pub fn len(&self) -> usize {
        self.counters.subscribers.load(Ordering::Relaxed)
    }

    /// Whether there is no live subscription.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the hub holds and has done.
    #[must_use]
    pub fn stats(&self) -> Stats {
        let orgs: Vec<_> = self.read().values().cloned().collect();
        let c = &*self.counters;
        Stats {
            orgs: orgs.len(),
            subscribers: self.len(),
            ring_events: orgs.iter().map(|org| lock(org).ring.len()).sum(),
            published: c.published.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
            overflowed: c.overflowed.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Orgs<P, W>> {
        self.orgs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn find(&self, org_id: &str) -> Option<Arc<Mutex<Org<P, W>>>> {
        self.read().get(org_id).cloned()
    }

    /// The organization's state, made on first use.
    fn org(&self, org_id: &str) -> Arc<Mutex<Org<P, W>>> {
        if let Some(org) = self.find(org_id) {
            return org;
        }
        let mut orgs = self.orgs.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            orgs.entry(org_id.into())
                .or_insert_with(|| Arc::new(Mutex::new(Org::new(self.ring_size, self.horizon)))),
        )
    }
}

/// Each organization's state behind its own lock, by organization id.
type Orgs<P, W> = HashMap<Box<str>, Arc<Mutex<Org<P, W>>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
