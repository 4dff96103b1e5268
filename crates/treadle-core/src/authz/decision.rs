//! What a check answers: allowed or not, why, and which rule decided.

use std::fmt;
use std::sync::Arc;

use super::role::{OrgRole, TeamRole};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the action is allowed.
    pub allowed: bool,
    /// Why, as a stable code.
    pub reason: Reason,
    /// The ACL entry, role or scope that decided; `None` when nothing did.
    pub rule: Option<Rule>,
}

/// Why a [`Decision`] came out the way it did. [`as_str`](Self::as_str) is the stable
/// snake_case code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// A matching ACL entry denies it (deny beats everything).
    AclDeny,
    /// A matching ACL entry allows it, and none denies it.
    AclAllow,
    /// The user's role in the resource's team grants it.
    TeamRole,
    /// The user's organization role grants it.
    OrgRole,
    /// One of the API key's scopes grants it.
    KeyScope,
    /// The user is not a member of the organization.
    NotMember,
    /// Nothing grants it.
    NoGrant,
    /// No snapshot is loaded for the organization.
    UnknownOrganization,
    /// A batch item could not be read (e.g. a subject without a `kind:` prefix).
    InvalidItem,
}

impl Reason {
    /// The stable code: `acl_deny`, `acl_allow`, `team_role`, `org_role`, `key_scope`,
    /// `not_member`, `no_grant`, `unknown_organization` or `invalid_item`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AclDeny => "acl_deny",
            Self::AclAllow => "acl_allow",
            Self::TeamRole => "team_role",
            Self::OrgRole => "org_role",
            Self::KeyScope => "key_scope",
            Self::NotMember => "not_member",
            Self::NoGrant => "no_grant",
            Self::UnknownOrganization => "unknown_organization",
            Self::InvalidItem => "invalid_item",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule that decided. Its `Display` is the `decided_by` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Rule {
    /// An ACL entry, shown as its id.
    Acl(Arc<str>),
    /// An organization role, shown as `org_role:<role>`.
    OrgRole(OrgRole),
    /// A team role, shown as `team_role:<team_id>:<role>`.
    TeamRole {
        /// The team's id.
        team: Arc<str>,
        /// The user's role in it.
        role: TeamRole,
    },
    /// An API key scope, shown as `scope:<scope>`.
    Scope(Box<str>),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Acl(id) => f.write_str(id),
            Self::OrgRole(role) => f.write_str(role.label()),
            Self::TeamRole { team, role } => write!(f, "team_role:{team}:{role}"),
            Self::Scope(scope) => write!(f, "scope:{scope}"),
        }
    }
}

impl Decision {
    pub(crate) const fn deny(reason: Reason) -> Self {
        Self {
            allowed: false,
            reason,
            rule: None,
        }
    }

    pub(crate) const fn decided(allowed: bool, reason: Reason, rule: Rule) -> Self {
        Self {
            allowed,
            reason,
            rule: Some(rule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(Rule::Acl(Arc::from("acl_7")).to_string(), "acl_7");
        assert_eq!(Rule::OrgRole(OrgRole::Admin).to_string(), "org_role:admin");
        let team = Rule::TeamRole {
            team: Arc::from("t_1"),
            role: TeamRole::Member,
        };
        assert_eq!(team.to_string(), "team_role:t_1:member");
        assert_eq!(Rule::Scope(Box::from("*")).to_string(), "scope:*");
        assert_eq!(
            Reason::UnknownOrganization.to_string(),
            "unknown_organization"
        );
    }
}
