//! Organization and team roles, weakest first so `Ord` reads as "at least".

use std::fmt;
use std::str::FromStr;

use crate::error::AuthzError;

/// A member's role in an organization: `owner > admin > member > viewer`.
///
/// Each role holds every grant of the roles below it.
///
/// ```
/// use treadle_core::authz::OrgRole;
///
/// assert!("owner".parse::<OrgRole>()? > OrgRole::Admin);
/// assert_eq!(OrgRole::Member.as_str(), "member");
/// # Ok::<(), treadle_core::AuthzError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrgRole {
    /// Reads what the organization shares with it.
    Viewer,
    /// Works in the organization.
    Member,
    /// Manages members, teams and settings.
    Admin,
    /// Owns the organization; every organization keeps at least one.
    Owner,
}

impl OrgRole {
    /// Every role, weakest first.
    pub const ALL: [Self; 4] = [Self::Viewer, Self::Member, Self::Admin, Self::Owner];

    /// The role's name: `owner`, `admin`, `member` or `viewer`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// The `decided_by` label of a grant by this role: `org_role:<name>`.
    #[must_use]
    pub const fn label(self) -> &'static str {
        match self {
            Self::Viewer => "org_role:viewer",
            Self::Member => "org_role:member",
            Self::Admin => "org_role:admin",
            Self::Owner => "org_role:owner",
        }
    }
}

impl FromStr for OrgRole {
    type Err = AuthzError;

    fn from_str(role: &str) -> Result<Self, AuthzError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == role)
            .ok_or_else(|| AuthzError::UnknownRole {
                scope: "organization",
                role: role.to_owned(),
            })
    }
}

impl fmt::Display for OrgRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member's role in a team: `admin > member > viewer`.
///
/// Each role holds every grant of the roles below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TeamRole {
    /// Reads the team's resources.
    Viewer,
    /// Works on the team's resources.
    Member,
    /// Manages the team.
    Admin,
}

impl TeamRole {
    /// Every role, weakest first.
    pub const ALL: [Self; 3] = [Self::Viewer, Self::Member, Self::Admin];

    /// The role's name: `admin`, `member` or `viewer`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for TeamRole {
    type Err = AuthzError;

    fn from_str(role: &str) -> Result<Self, AuthzError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == role)
            .ok_or_else(|| AuthzError::UnknownRole {
                scope: "team",
                role: role.to_owned(),
            })
    }
}

impl fmt::Display for TeamRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order_is_strength() {
        for role in OrgRole::ALL {
            assert_eq!(role.as_str().parse::<OrgRole>(), Ok(role));
            assert_eq!(role.label(), format!("org_role:{role}"));
        }
        for role in TeamRole::ALL {
            assert_eq!(role.as_str().parse::<TeamRole>(), Ok(role));
        }
        assert!(OrgRole::Owner > OrgRole::Admin && OrgRole::Member > OrgRole::Viewer);
        assert!(TeamRole::Admin > TeamRole::Member);
        assert!(matches!(
            "owner".parse::<TeamRole>(),
            Err(AuthzError::UnknownRole { scope: "team", .. })
        ));
        assert!("Admin".parse::<OrgRole>().is_err());
    }
}
