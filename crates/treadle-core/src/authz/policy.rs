//! Which actions each role grants.

use super::role::{OrgRole, TeamRole};
use super::Map;
use crate::error::AuthzError;

/// The action name that grants every action, in a policy, a scope or an ACL entry.
pub const ANY_ACTION: &str = "*";

/// What each organization role and team role may do, and the catalogue of actions.
///
/// Roles are cumulative: a role grants what it is given plus everything the roles below
/// it grant, so `admin` holds every `member` and `viewer` action. `*` grants every
/// action, including ones the policy never names. The catalogue ([`actions`](Self::actions))
/// is every action named anywhere in the policy, sorted; it is the set
/// [`Snapshot::permissions`](super::Snapshot::permissions) answers over.
///
/// ```
/// use treadle_core::authz::{OrgRole, Policy, TeamRole};
///
/// let mut policy = Policy::builder();
/// policy.org_role("viewer", ["org.read"])?;
/// policy.org_role("admin", ["members.manage"])?;
/// policy.org_role("owner", ["*"])?;
/// policy.team_role("member", ["jobs.write"])?;
/// let policy = policy.build();
///
/// assert!(policy.org_role_allows(OrgRole::Admin, "org.read"));
/// assert!(!policy.org_role_allows(OrgRole::Member, "members.manage"));
/// assert!(policy.org_role_allows(OrgRole::Owner, "anything.at.all"));
/// assert!(policy.team_role_allows(TeamRole::Admin, "jobs.write"));
/// let catalogue: Vec<&str> = policy.actions().iter().map(|a| &**a).collect();
/// assert_eq!(catalogue, ["jobs.write", "members.manage", "org.read"]);
/// # Ok::<(), treadle_core::AuthzError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    actions: Box<[Box<str>]>,
    index: Map<Box<str>, usize>,
    /// Indexed by `OrgRole as usize`, already cumulative.
    org: [Grants; 4],
    /// Indexed by `TeamRole as usize`, already cumulative.
    team: [Grants; 3],
    /// Actions no deny ACL entry can take from an owner.
    shielded: Grants,
}

/// Collects role grants for a [`Policy`].
#[derive(Debug, Clone, Default)]
pub struct PolicyBuilder {
    org: [Vec<Box<str>>; 4],
    team: [Vec<Box<str>>; 3],
    shielded: Vec<Box<str>>,
}

/// The actions one role grants: all of them, or a bit per catalogue index.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grants {
    all: bool,
    bits: Box<[u64]>,
}

impl Policy {
    /// An empty builder.
    #[must_use]
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder::default()
    }

    /// Every action the policy names (not `*`), sorted and without duplicates.
    #[must_use]
    pub fn actions(&self) -> &[Box<str>] {
        &self.actions
    }

    /// Whether `role` grants `action` in the organization.
    #[must_use]
    pub fn org_role_allows(&self, role: OrgRole, action: &str) -> bool {
        self.org_grants(role).allows(self.resolve(action))
    }

    /// Whether `role` grants `action` in a team.
    #[must_use]
    pub fn team_role_allows(&self, role: TeamRole, action: &str) -> bool {
        self.team_grants(role).allows(self.resolve(action))
    }

    /// The catalogue index of `action`, if the policy names it.
    pub(crate) fn resolve(&self, action: &str) -> Option<usize> {
        self.index.get(action).copied()
    }

    /// Whether `action` is one no deny ACL entry takes from an owner (see
    /// [`PolicyBuilder::owner_shielded`]).
    #[must_use]
    pub fn is_owner_shielded(&self, action: &str) -> bool {
        self.shields(self.resolve(action))
    }

    /// The same, by catalogue index.
    pub(crate) fn shields(&self, action: Option<usize>) -> bool {
        action.is_some_and(|_| self.shielded.allows(action))
    }

    pub(crate) fn org_grants(&self, role: OrgRole) -> &Grants {
        &self.org[role as usize]
    }

    pub(crate) fn team_grants(&self, role: TeamRole) -> &Grants {
        &self.team[role as usize]
    }
}

