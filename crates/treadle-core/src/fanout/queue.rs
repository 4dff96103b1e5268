//! [`Queue`]: what one subscriber has waiting, shared by the hub and its
//! [`Subscription`](super::Subscription).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Event, Filter};

/// One subscriber's filter and bounded queue.
#[derive(Debug)]
pub(super) struct Queue<P, W> {
    pub(super) filter: Filter,
    /// The most live events held at once.
    capacity: usize,
    /// Whether history was lost before the replayed backlog.
    pub(super) gap: bool,
    state: Mutex<State<P, W>>,
}

#[derive(Debug)]
struct State<P, W> {
    /// Replayed at subscription, handed out before `live`; not bounded by `capacity`.
    backlog: VecDeque<Arc<Event<P>>>,
    live: VecDeque<Arc<Event<P>>>,
    overflowed: bool,
    closed: bool,
    waker: Option<Arc<W>>,
}

/// What [`Queue::push`] did.
pub(super) enum Push<W> {
    /// Queued; the waker to call when the queue was empty before.
    Queued(Option<Arc<W>>),
    /// The queue was full: the subscriber is now overflowed and gets nothing more.
    Overflowed,
    /// The subscriber was already closed or overflowed.
    Dead,
}

impl<P, W> Queue<P, W> {
    pub(super) fn new(
        filter: Filter,
        capacity: usize,
        backlog: Vec<Arc<Event<P>>>,
        gap: bool,
    ) -> Self {
        Self {
            filter,
            capacity,
            gap,
            state: Mutex::new(State {
                backlog: backlog.into(),
                live: VecDeque::new(),
                overflowed: false,
                closed: false,
                waker: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<P, W>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn push(&self, event: &Arc<Event<P>>) -> Push<W> {
        let mut state = self.lock();
        if state.closed || state.overflowed {
            return Push::Dead;
        }
        if state.live.len() >= self.capacity {
            state.overflowed = true;
            return Push::Overflowed;
        }
        let was_empty = state.live.is_empty() && state.backlog.is_empty();
        state.live.push_back(Arc::clone(event));
        Push::Queued(was_empty.then(|| state.waker.clone()).flatten())
    }

    /// Takes up to `max` events, backlog first.
    pub(super) fn drain(&self, max: usize) -> Vec<Arc<Event<P>>> {
        let mut state = self.lock();
        let state = &mut *state;
        let from_backlog = max.min(state.backlog.len());
        let from_live = (max - from_backlog).min(state.live.len());
        let mut out = Vec::with_capacity(from_backlog + from_live);
        out.extend(state.backlog.drain(..from_backlog));
        out.extend(state.live.drain(..from_live));
        out
    }

    pub(super) fn len(&self) -> usize {
        let state = self.lock();
        state.backlog.len() + state.live.len()
    }

    pub(super) fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    pub(super) fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Whether the hub should stop holding this queue.
    pub(super) fn dead(&self) -> bool {
        let state = self.lock();
        state.closed || state.overflowed
    }

    /// Replaces the waker; returns the new one when events are already waiting.
    pub(super) fn set_waker(&self, waker: Option<W>) -> (Option<Arc<W>>, Option<Arc<W>>) {
        let mut state = self.lock();
        let waker = waker.map(Arc::new);
        let old = std::mem::replace(&mut state.waker, waker.clone());
        let empty = state.live.is_empty() && state.backlog.is_empty();
        let waiting = !state.closed && !empty;
        (waiting.then_some(waker).flatten(), old)
    }

    /// Marks the queue closed and hands back what it held, to drop outside the lock.
    pub(super) fn close(&self) -> (Vec<Arc<Event<P>>>, Option<Arc<W>>) {
        let mut state = self.lock();
        state.closed = true;
        let mut held: Vec<_> = state.backlog.drain(..).collect();
        held.extend(state.live.drain(..));
        (held, state.waker.take())
    }
}
