//! [`Filter`]: which events a subscriber wants.

use super::Event;
use crate::error::FanoutError;

/// Which events of an organization a subscriber wants: by topic, job and run.
///
/// A topic pattern is a topic (`job.completed`, matched exactly), a prefix ending in
/// `.*` (`job.*` matches `job.completed` and `job.step.done`, not `job`), or `*` (every
/// topic). An event matches when its topic matches any pattern (or no patterns were
/// given), and its job and run equal the filter's where the filter names them: an event
/// without a job never matches a filter on a job.
///
/// ```
/// use treadle_core::fanout::{Event, EventId, Filter};
///
/// let filter = Filter::new(Some(["job.*", "key.revoked"]), Some("j_1"), None)?;
/// let event = |topic, job| Event::new(EventId::ZERO, "org", topic, job, None, ());
/// assert!(filter.matches(&event("job.completed", Some("j_1"))));
/// assert!(!filter.matches(&event("job.completed", Some("j_2"))));
/// assert!(!filter.matches(&event("key.revoked", None)));
/// assert!(Filter::all().matches(&event("anything", None)));
/// # Ok::<(), treadle_core::FanoutError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `None` for every topic.
    topics: Option<Box<[Topic]>>,
    job_id: Option<Box<str>>,
    run_id: Option<Box<str>>,
}

#[derive(Debug, Clone)]
enum Topic {
    Any,
    Exact(Box<str>),
    /// The pattern without its `*`, so it ends in `.`.
    Prefix(Box<str>),
}

impl Filter {
    /// A filter on `topics` (`None` for every topic), `job_id` and `run_id`.
    ///
    /// # Errors
    ///
    /// [`FanoutError::InvalidTopic`] for a malformed pattern, [`FanoutError::NoTopics`]
    /// for `Some` of no topics.
    pub fn new<I, S>(
        topics: Option<I>,
        job_id: Option<&str>,
        run_id: Option<&str>,
    ) -> Result<Self, FanoutError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let topics = match topics {
            None => None,
            Some(patterns) => {
                let topics = patterns
                    .into_iter()
                    .map(|p| Topic::parse(p.as_ref()))
                    .collect::<Result<Box<[Topic]>, _>>()?;
                if topics.is_empty() {
                    return Err(FanoutError::NoTopics);
                }
                Some(topics)
            }
        };
        Ok(Self {
            topics,
            job_id: job_id.map(Into::into),
            run_id: run_id.map(Into::into),
        })
    }

    /// The filter that matches every event.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Whether `event` passes the filter.
    #[must_use]
    pub fn matches<P>(&self, event: &Event<P>) -> bool {
        let wanted = |want: Option<&str>, have: Option<&str>| want.is_none_or(|w| have == Some(w));
        wanted(self.job_id.as_deref(), event.job_id())
            && wanted(self.run_id.as_deref(), event.run_id())
            && self
                .topics
                .as_deref()
                .is_none_or(|topics| topics.iter().any(|t| t.matches(event.topic())))
    }
}

impl Topic {
    fn parse(pattern: &str) -> Result<Self, FanoutError> {
        let invalid = || FanoutError::InvalidTopic {
            pattern: pattern.into(),
        };
        if pattern == "*" {
            return Ok(Self::Any);
        }
        match pattern.strip_suffix('*') {
            _ if pattern.is_empty() => Err(invalid()),
            Some(prefix) if prefix.len() > 1 && prefix.ends_with('.') && !prefix.contains('*') => {
                Ok(Self::Prefix(prefix.into()))
            }
            None if !pattern.contains('*') => Ok(Self::Exact(pattern.into())),
            _ => Err(invalid()),
        }
    }

    fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(exact) => topic == &**exact,
            Self::Prefix(prefix) => topic.len() > prefix.len() && topic.starts_with(&**prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::EventId;

    fn topic(filter: &Filter, topic: &str) -> bool {
        filter.matches(&Event::new(EventId::ZERO, "o", topic, None, None, ()))
    }

    #[test]
    fn patterns() {
        let f = Filter::new(Some(["job.*", "audit"]), None, None).unwrap();
        assert!(topic(&f, "job.created"));
        assert!(topic(&f, "job.step.done"));
        assert!(topic(&f, "audit"));
        assert!(!topic(&f, "job"));
        assert!(!topic(&f, "job."));
        assert!(!topic(&f, "jobs.created"));
        assert!(!topic(&f, "audit.x"));
        assert!(topic(&Filter::new(Some(["*"]), None, None).unwrap(), "x"));
        for bad in ["", "*.job", "job*", "job.*.x", ".*", "a.**", "j*b"] {
            assert_eq!(
                Filter::new(Some([bad]), None, None).unwrap_err(),
                FanoutError::InvalidTopic {
                    pattern: bad.into()
                },
                "{bad:?}"
            );
        }
        assert_eq!(
            Filter::new(Some(Vec::<String>::new()), None, None).unwrap_err(),
            FanoutError::NoTopics
        );
    }

    #[test]
    fn job_and_run() {
        let f = Filter::new(None::<[&str; 0]>, Some("j"), Some("r")).unwrap();
        let event = |job, run| Event::new(EventId::ZERO, "o", "t", job, run, ());
        assert!(f.matches(&event(Some("j"), Some("r"))));
        assert!(!f.matches(&event(Some("j"), None)));
        assert!(!f.matches(&event(None, Some("r"))));
        assert!(!f.matches(&event(Some("j"), Some("r2"))));
    }
}
