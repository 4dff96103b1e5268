//! Fan-out: the in-process hub that hands live events to subscribers.
//!
//! Every server process relays the event stream into one [`Hub`]. Per organization, the
//! hub keeps a bounded replay ring of the newest events and a list of subscribers, each
//! with a [`Filter`] (topics, job, run) and a bounded queue:
//!
//! - [`Hub::publish`] appends the event to its organization's ring (dropping the oldest)
//!   and queues it for each matching subscriber. A subscriber whose queue is full is
//!   marked overflowed and gets nothing more: a slow consumer never slows the publisher
//!   or the other subscribers.
//! - [`Hub::replay`] and [`Hub::subscribe`] with an id to resume after hand back the
//!   ring's later events and a `gap` flag when history after that id was trimmed.
//! - An organization's subscribers only ever see that organization's events: the
//!   organization is the key of everything the hub holds.
//!
//! Event ids are Redis stream ids ([`EventId`]), compared as numbers.
//!
//! ```
//! use treadle_core::fanout::{Event, EventId, Filter, Hub};
//!
//! let hub: Hub<&str> = Hub::new(3, 100, EventId::ZERO)?;
//! for ms in 1..=5 {
//!     hub.publish(Event::new(EventId::new(ms, 0), "org_1", "job.created", None, None, "{}"));
//! }
//! // The ring holds 3, 4 and 5: resuming after 3 is complete, after 1 it is not.
//! let resumed = hub.subscribe("org_1", Filter::all(), Some(EventId::new(3, 0)));
//! assert_eq!((resumed.len(), resumed.gap()), (2, false));
//! assert!(hub.replay("org_1", EventId::new(1, 0), &Filter::all()).gap);
//! # Ok::<(), treadle_core::FanoutError>(())
//! ```

mod event;
mod event_id;
mod filter;
mod hub;
mod org;
mod queue;
mod ring;
mod stats;
mod subscription;

pub use event::Event;
pub use event_id::EventId;
pub use filter::Filter;
pub use hub::{Hub, Published, Replay};
pub use stats::Stats;
pub use subscription::Subscription;
