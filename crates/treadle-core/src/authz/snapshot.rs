//! One organization's memberships and ACL entries at one revision, indexed for checks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::role::{OrgRole, TeamRole};
use super::subject::Subject;
use super::Map;
use crate::error::AuthzError;

/// The resource id or action an ACL entry uses to mean "every one".
pub const WILDCARD: &str = "*";

/// An immutable view of one organization: members and their roles, team memberships,
/// and ACL entries, at a revision.
///
/// ACL entries are indexed by (resource, subject), so a check looks at the entries on
/// that resource (and the resource type's `*` entries) for the principal and its teams,
/// never at the rest. Build one with [`Snapshot::builder`].
#[derive(Debug)]
pub struct Snapshot {
    org_id: Box<str>,
    revision: u64,
    members: Map<Box<str>, Member>,
    /// Every subject string an ACL entry names, numbered.
    subjects: Map<Box<str>, u32>,
    /// Resource type → resource id → slot number.
    resources: Map<Box<str>, Slots>,
    /// `slot << 32 | subject` → the entries on that resource for that subject.
    acl: Map<u64, Box<[IndexedEntry]>>,
    entries: usize,
}

/// One ACL entry as handed to [`SnapshotBuilder::acl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclEntry<'a> {
    /// Unique within the snapshot; reported as `decided_by`.
    pub entry_id: &'a str,
    /// The kind of resource, e.g. `workflow`.
    pub resource_type: &'a str,
    /// The resource's id, or `*` for every resource of the type.
    pub resource_id: &'a str,
    /// The action, or `*` for every action.
    pub action: &'a str,
    /// `user:<id>`, `team:<id>` or `api_key:<id>`.
    pub subject: &'a str,
    /// `allow` or `deny`.
    pub effect: &'a str,
}

/// Collects the parts of a [`Snapshot`].
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    org_id: Box<str>,
    revision: u64,
    members: HashMap<Box<str>, OrgRole>,
    seats: HashMap<(Box<str>, Box<str>), TeamRole>,
    acl: Vec<Pending>,
    ids: HashSet<Arc<str>>,
}

#[derive(Debug)]
struct Pending {
    id: Arc<str>,
    resource_type: Box<str>,
    resource_id: Box<str>,
    action: Box<str>,
    subject: Box<str>,
    allow: bool,
}

/// A member of the organization.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) role: OrgRole,
    /// The number of `user:<id>` in [`Snapshot::subjects`], if an ACL entry names it.
    pub(crate) subject: Option<u32>,
    /// Sorted by team id.
    pub(crate) seats: Box<[Seat]>,
}

/// A member's place in one team.
#[derive(Debug)]
pub(crate) struct Seat {
    pub(crate) team: Arc<str>,
    /// The number of `team:<id>` in [`Snapshot::subjects`], if an ACL entry names it.
    pub(crate) subject: Option<u32>,
    pub(crate) role: TeamRole,
}

#[derive(Debug, Default)]
struct Slots {
    ids: Map<Box<str>, u32>,
    any: Option<u32>,
}

/// An ACL entry in the index; resource and subject are implied by its bucket.
#[derive(Debug)]
pub(crate) struct IndexedEntry {
    pub(crate) id: Arc<str>,
    /// `None` for `*`.
    pub(crate) action: Option<Box<str>>,
    pub(crate) allow: bool,
}

impl Snapshot {
    /// An empty builder for `org_id` at `revision`.
    #[must_use]
    pub fn builder(org_id: &str, revision: u64) -> SnapshotBuilder {
        SnapshotBuilder {
            org_id: Box::from(org_id),
            revision,
            ..SnapshotBuilder::default()
        }
    }

    /// The organization this snapshot describes.
    #[must_use]
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// The revision it was built at; a larger revision is newer.
    #[must_use]
    pub const fn revision(&self) -> u64 {
        self.revision
    }

    /// The number of ACL entries.
    #[must_use]
    pub const fn acl_len(&self) -> usize {
        self.entries
    }

    /// The number of organization members.
    #[must_use]
    pub fn member_len(&self) -> usize {
        self.members.len()
    }

    /// The organization role of `user_id`, if they are a member.
    #[must_use]
    pub fn org_role(&self, user_id: &str) -> Option<OrgRole> {
        self.members.get(user_id).map(|m| m.role)
    }

    pub(crate) fn member(&self, user_id: &str) -> Option<&Member> {
        self.members.get(user_id)
    }

    pub(crate) fn subject_number(&self, subject: &str) -> Option<u32> {
        self.subjects.get(subject).copied()
    }

