//! Deciding one check, a batch, or a principal's effective permissions on one snapshot.

use super::decision::{Decision, Reason, Rule};
use super::policy::{Policy, ANY_ACTION};
use super::role::OrgRole;
use super::snapshot::{IndexedEntry, Member, Snapshot};
use super::subject::Subject;
use crate::error::AuthzError;

/// The resource a check is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The kind of resource, e.g. `workflow`.
    pub resource_type: &'a str,
    /// The resource's id.
    pub resource_id: &'a str,
    /// The team the resource belongs to, if any: the principal's role in it may grant.
    pub team_id: Option<&'a str>,
}

/// One question: may `subject` perform `action` on `resource`?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// `user:<id>`, `team:<id>` or `api_key:<id>`.
    pub subject: &'a str,
    /// The action, e.g. `jobs.write`.
    pub action: &'a str,
    /// What it is done to.
    pub resource: Resource<'a>,
}

/// The principal of a check, resolved against the snapshot.
#[derive(Clone, Copy)]
enum Principal<'s> {
    Member(&'s Member),
    /// A team or an API key: ACL entries on itself only, no roles.
    Other {
        subject: Option<u32>,
        key: bool,
    },
}

/// The deciding ACL entries so far: the smallest id among matching denies and allows.
#[derive(Default)]
struct Verdict<'s> {
    deny: Option<&'s IndexedEntry>,
    allow: Option<&'s IndexedEntry>,
}

impl Snapshot {
    /// Decides `item`. `scopes` are the API key's scopes, read only when the subject is
    /// an `api_key`.
    ///
    /// Precedence: a non-member user is refused (`not_member`); then a matching deny ACL
    /// entry, then a matching allow entry (the smallest entry id when several match);
    /// then the user's team role (when `team_id` names a team they are in), then their
    /// organization role; for an API key, the first scope that is `*` or the action.
    /// For an owner, deny entries do not apply to the policy's owner-shielded actions.
    ///
    /// # Errors
    ///
    /// [`AuthzError::InvalidSubject`] if the subject does not parse.
    pub fn check(
        &self,
        policy: &Policy,
        item: &Item<'_>,
        scopes: &[&str],
    ) -> Result<Decision, AuthzError> {
        self.check_excluding(policy, item, scopes, None)
    }

    /// Decides `item` as [`check`](Self::check) would were the ACL entry with id
    /// `excluded` not there: what the principal would hold without it.
    ///
    /// # Errors
    ///
    /// [`AuthzError::InvalidSubject`] if the subject does not parse.
    pub fn check_excluding(
        &self,
        policy: &Policy,
        item: &Item<'_>,
        scopes: &[&str],
        excluded: Option<&str>,
    ) -> Result<Decision, AuthzError> {
        let subject = Subject::parse(item.subject)?;
        let Some(principal) = self.principal(subject, item.subject) else {
            return Ok(Decision::deny(Reason::NotMember));
        };
        let at = policy.resolve(item.action);
        let shielded = principal.is_owner() && policy.shields(at);
        let mut verdict = Verdict::default();
        self.for_each_entry(
            item.resource.resource_type,
            item.resource.resource_id,
            principal.subjects(),
            |entry| {
                if excluded != Some(&*entry.id) {
                    verdict.consider(entry, item.action, shielded);
                }
            },
        );
        Ok(verdict
            .decision()
            .unwrap_or_else(|| grant(policy, principal, item.action, at, &item.resource, scopes)))
    }

