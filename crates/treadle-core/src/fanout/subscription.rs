//! [`Subscription`]: a subscriber's end of the hub.

use std::sync::{Arc, Mutex, PoisonError};

use super::org::Org;
use super::queue::Queue;
use super::stats::Counters;
use super::Event;

/// One subscriber: a bounded queue the hub fills with the events that pass its filter.
///
/// Take events with [`drain`](Self::drain). To wait without polling, install a waker
/// with [`set_waker`](Self::set_waker): the hub hands it back from
/// [`publish`](super::Hub::publish) each time the queue goes from empty to non-empty.
/// After a wake, drain until the queue is empty before waiting again, or no wake will
/// come.
///
/// Dropping the subscription [closes](Self::close) it.
#[derive(Debug)]
pub struct Subscription<P, W> {
    pub(super) queue: Arc<Queue<P, W>>,
    pub(super) org: Arc<Mutex<Org<P, W>>>,
    pub(super) org_id: Box<str>,
    pub(super) counters: Arc<Counters>,
}

impl<P, W> Subscription<P, W> {
    /// Takes up to `max` queued events, oldest first, without blocking.
    #[must_use]
    pub fn drain(&self, max: usize) -> Vec<Arc<Event<P>>> {
        self.queue.drain(max)
    }

    /// The number of events waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no event is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue filled up: the events already queued can still be drained, but
    /// no more will come. Tell the client and let it resume from the last event it got.
    #[must_use]
    pub fn overflowed(&self) -> bool {
        self.queue.overflowed()
    }

    /// Whether [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.queue.closed()
    }

    /// Whether history after the id the subscription resumed from was lost before it
    /// was made (see [`Hub::subscribe`](super::Hub::subscribe)); always `false` without
    /// one.
    #[must_use]
    pub fn gap(&self) -> bool {
        self.queue.gap
    }

    /// The organization subscribed to.
    #[must_use]
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// Installs `waker` (or removes it with `None`), returning it when events are
    /// already waiting, so the caller can wake the consumer at once.
    pub fn set_waker(&self, waker: Option<W>) -> Option<Arc<W>> {
        let (wake_now, old) = self.queue.set_waker(waker);
        drop(old);
        wake_now
    }

    /// Stops the subscription: the hub forgets it, queued events are dropped and the
    /// waker is released. Closing twice does nothing.
    pub fn close(&self) {
        let held = self.queue.close();
        let removed = self
            .org
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(|queue| Arc::ptr_eq(queue, &self.queue));
        self.counters.unsubscribed(removed);
        drop(held);
    }
}

impl<P, W> Drop for Subscription<P, W> {
    fn drop(&mut self) {
        self.close();
    }
}
