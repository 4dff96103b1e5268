//! [`Org`]: one organization's ring and subscribers, behind the hub's per-org lock.

use std::sync::Arc;

use super::queue::{Push, Queue};
use super::ring::Ring;
use super::{Event, EventId};

/// One organization's replay ring and live subscribers.
#[derive(Debug)]
pub(super) struct Org<P, W> {
    pub(super) ring: Ring<P>,
    pub(super) subscribers: Vec<Arc<Queue<P, W>>>,
    /// The newest id published; a publish must go above it.
    last: Option<EventId>,
}

/// What [`Org::publish`] did.
pub(super) struct Delivery<P, W> {
    /// Subscribers the event was queued for.
    pub(super) queued: usize,
    /// Subscribers that overflowed on this event.
    pub(super) overflowed: usize,
    /// Subscribers removed from the list (overflowed now, or closed earlier).
    pub(super) removed: usize,
    /// Wakers to call, outside every lock.
    pub(super) wakers: Vec<Arc<W>>,
    /// The event the ring dropped to make room, to drop outside the lock.
    pub(super) trimmed: Option<Arc<Event<P>>>,
}

impl<P, W> Org<P, W> {
    pub(super) fn new(ring_size: usize, horizon: EventId) -> Self {
        Self {
            ring: Ring::new(ring_size, horizon),
            subscribers: Vec::new(),
            last: None,
        }
    }

    /// Records `event` and queues it for every matching subscriber, or `None` when its
    /// id is not above the last one published (a redelivery).
    pub(super) fn publish(&mut self, event: Event<P>) -> Option<Delivery<P, W>> {
        if self.last.is_some_and(|last| event.id() <= last) {
            return None;
        }
        self.last = Some(event.id());
        let event = Arc::new(event);
        let mut delivery = Delivery {
            queued: 0,
            overflowed: 0,
            removed: 0,
            wakers: Vec::new(),
            trimmed: None,
        };
        let mut dead = false;
        for queue in &self.subscribers {
            if !queue.filter.matches(&event) {
                continue;
            }
            match queue.push(&event) {
                Push::Queued(waker) => {
                    delivery.queued += 1;
                    delivery.wakers.extend(waker);
                }
                Push::Overflowed => {
                    delivery.overflowed += 1;
                    dead = true;
                }
                Push::Dead => dead = true,
            }
        }
        if dead {
            delivery.removed = self.remove(|queue| queue.dead());
        }
        delivery.trimmed = self.ring.push(event);
        Some(delivery)
    }

    /// Removes the subscribers `doomed` picks; returns how many.
    pub(super) fn remove(&mut self, doomed: impl Fn(&Arc<Queue<P, W>>) -> bool) -> usize {
        let before = self.subscribers.len();
        self.subscribers.retain(|queue| !doomed(queue));
        before - self.subscribers.len()
    }
}