    /// Decides every item against this one snapshot, in order. An item that is `None`
    /// (the caller could not read it) or whose subject does not parse gets
    /// `invalid_item`.
    #[must_use]
    pub fn check_batch(
        &self,
        policy: &Policy,
        items: &[Option<Item<'_>>],
        scopes: &[&str],
    ) -> Vec<Decision> {
        items
            .iter()
            .map(|item| {
                item.as_ref()
                    .and_then(|item| self.check(policy, item, scopes).ok())
                    .unwrap_or(Decision::deny(Reason::InvalidItem))
            })
            .collect()
    }

    /// Every action in the policy's catalogue that `subject` may perform on `resource`,
    /// in catalogue order: exactly the actions [`check`](Self::check) would allow, found
    /// with one pass over the ACL index.
    ///
    /// # Errors
    ///
    /// [`AuthzError::InvalidSubject`] if the subject does not parse.
    pub fn permissions<'p>(
        &self,
        policy: &'p Policy,
        subject: &str,
        resource: &Resource<'_>,
        scopes: &[&str],
    ) -> Result<Vec<&'p str>, AuthzError> {
        let parsed = Subject::parse(subject)?;
        let Some(principal) = self.principal(parsed, subject) else {
            return Ok(Vec::new());
        };
        let mut matched = Vec::new();
        self.for_each_entry(
            resource.resource_type,
            resource.resource_id,
            principal.subjects(),
            |entry| matched.push(entry),
        );
        Ok(policy
            .actions()
            .iter()
            .enumerate()
            .filter(|&(at, action)| {
                let shielded = principal.is_owner() && policy.shields(Some(at));
                let mut verdict = Verdict::default();
                for entry in &matched {
                    verdict.consider(entry, action, shielded);
                }
                verdict.decision().map_or_else(
                    || grant(policy, principal, action, Some(at), resource, scopes).allowed,
                    |decision| decision.allowed,
                )
            })
            .map(|(_, action)| &**action)
            .collect())
    }

    /// `None` for a user who is not a member.
    fn principal(&self, subject: Subject<'_>, raw: &str) -> Option<Principal<'_>> {
        match subject {
            Subject::User(id) => self.member(id).map(Principal::Member),
            Subject::Team(_) | Subject::ApiKey(_) => Some(Principal::Other {
                subject: self.subject_number(raw),
                key: matches!(subject, Subject::ApiKey(_)),
            }),
        }
    }
}

impl<'s> Principal<'s> {
    /// Whether the principal is a user with the organization's owner role.
    fn is_owner(self) -> bool {
        matches!(self, Self::Member(m) if m.role == OrgRole::Owner)
    }

    /// The subject numbers whose ACL entries apply: the principal's own and, for a user,
    /// those of their teams.
    fn subjects(self) -> impl Iterator<Item = u32> + Clone + 's {
        let (own, seats) = match self {
            Self::Member(m) => (m.subject, &*m.seats),
            Self::Other { subject, .. } => (subject, &[][..]),
        };
        own.into_iter()
            .chain(seats.iter().filter_map(|seat| seat.subject))
    }
}

impl<'s> Verdict<'s> {
    /// `shielded`: the principal is an owner and the action one no deny takes from them.
    fn consider(&mut self, entry: &'s IndexedEntry, action: &str, shielded: bool) {
        if !entry.covers(action) || (shielded && !entry.allow) {
            return;
        }
        let best = if entry.allow {
            &mut self.allow
        } else {
            &mut self.deny
        };
        if best.is_none_or(|b| entry.id < b.id) {
            *best = Some(entry);
        }
    }

    fn decision(&self) -> Option<Decision> {
        if let Some(entry) = self.deny {
            Some(Decision::decided(
                false,
                Reason::AclDeny,
                Rule::Acl(entry.id.clone()),
            ))
        } else {
            self.allow
                .map(|entry| Decision::decided(true, Reason::AclAllow, Rule::Acl(entry.id.clone())))
        }
    }
}

/// The role or scope step, once no ACL entry has decided. `at` is the action's index in
/// the policy catalogue.
fn grant(
    policy: &Policy,
    principal: Principal<'_>,
    action: &str,
    at: Option<usize>,
    resource: &Resource<'_>,
    scopes: &[&str],
) -> Decision {
    match principal {
        Principal::Member(member) => {
            if let Some(seat) = resource.team_id.and_then(|team| member.seat(team)) {
                if policy.team_grants(seat.role).allows(at) {
                    let rule = Rule::TeamRole {
                        team: seat.team.clone(),
                        role: seat.role,
                    };
                    return Decision::decided(true, Reason::TeamRole, rule);
                }
            }
            if policy.org_grants(member.role).allows(at) {
                return Decision::decided(true, Reason::OrgRole, Rule::OrgRole(member.role));
            }
            Decision::deny(Reason::NoGrant)
        }
        Principal::Other { key: true, .. } => scopes
            .iter()
            .find(|&&scope| scope == ANY_ACTION || scope == action)
            .map_or(Decision::deny(Reason::NoGrant), |scope| {
                Decision::decided(true, Reason::KeyScope, Rule::Scope(Box::from(*scope)))
            }),
        Principal::Other { key: false, .. } => Decision::deny(Reason::NoGrant),
    }
}
