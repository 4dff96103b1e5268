//! [`Stats`]: what a hub holds and has done.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// A hub's counts, as [`Hub::stats`](super::Hub::stats) reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Organizations with a ring or subscribers.
    pub orgs: usize,
    /// Live subscriptions: not closed, not overflowed.
    pub subscribers: usize,
    /// Events held in all replay rings.
    pub ring_events: usize,
    /// Events accepted by [`publish`](super::Hub::publish).
    pub published: u64,
    /// Events queued for subscribers, one per subscriber.
    pub queued: u64,
    /// Subscriptions that overflowed.
    pub overflowed: u64,
    /// Publishes ignored because their id was not above the organization's last.
    pub stale: u64,
}

/// The running counters, shared by the hub and its subscriptions.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) subscribers: AtomicUsize,
    pub(super) published: AtomicU64,
    pub(super) queued: AtomicU64,
    pub(super) overflowed: AtomicU64,
    pub(super) stale: AtomicU64,
}

impl Counters {
    pub(super) fn add(counter: &AtomicU64, n: usize) {
        if n > 0 {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    pub(super) fn unsubscribed(&self, n: usize) {
        if n > 0 {
            self.subscribers.fetch_sub(n, Ordering::Relaxed);
        }
    }
}
