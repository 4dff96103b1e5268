//! [`Authz`]: the policy plus the current snapshot of every loaded organization.

use std::sync::{Arc, PoisonError, RwLock};

use super::check::{Item, Resource};
use super::decision::{Decision, Reason};
use super::policy::Policy;
use super::snapshot::Snapshot;
use super::subject::Subject;
use super::Map;
use crate::error::AuthzError;

/// The evaluator: one [`Policy`] and, per organization, the newest [`Snapshot`] loaded.
///
/// Snapshots are immutable and shared as `Arc`s. Loading swaps the organization's
/// `Arc` under a write lock held only for the swap; a check clones the `Arc` under a read
/// lock and decides without any lock, so a check sees one whole snapshot, never a mix.
#[derive(Debug)]
pub struct Authz {
    policy: Policy,
    orgs: RwLock<Map<Box<str>, Arc<Snapshot>>>,
}

impl Authz {
    /// An evaluator with no organization loaded.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            orgs: RwLock::default(),
        }
    }

    /// The policy roles are judged by.
    #[must_use]
    pub const fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Installs `snapshot` unless one with the same or a newer revision is already loaded
    /// for its organization. Returns whether it was installed.
    pub fn load(&self, snapshot: Arc<Snapshot>) -> bool {
        let mut orgs = self.orgs.write().unwrap_or_else(PoisonError::into_inner);
        match orgs.get_mut(snapshot.org_id()) {
            Some(current) if current.revision() >= snapshot.revision() => false,
            Some(current) => {
                *current = snapshot;
                true
            }
            None => {
                orgs.insert(Box::from(snapshot.org_id()), snapshot);
                true
            }
        }
    }

    /// The revision loaded for `org_id`, if any.
    #[must_use]
    pub fn revision(&self, org_id: &str) -> Option<u64> {
        self.snapshot(org_id).map(|s| s.revision())
    }

    /// Forgets `org_id`'s snapshot; the next load installs whatever revision it brings.
    /// Returns whether one was loaded.
    pub fn remove(&self, org_id: &str) -> bool {
        let mut orgs = self.orgs.write().unwrap_or_else(PoisonError::into_inner);
        orgs.remove(org_id).is_some()
    }

    /// The number of organizations loaded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.orgs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no organization is loaded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The snapshot loaded for `org_id`, if any.
    #[must_use]
    pub fn snapshot(&self, org_id: &str) -> Option<Arc<Snapshot>> {
        let orgs = self.orgs.read().unwrap_or_else(PoisonError::into_inner);
        orgs.get(org_id).cloned()
    }

    /// Decides `item` in `org_id` (see [`Snapshot::check`]); `unknown_organization` if
    /// no snapshot is loaded.
    ///
    /// # Errors
    ///
    /// [`AuthzError::InvalidSubject`] if the subject does not parse, loaded or not.
    pub fn check(
        &self,
        org_id: &str,
        item: &Item<'_>,
        scopes: &[&str],
    ) -> Result<Decision, AuthzError> {
        self.check_excluding(org_id, item, scopes, None)
    }

    /// Decides `item` in `org_id` as if the ACL entry `excluded` were not there (see
    /// [`Snapshot::check_excluding`]); `unknown_organization` if no snapshot is loaded.
    ///
    /// # Errors
    ///
    /// [`AuthzError::InvalidSubject`] if the subject does not parse, loaded or not.
    pub fn check_excluding(
        &self,
        org_id: &str,
        item: &Item<'_>,
        scopes: &[&str],
        excluded: Option<&str>,
    ) -> Result<Decision, AuthzError> {
        match self.snapshot(org_id) {
            Some(snapshot) => snapshot.check_excluding(&self.policy, item, scopes, excluded),
            None => {
                Subject::parse(item.subject).map(|_| Decision::deny(Reason::UnknownOrganization))
            }
        }
    }

    /// Decides every item against one snapshot of `org_id`, in order (see
    /// [`Snapshot::check_batch`]). With no snapshot loaded, readable items get
    /// `unknown_organization`.
    #[must_use]
    pub fn check_batch(
        &self,
        org_id: &str,
        items: &[Option<Item<'_>>],
        scopes: &[&str],
    ) -> Vec<Decision> {
        match self.snapshot(org_id) {
            Some(snapshot) => snapshot.check_batch(&self.policy, items, scopes),
            None => items
                .iter()
                .map(|item| match item.map(|i| Subject::parse(i.subject)) {
                    Some(Ok(_)) => Decision::deny(Reason::UnknownOrganization),
                    _ => Decision::deny(Reason::InvalidItem),
                })
                .collect(),
        }
    }

    /// The principal's effective permissions in `org_id` (see
    /// [`Snapshot::permissions`]); empty if no snapshot is loaded.
    ///
    /// # Errors
    ///
    /// [`AuthzError::InvalidSubject`] if the subject does not parse, loaded or not.
    pub fn permissions(
        &self,
        org_id: &str,
        subject: &str,
        resource: &Resource<'_>,
        scopes: &[&str],
    ) -> Result<Vec<&str>, AuthzError> {
        match self.snapshot(org_id) {
            Some(snapshot) => snapshot.permissions(&self.policy, subject, resource, scopes),
            None => Subject::parse(subject).map(|_| Vec::new()),
        }
    }
}
