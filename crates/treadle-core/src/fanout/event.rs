//! [`Event`]: one live event as the hub stores it.

use super::EventId;

/// One event: its stream id, the organization it belongs to, its topic, the job and run
/// it concerns (if any), and a payload the hub never looks into.
///
/// `P` is whatever the caller hands to subscribers, typically the already-encoded JSON.
#[derive(Debug)]
pub struct Event<P> {
    id: EventId,
    org_id: Box<str>,
    topic: Box<str>,
    job_id: Option<Box<str>>,
    run_id: Option<Box<str>>,
    payload: P,
}

impl<P> Event<P> {
    /// An event.
    #[must_use]
    pub fn new(
        id: EventId,
        org_id: &str,
        topic: &str,
        job_id: Option<&str>,
        run_id: Option<&str>,
        payload: P,
    ) -> Self {
        Self {
            id,
            org_id: org_id.into(),
            topic: topic.into(),
            job_id: job_id.map(Into::into),
            run_id: run_id.map(Into::into),
            payload,
        }
    }

    /// Its stream id.
    #[must_use]
    pub const fn id(&self) -> EventId {
        self.id
    }

    /// The organization it belongs to.
    #[must_use]
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// Its topic, such as `job.completed`.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The job it concerns, if any.
    #[must_use]
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.as_deref()
    }

    /// The workflow run it concerns, if any.
    #[must_use]
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The payload.
    #[must_use]
    pub const fn payload(&self) -> &P {
        &self.payload
    }
}
