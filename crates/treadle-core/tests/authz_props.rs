//! Property tests of the authorization evaluator over random organizations: a matching
//! deny always wins, batches equal single checks, and permissions equal the checks that
//! pass.

use std::sync::Arc;

use proptest::prelude::*;
use treadle_core::authz::{AclEntry, Authz, Item, Policy, Resource, Snapshot};

const ORG_ROLES: &[&str] = &["owner", "admin", "member", "viewer"];
const TEAM_ROLES: &[&str] = &["admin", "member", "viewer"];
const ACTIONS: &[&str] = &["org.read", "doc.read", "doc.write", "members.manage", "x.y"];
const SUBJECTS: &[&str] = &[
    "user:u0",
    "user:u1",
    "user:u2",
    "user:u3",
    "team:t0",
    "team:t1",
    "api_key:k0",
];
const RESOURCE_IDS: &[&str] = &["r0", "r1", "*"];
const ACL_ACTIONS: &[&str] = &["org.read", "doc.read", "doc.write", "x.y", "other", "*"];

fn policy() -> Policy {
    let mut p = Policy::builder();
    p.org_role("viewer", ["org.read"]).unwrap();
    p.org_role("member", ["doc.read"]).unwrap();
    p.org_role("admin", ["doc.write", "members.manage"])
        .unwrap();
    p.org_role("owner", ["*"]).unwrap();
    p.team_role("viewer", ["doc.read"]).unwrap();
    p.team_role("member", ["doc.write"]).unwrap();
    p.team_role("admin", ["x.y"]).unwrap();
    p.build()
}

#[derive(Debug, Clone)]
struct Org {
    /// Role per user u0..u3; `None`: not a member.
    members: Vec<Option<usize>>,
    /// (team, user, role)
    seats: Vec<(usize, usize, usize)>,
    /// (resource type, resource id, action, subject, deny)
    acl: Vec<(bool, usize, usize, usize, bool)>,
}

fn org() -> impl Strategy<Value = Org> {
    (
        prop::collection::vec(prop::option::of(0..ORG_ROLES.len()), 4),
        prop::collection::vec((0..2_usize, 0..4_usize, 0..TEAM_ROLES.len()), 0..6),
        prop::collection::vec(
            (
                any::<bool>(),
                0..RESOURCE_IDS.len(),
                0..ACL_ACTIONS.len(),
                0..SUBJECTS.len(),
                any::<bool>(),
            ),
            0..24,
        ),
    )
        .prop_map(|(members, seats, acl)| Org {
            members,
            seats,
            acl,
        })
}

fn build(org: &Org, extra_deny: Option<&Item<'_>>) -> Snapshot {
    let mut s = Snapshot::builder("org", 1);
    for (user, role) in org.members.iter().enumerate() {
        if let Some(role) = role {
            s.member(&format!("u{user}"), ORG_ROLES[*role]).unwrap();
        }
    }
    for &(team, user, role) in &org.seats {
        s.team_member(&format!("t{team}"), &format!("u{user}"), TEAM_ROLES[role])
            .unwrap();
    }
    for (at, &(job, id, action, subject, deny)) in org.acl.iter().enumerate() {
        s.acl(AclEntry {
            entry_id: &format!("e{at:02}"),
            resource_type: if job { "job" } else { "doc" },
            resource_id: RESOURCE_IDS[id],
            action: ACL_ACTIONS[action],
            subject: SUBJECTS[subject],
            effect: if deny { "deny" } else { "allow" },
        })
        .unwrap();
    }
    if let Some(item) = extra_deny {
        s.acl(AclEntry {
            entry_id: "e__forced",
            resource_type: item.resource.resource_type,
            resource_id: item.resource.resource_id,
            action: item.action,
            subject: item.subject,
            effect: "deny",
        })
        .unwrap();
    }
    s.build()
}

fn item(subject: usize, action: usize, job: bool, id: usize, team: Option<usize>) -> Item<'static> {
    const TEAMS: &[&str] = &["t0", "t1"];
    Item {
        subject: SUBJECTS[subject],
        action: ACTIONS[action],
        resource: Resource {
            resource_type: if job { "job" } else { "doc" },
            resource_id: RESOURCE_IDS[id % 2],
            team_id: team.map(|t| TEAMS[t]),
        },
    }
}

fn items() -> impl Strategy<Value = Vec<Item<'static>>> {
    prop::collection::vec(
        (
            0..SUBJECTS.len(),
            0..ACTIONS.len(),
            any::<bool>(),
            0..2_usize,
            prop::option::of(0..2_usize),
        )
            .prop_map(|(s, a, job, id, team)| item(s, a, job, id, team)),
        1..20,
    )
}

const SCOPES: &[&str] = &["doc.read", "x.y"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_matching_deny_always_wins(org in org(), items in items()) {
        let policy = policy();
        for item in &items {
            let snapshot = build(&org, Some(item));
            let d = snapshot.check(&policy, item, SCOPES).unwrap();
            prop_assert!(!d.allowed);
            let outsider = item.subject.starts_with("user:")
                && snapshot.org_role(&item.subject[5..]).is_none();
            let want = if outsider { "not_member" } else { "acl_deny" };
            prop_assert_eq!(d.reason.as_str(), want);
        }
    }

    #[test]
    fn batch_equals_single_checks(org in org(), items in items()) {
        let authz = Authz::new(policy());
        authz.load(Arc::new(build(&org, None)));
        let batch: Vec<_> = items.iter().copied().map(Some).collect();
        let decisions = authz.check_batch("org", &batch, SCOPES);
        prop_assert_eq!(decisions.len(), items.len());
        for (item, decision) in items.iter().zip(decisions) {
            prop_assert_eq!(authz.check("org", item, SCOPES).unwrap(), decision);
        }
    }

    #[test]
    fn permissions_equal_the_checks_that_pass(org in org(), items in items()) {
        let authz = Authz::new(policy());
        authz.load(Arc::new(build(&org, None)));
        for item in &items {
            let perms = authz
                .permissions("org", item.subject, &item.resource, SCOPES)
                .unwrap();
            let passing: Vec<&str> = authz
                .policy()
                .actions()
                .iter()
                .map(|a| &**a)
                .filter(|&action| {
                    let one = Item { action, ..*item };
                    authz.check("org", &one, SCOPES).unwrap().allowed
                })
                .collect();
            prop_assert_eq!(perms, passing);
        }
    }

    #[test]
    fn without_acl_entries_a_stronger_org_role_never_loses_a_grant(
        org in org(), items in items()
    ) {
        let policy = policy();
        let mut plain = Org { acl: Vec::new(), ..org };
        for item in items.iter().filter(|i| i.subject.starts_with("user:")) {
            let user: usize = item.subject[6..].parse().unwrap();
            // ORG_ROLES runs strongest first.
            let allowed: Vec<bool> = (0..ORG_ROLES.len())
                .map(|role| {
                    plain.members[user] = Some(role);
                    build(&plain, None).check(&policy, item, &[]).unwrap().allowed
                })
                .collect();
            prop_assert!(allowed.windows(2).all(|w| w[0] >= w[1]), "{:?}", allowed);
        }
    }
}
