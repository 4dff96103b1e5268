//! [`Ring`]: one organization's replay history.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Event, EventId, Filter};

/// The newest `capacity` events of one organization, oldest first, and the `floor`: the
/// ring holds every event of the organization with an id above it.
#[derive(Debug)]
pub(super) struct Ring<P> {
    events: VecDeque<Arc<Event<P>>>,
    capacity: usize,
    floor: EventId,
}

impl<P> Ring<P> {
    /// An empty ring that knows every event after `horizon`.
    pub(super) fn new(capacity: usize, horizon: EventId) -> Self {
        Self {
            events: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            floor: horizon,
        }
    }

    /// Appends `event`, whose id must be above every id in the ring; returns the event
    /// that made room, if one did.
    pub(super) fn push(&mut self, event: Arc<Event<P>>) -> Option<Arc<Event<P>>> {
        self.events.push_back(event);
        if self.events.len() <= self.capacity {
            return None;
        }
        let dropped = self.events.pop_front()?;
        self.floor = self.floor.max(dropped.id());
        Some(dropped)
    }

    /// The events after `after` that pass `filter`, oldest first, and whether history
    /// after `after` was lost (trimmed, or before the horizon).
    pub(super) fn after(&self, after: EventId, filter: &Filter) -> (Vec<Arc<Event<P>>>, bool) {
        let start = self.events.partition_point(|e| e.id() <= after);
        let events = self
            .events
            .range(start..)
            .filter(|e| filter.matches(e))
            .cloned()
            .collect();
        (events, after < self.floor)
    }

    /// The number of events held.
    pub(super) fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring_of(capacity: usize, ids: std::ops::Range<u64>) -> Ring<()> {
        let mut ring = Ring::new(capacity, EventId::ZERO);
        for ms in ids {
            ring.push(Arc::new(Event::new(
                EventId::new(ms, 0),
                "o",
                "t",
                None,
                None,
                (),
            )));
        }
        ring
    }

    fn ids(events: &[Arc<Event<()>>]) -> Vec<u64> {
        events.iter().map(|e| e.id().ms).collect()
    }

    #[test]
    fn bounded_with_a_floor() {
        let ring = ring_of(3, 1..6);
        assert_eq!(ring.len(), 3);
        let (events, gap) = ring.after(EventId::new(3, 0), &Filter::all());
        assert_eq!((ids(&events), gap), (vec![4, 5], false));
        let (events, gap) = ring.after(EventId::new(2, 0), &Filter::all());
        assert_eq!((ids(&events), gap), (vec![3, 4, 5], false));
        let (events, gap) = ring.after(EventId::new(1, 7), &Filter::all());
        assert_eq!((ids(&events), gap), (vec![3, 4, 5], true));
        let (events, gap) = ring.after(EventId::new(5, 0), &Filter::all());
        assert_eq!((ids(&events), gap), (vec![], false));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let ring = ring_of(0, 1..3);
        assert_eq!(ring.len(), 0);
        assert!(ring.after(EventId::new(1, 0), &Filter::all()).1);
        assert!(!ring.after(EventId::new(2, 0), &Filter::all()).1);
    }
}