    /// Calls `visit` with every entry on `resource_id` (and on the type's `*`) whose
    /// subject is one of `subjects`.
    pub(crate) fn for_each_entry<'s>(
        &'s self,
        resource_type: &str,
        resource_id: &str,
        subjects: impl Iterator<Item = u32> + Clone,
        mut visit: impl FnMut(&'s IndexedEntry),
    ) {
        let Some(slots) = self.resources.get(resource_type) else {
            return;
        };
        let exact = slots.ids.get(resource_id).copied();
        for slot in [exact, slots.any].into_iter().flatten() {
            for subject in subjects.clone() {
                if let Some(bucket) = self.acl.get(&key(slot, subject)) {
                    bucket.iter().for_each(&mut visit);
                }
            }
        }
    }
}

impl SnapshotBuilder {
    /// Makes `user_id` a member with the organization role named `role`, replacing any
    /// role given before.
    ///
    /// # Errors
    ///
    /// [`AuthzError::UnknownRole`] or [`AuthzError::EmptyField`].
    pub fn member(&mut self, user_id: &str, role: &str) -> Result<&mut Self, AuthzError> {
        non_empty(user_id, "user_id")?;
        self.members.insert(Box::from(user_id), role.parse()?);
        Ok(self)
    }

    /// Puts `user_id` in `team_id` with the team role named `role`. Seats of users who
    /// are not members of the organization are ignored when the snapshot is built.
    ///
    /// # Errors
    ///
    /// [`AuthzError::UnknownRole`] or [`AuthzError::EmptyField`].
    pub fn team_member(
        &mut self,
        team_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<&mut Self, AuthzError> {
        non_empty(team_id, "team_id")?;
        non_empty(user_id, "user_id")?;
        let role = role.parse()?;
        self.seats
            .insert((Box::from(user_id), Box::from(team_id)), role);
        Ok(self)
    }

    /// Adds an ACL entry.
    ///
    /// # Errors
    ///
    /// [`AuthzError::EmptyField`] for an empty field, [`AuthzError::InvalidSubject`],
    /// [`AuthzError::InvalidEffect`], or [`AuthzError::DuplicateEntry`] when the id is
    /// taken.
    pub fn acl(&mut self, entry: AclEntry<'_>) -> Result<&mut Self, AuthzError> {
        non_empty(entry.entry_id, "entry_id")?;
        non_empty(entry.resource_type, "resource_type")?;
        non_empty(entry.resource_id, "resource_id")?;
        non_empty(entry.action, "action")?;
        Subject::parse(entry.subject)?;
        let allow = match entry.effect {
            "allow" => true,
            "deny" => false,
            effect => {
                return Err(AuthzError::InvalidEffect {
                    effect: effect.to_owned(),
                })
            }
        };
        if self.ids.contains(entry.entry_id) {
            return Err(AuthzError::DuplicateEntry {
                entry_id: entry.entry_id.to_owned(),
            });
        }
        let id: Arc<str> = Arc::from(entry.entry_id);
        self.ids.insert(Arc::clone(&id));
        self.acl.push(Pending {
            id,
            resource_type: Box::from(entry.resource_type),
            resource_id: Box::from(entry.resource_id),
            action: Box::from(entry.action),
            subject: Box::from(entry.subject),
            allow,
        });
        Ok(self)
    }

    /// The number of ACL entries added so far.
    #[must_use]
    pub fn acl_len(&self) -> usize {
        self.acl.len()
    }

    /// Indexes everything collected into a [`Snapshot`].
    #[must_use]
    pub fn build(self) -> Snapshot {
        let entries = self.acl.len();
        let mut subjects: Map<Box<str>, u32> = Map::default();
        let mut resources: Map<Box<str>, Slots> = Map::default();
        let mut slot_count = 0_u32;
        let mut next_slot = || {
            slot_count += 1;
            slot_count - 1
        };
        let mut buckets: Map<u64, Vec<IndexedEntry>> = Map::default();
        for pending in self.acl {
            let count = u32::try_from(subjects.len()).unwrap_or(u32::MAX);
            let subject = *subjects.entry(pending.subject).or_insert(count);
            let slots = resources.entry(pending.resource_type).or_default();
            let slot = if &*pending.resource_id == WILDCARD {
                *slots.any.get_or_insert_with(&mut next_slot)
            } else {
                *slots
                    .ids
                    .entry(pending.resource_id)
                    .or_insert_with(&mut next_slot)
            };
            let action = (&*pending.action != WILDCARD).then_some(pending.action);
            buckets
                .entry(key(slot, subject))
                .or_default()
                .push(IndexedEntry {
                    id: pending.id,
                    action,
                    allow: pending.allow,
                });
        }

        let mut seats: Map<Box<str>, Vec<Seat>> = Map::default();
        for ((user, team), role) in self.seats {
            if self.members.contains_key(&user) {
                let subject = subjects.get(&*format!("team:{team}")).copied();
                seats.entry(user).or_default().push(Seat {
                    team: Arc::from(team),
                    subject,
                    role,
                });
            }
        }
        let members = self
            .members
            .into_iter()
            .map(|(user, role)| {
                let mut own = seats.remove(&user).unwrap_or_default();
                own.sort_unstable_by(|a, b| a.team.cmp(&b.team));
                let member = Member {
                    role,
                    subject: subjects.get(&*format!("user:{user}")).copied(),
                    seats: own.into_boxed_slice(),
                };
                (user, member)
            })
            .collect();

        Snapshot {
            org_id: self.org_id,
            revision: self.revision,
            members,
            subjects,
            resources,
            acl: buckets
                .into_iter()
                .map(|(k, v)| (k, v.into_boxed_slice()))
                .collect(),
            entries,
        }
    }
}

impl Member {
    /// The member's seat in `team_id`, if they have one.
    pub(crate) fn seat(&self, team_id: &str) -> Option<&Seat> {
        self.seats
            .binary_search_by(|seat| (*seat.team).cmp(team_id))
            .ok()
            .map(|at| &self.seats[at])
    }
}

impl IndexedEntry {
    /// Whether the entry speaks about `action`.
    pub(crate) fn covers(&self, action: &str) -> bool {
        self.action.as_deref().is_none_or(|a| a == action)
    }
}

const fn key(slot: u32, subject: u32) -> u64 {
    (slot as u64) << 32 | subject as u64
}

fn non_empty(value: &str, field: &'static str) -> Result<(), AuthzError> {
    if value.is_empty() {
        Err(AuthzError::EmptyField { field })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(id: &'a str, subject: &'a str, effect: &'a str) -> AclEntry<'a> {
        AclEntry {
            entry_id: id,
            resource_type: "doc",
            resource_id: "d1",
            action: "read",
            subject,
            effect,
        }
    }

    #[test]
    fn builder_validates() {
        let mut b = Snapshot::builder("o", 1);
        assert!(b.member("u", "boss").is_err());
        assert!(b.member("", "admin").is_err());
        assert!(b.team_member("t", "u", "owner").is_err());
        b.acl(entry("e1", "user:u", "allow")).unwrap();
        assert_eq!(
            b.acl(entry("e1", "user:v", "deny")).err(),
            Some(AuthzError::DuplicateEntry {
                entry_id: "e1".into()
            })
        );
        assert!(matches!(
            b.acl(entry("e2", "u", "deny")),
            Err(AuthzError::InvalidSubject { .. })
        ));
        assert!(matches!(
            b.acl(entry("e2", "user:u", "maybe")),
            Err(AuthzError::InvalidEffect { .. })
        ));
        let empty = AclEntry {
            resource_id: "",
            ..entry("e2", "user:u", "deny")
        };
        assert_eq!(
            b.acl(empty).err(),
            Some(AuthzError::EmptyField {
                field: "resource_id"
            })
        );
        assert_eq!(b.build().acl_len(), 1);
    }

    #[test]
    fn indexes_members_and_seats() {
        let mut b = Snapshot::builder("o", 9);
        b.member("u", "member")
            .unwrap()
            .member("v", "viewer")
            .unwrap();
        b.team_member("t2", "u", "admin").unwrap();
        b.team_member("t1", "u", "viewer").unwrap();
        b.team_member("t1", "outsider", "admin").unwrap();
        b.acl(entry("e1", "team:t2", "allow")).unwrap();
        let s = b.build();
        assert_eq!((s.org_id(), s.revision(), s.member_len()), ("o", 9, 2));
        let u = s.member("u").unwrap();
        let teams: Vec<&str> = u.seats.iter().map(|seat| &*seat.team).collect();
        assert_eq!(teams, ["t1", "t2"]);
        assert_eq!(u.seat("t2").unwrap().role, TeamRole::Admin);
        assert!(u.seat("t2").unwrap().subject.is_some());
        assert!(u.seat("t1").unwrap().subject.is_none());
        assert!(u.seat("t3").is_none());
        assert!(s.member("outsider").is_none());
        assert_eq!(s.org_role("v"), Some(OrgRole::Viewer));
    }
}