impl PolicyBuilder {
    /// Adds `actions` to what the organization role named `role` grants.
    ///
    /// # Errors
    ///
    /// [`AuthzError::UnknownRole`] for a name other than `owner`, `admin`, `member` or
    /// `viewer`; [`AuthzError::EmptyField`] for an empty action.
    pub fn org_role<I, S>(&mut self, role: &str, actions: I) -> Result<&mut Self, AuthzError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let role: OrgRole = role.parse()?;
        extend(&mut self.org[role as usize], actions)?;
        Ok(self)
    }

    /// Adds `actions` to what the team role named `role` grants.
    ///
    /// # Errors
    ///
    /// [`AuthzError::UnknownRole`] for a name other than `admin`, `member` or `viewer`;
    /// [`AuthzError::EmptyField`] for an empty action.
    pub fn team_role<I, S>(&mut self, role: &str, actions: I) -> Result<&mut Self, AuthzError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let role: TeamRole = role.parse()?;
        extend(&mut self.team[role as usize], actions)?;
        Ok(self)
    }

    /// Makes `actions` ones that no deny ACL entry can take from an organization owner:
    /// for an owner, a deny entry naming them, one of their teams, or `*` is not
    /// considered for these actions (allow entries and the role still are). This keeps
    /// ACL management and the owner-only actions out of reach of anyone who could
    /// otherwise lock the owners out. The actions join the catalogue.
    ///
    /// # Errors
    ///
    /// [`AuthzError::EmptyField`] for an empty action. (`*` shields every action the
    /// policy names.)
    pub fn owner_shielded<I, S>(&mut self, actions: I) -> Result<&mut Self, AuthzError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        extend(&mut self.shielded, actions)?;
        Ok(self)
    }

    /// The policy, with each role's grants folded into the roles above it.
    #[must_use]
    pub fn build(&self) -> Policy {
        let mut actions: Vec<Box<str>> = self
            .org
            .iter()
            .chain(&self.team)
            .chain(std::iter::once(&self.shielded))
            .flatten()
            .filter(|action| &***action != ANY_ACTION)
            .cloned()
            .collect();
        actions.sort_unstable();
        actions.dedup();
        let index: Map<Box<str>, usize> = actions
            .iter()
            .enumerate()
            .map(|(at, action)| (action.clone(), at))
            .collect();
        let words = actions.len().div_ceil(64);
        let cumulative = |declared: &[Vec<Box<str>>]| {
            let mut grants = Grants {
                all: false,
                bits: vec![0; words].into_boxed_slice(),
            };
            declared
                .iter()
                .map(|names| {
                    for name in names {
                        match index.get(name) {
                            Some(&at) => grants.bits[at / 64] |= 1 << (at % 64),
                            None => grants.all = true,
                        }
                    }
                    grants.clone()
                })
                .collect::<Vec<_>>()
        };
        let org = cumulative(&self.org)
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        let team = cumulative(&self.team)
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        let [shielded] = cumulative(std::slice::from_ref(&self.shielded))
            .try_into()
            .unwrap_or_else(|_| unreachable!());
        Policy {
            actions: actions.into_boxed_slice(),
            index,
            org,
            team,
            shielded,
        }
    }
}

fn extend<I, S>(into: &mut Vec<Box<str>>, actions: I) -> Result<(), AuthzError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    for action in actions {
        let action = action.as_ref();
        if action.is_empty() {
            return Err(AuthzError::EmptyField { field: "action" });
        }
        into.push(Box::from(action));
    }
    Ok(())
}

impl Grants {
    /// Whether these grants cover the action at catalogue index `action` (`None`: an
    /// action the policy does not name, which only `*` covers).
    pub(crate) fn allows(&self, action: Option<usize>) -> bool {
        self.all || action.is_some_and(|at| self.bits[at / 64] & (1 << (at % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        let mut b = Policy::builder();
        b.org_role("viewer", ["org.read"]).unwrap();
        b.org_role("member", ["jobs.write", "org.read"]).unwrap();
        b.org_role("admin", ["members.manage"]).unwrap();
        b.org_role("owner", ["*", "org.delete"]).unwrap();
        b.team_role("viewer", ["team.read"]).unwrap();
        b.team_role("admin", ["team.manage"]).unwrap();
        b.build()
    }

    #[test]
    fn roles_are_cumulative() {
        let p = policy();
        assert!(p.org_role_allows(OrgRole::Admin, "jobs.write"));
        assert!(p.org_role_allows(OrgRole::Admin, "org.read"));
        assert!(!p.org_role_allows(OrgRole::Viewer, "jobs.write"));
        assert!(!p.org_role_allows(OrgRole::Admin, "org.delete"));
        assert!(p.org_role_allows(OrgRole::Owner, "org.delete"));
        assert!(p.org_role_allows(OrgRole::Owner, "not.in.policy"));
        assert!(!p.org_role_allows(OrgRole::Admin, "not.in.policy"));
        assert!(p.team_role_allows(TeamRole::Member, "team.read"));
        assert!(!p.team_role_allows(TeamRole::Member, "team.manage"));
        assert!(p.team_role_allows(TeamRole::Admin, "team.read"));
    }

    #[test]
    fn catalogue_is_sorted_and_deduplicated() {
        assert_eq!(
            policy().actions(),
            [
                "jobs.write",
                "members.manage",
                "org.delete",
                "org.read",
                "team.manage",
                "team.read"
            ]
            .map(Box::from)
        );
    }

    #[test]
    fn more_than_64_actions() {
        let names: Vec<String> = (0..150).map(|i| format!("a{i:03}")).collect();
        let mut b = Policy::builder();
        b.org_role("member", &names[100..]).unwrap();
        b.org_role("admin", &names[..100]).unwrap();
        let p = b.build();
        assert!(p.org_role_allows(OrgRole::Member, "a149"));
        assert!(!p.org_role_allows(OrgRole::Member, "a099"));
        assert!(p.org_role_allows(OrgRole::Owner, "a000"));
    }

    #[test]
    fn rejects_bad_input() {
        let mut b = Policy::builder();
        assert!(matches!(
            b.org_role("boss", ["x"]),
            Err(AuthzError::UnknownRole {
                scope: "organization",
                ..
            })
        ));
        assert!(matches!(
            b.team_role("owner", ["x"]),
            Err(AuthzError::UnknownRole { scope: "team", .. })
        ));
        assert_eq!(
            b.org_role("admin", [""]).err(),
            Some(AuthzError::EmptyField { field: "action" })
        );
    }
}
