//! Authorization: roles over organization > team, plus per-resource ACL entries.
//!
//! An [`Authz`] evaluator holds a [`Policy`] (what each role grants) and, for every
//! organization, an immutable [`Snapshot`] of its members, team seats and ACL entries at
//! a revision. Every [`Decision`] carries a [`Reason`] code and the [`Rule`] that
//! decided.
//!
//! ```
//! use std::sync::Arc;
//! use treadle_core::authz::{AclEntry, Authz, Item, Policy, Resource, Snapshot};
//!
//! let mut policy = Policy::builder();
//! policy.org_role("viewer", ["workflow.read"])?;
//! policy.org_role("member", ["workflow.run"])?;
//! let authz = Authz::new(policy.build());
//!
//! let mut org = Snapshot::builder("org_1", 1);
//! org.member("u_ann", "member")?.member("u_bob", "viewer")?;
//! org.acl(AclEntry {
//!     entry_id: "acl_1",
//!     resource_type: "workflow",
//!     resource_id: "wf_prod",
//!     action: "*",
//!     subject: "user:u_ann",
//!     effect: "deny",
//! })?;
//! authz.load(Arc::new(org.build()));
//!
//! let check = |subject, id| {
//!     let resource = Resource { resource_type: "workflow", resource_id: id, team_id: None };
//!     authz.check("org_1", &Item { subject, action: "workflow.run", resource }, &[])
//! };
//! let ann = check("user:u_ann", "wf_dev")?;
//! assert!(ann.allowed);
//! assert_eq!((ann.reason.as_str(), ann.rule.unwrap().to_string()), ("org_role", "org_role:member".into()));
//! let ann = check("user:u_ann", "wf_prod")?;
//! assert_eq!((ann.allowed, ann.reason.as_str()), (false, "acl_deny"));
//! assert_eq!(check("user:u_bob", "wf_dev")?.reason.as_str(), "no_grant");
//! assert_eq!(check("user:u_eve", "wf_dev")?.reason.as_str(), "not_member");
//! # Ok::<(), treadle_core::AuthzError>(())
//! ```
//!
//! # Decision rules
//!
//! 1. A `user:` principal who is not a member of the organization: `not_member`.
//! 2. ACL entries apply when their resource type matches, their resource id is the
//!    resource's or `*`, their action is the action or `*`, and their subject is the
//!    principal or (for a user) one of the user's teams. Any matching `deny` wins
//!    (`acl_deny`); otherwise any matching `allow` (`acl_allow`). Among several, the
//!    entry with the smallest id (byte order) is reported.
//! 3. A user: the team role, if the resource's `team_id` is a team they sit in and that
//!    role grants the action (`team_role`); else the organization role (`org_role`).
//! 4. An `api_key:` principal has no roles: the first of its scopes that is `*` or the
//!    action grants it (`key_scope`). Scopes are ignored for users and teams.
//! 5. A `team:` principal has ACL entries only. Nothing granted: `no_grant`.
//! 6. For an organization owner, deny entries do not apply to the actions the policy
//!    shields ([`PolicyBuilder::owner_shielded`]): nobody can lock the owners out of
//!    ACL management or the owner-only actions.

mod check;
mod decision;
mod evaluator;
mod policy;
mod role;
mod snapshot;
mod subject;

use std::collections::HashMap;

pub use check::{Item, Resource};
pub use decision::{Decision, Reason, Rule};
pub use evaluator::Authz;
pub use policy::{Policy, PolicyBuilder, ANY_ACTION};
pub use role::{OrgRole, TeamRole};
pub use snapshot::{AclEntry, Snapshot, SnapshotBuilder, WILDCARD};
pub use subject::Subject;

/// Hash maps on the check path: foldhash, seeded per map, for short string and integer
/// keys.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
