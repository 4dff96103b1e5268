//! Table-driven checks of the authorization evaluator: every reason code, precedence,
//! wildcards, team roles, API key scopes, batches, permissions and snapshot swaps.

use std::sync::Arc;

use treadle_core::authz::{AclEntry, Authz, Item, Policy, Resource, Snapshot};
use treadle_core::AuthzError;

fn policy() -> Policy {
    let mut p = Policy::builder();
    p.org_role("viewer", ["org.read", "doc.read"]).unwrap();
    p.org_role("member", ["doc.write"]).unwrap();
    p.org_role("admin", ["members.manage"]).unwrap();
    p.org_role("owner", ["*"]).unwrap();
    p.team_role("viewer", ["team.read"]).unwrap();
    p.team_role("member", ["doc.publish"]).unwrap();
    p.team_role("admin", ["team.manage"]).unwrap();
    p.build()
}

/// (entry id, resource type, resource id, action, subject, effect)
const ACL: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("e1", "doc", "d1", "doc.read", "user:cat", "deny"),
    ("e2", "doc", "d2", "doc.write", "team:t2", "allow"),
    ("e3", "doc", "*", "*", "user:eve_key", "allow"),
    ("e4", "doc", "d3", "*", "team:t1", "deny"),
    ("e5", "doc", "d3", "doc.read", "user:ben", "allow"),
    ("e0", "doc", "d4", "doc.read", "api_key:k1", "deny"),
    ("e6", "doc", "d5", "doc.read", "team:t9", "allow"),
    ("e9", "doc", "*", "doc.read", "user:dan", "deny"),
    ("e8", "doc", "d6", "doc.read", "user:dan", "deny"),
];

fn snapshot(revision: u64) -> Snapshot {
    let mut s = Snapshot::builder("org", revision);
    for (user, role) in [
        ("ann", "owner"),
        ("ben", "admin"),
        ("cat", "member"),
        ("dan", "viewer"),
    ] {
        s.member(user, role).unwrap();
    }
    for (team, user, role) in [
        ("t1", "cat", "member"),
        ("t1", "dan", "admin"),
        ("t2", "dan", "viewer"),
    ] {
        s.team_member(team, user, role).unwrap();
    }
    for &(entry_id, resource_type, resource_id, action, subject, effect) in ACL {
        s.acl(AclEntry {
            entry_id,
            resource_type,
            resource_id,
            action,
            subject,
            effect,
        })
        .unwrap();
    }
    s.build()
}

fn authz() -> Authz {
    let authz = Authz::new(policy());
    assert!(authz.load(Arc::new(snapshot(3))));
    authz
}

fn item<'a>(subject: &'a str, action: &'a str, id: &'a str, team: Option<&'a str>) -> Item<'a> {
    Item {
        subject,
        action,
        resource: Resource {
            resource_type: "doc",
            resource_id: id,
            team_id: team,
        },
    }
}

/// (subject, action, resource id, team, scopes, allowed, reason, decided_by)
type Case = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [&'static str],
    bool,
    &'static str,
    Option<&'static str>,
);

#[test]
fn decisions() {
    let authz = authz();
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("user:ann", "anything", "d0", None, &[], true, "org_role", Some("org_role:owner")),
        ("user:ben", "members.manage", "d0", None, &[], true, "org_role", Some("org_role:admin")),
        ("user:ben", "doc.read", "d0", None, &[], true, "org_role", Some("org_role:admin")),
        ("user:dan", "doc.write", "d0", None, &[], false, "no_grant", None),
        ("user:zed", "doc.read", "d0", None, &[], false, "not_member", None),
        // deny on the user beats the org role
        ("user:cat", "doc.read", "d1", None, &[], false, "acl_deny", Some("e1")),
        // allow through a team the user is in
        ("user:dan", "doc.write", "d2", None, &[], true, "acl_allow", Some("e2")),
        // deny through a team beats an allow on the user itself
        ("user:ben", "doc.read", "d3", None, &[], true, "acl_allow", Some("e5")),
        ("user:cat", "doc.read", "d3", None, &[], false, "acl_deny", Some("e4")),
        // team role where the resource belongs to the team
        ("user:cat", "doc.publish", "d0", Some("t1"), &[], true, "team_role", Some("team_role:t1:member")),
        ("user:dan", "doc.publish", "d0", Some("t1"), &[], true, "team_role", Some("team_role:t1:admin")),
        ("user:dan", "doc.publish", "d0", Some("t2"), &[], false, "no_grant", None),
        ("user:cat", "doc.publish", "d0", None, &[], false, "no_grant", None),
        ("user:cat", "doc.publish", "d0", Some("t9"), &[], false, "no_grant", None),
        // the team role does not grant it, the org role does
        ("user:cat", "doc.write", "d0", Some("t1"), &[], true, "org_role", Some("org_role:member")),
        // several denies: the smallest id is reported (e8 < e9)
        ("user:dan", "doc.read", "d6", None, &[], false, "acl_deny", Some("e8")),
        ("user:dan", "doc.read", "d7", None, &[], false, "acl_deny", Some("e9")),
        // API keys: scopes, ACLs on the key itself
        ("api_key:k1", "doc.read", "d0", None, &["doc.write", "doc.read"], true, "key_scope", Some("scope:doc.read")),
        ("api_key:k1", "doc.read", "d0", None, &["*", "doc.read"], true, "key_scope", Some("scope:*")),
        ("api_key:k1", "doc.read", "d4", None, &["*"], false, "acl_deny", Some("e0")),
        ("api_key:k1", "doc.write", "d0", None, &["doc.read"], false, "no_grant", None),
        ("api_key:k2", "doc.read", "d0", None, &[], false, "no_grant", None),
        // scopes mean nothing to users
        ("user:dan", "doc.write", "d0", None, &["*"], false, "no_grant", None),
        // team principals have ACL entries only
        ("team:t9", "doc.read", "d5", None, &[], true, "acl_allow", Some("e6")),
        ("team:t9", "doc.read", "d0", None, &[], false, "no_grant", None),
        // an ACL allow for a user who is not a member does not let them in
        ("user:eve_key", "doc.read", "d0", None, &[], false, "not_member", None),
    ];
    for &(subject, action, id, team, scopes, allowed, reason, decided_by) in cases {
        let d = authz
            .check("org", &item(subject, action, id, team), scopes)
            .unwrap();
        let got = (
            d.allowed,
            d.reason.as_str(),
            d.rule.as_ref().map(ToString::to_string),
        );
        let want = (allowed, reason, decided_by.map(String::from));
        assert_eq!(
            got, want,
            "{subject} {action} doc:{id} team={team:?} scopes={scopes:?}"
        );
    }
}

#[test]
fn unknown_organization_and_invalid_subjects() {
    let authz = authz();
    let d = authz
        .check("other", &item("user:ann", "doc.read", "d0", None), &[])
        .unwrap();
    assert_eq!(
        (d.allowed, d.reason.as_str(), d.rule),
        (false, "unknown_organization", None)
    );
    for bad in ["ann", "user:", "robot:r1"] {
        for org in ["org", "other"] {
            let err = authz
                .check(org, &item(bad, "doc.read", "d0", None), &[])
                .unwrap_err();
            assert!(matches!(err, AuthzError::InvalidSubject { .. }));
        }
    }
}

#[test]
fn batch_keeps_order_and_reports_bad_items() {
    let authz = authz();
    let items = [
        Some(item("user:cat", "doc.read", "d1", None)),
        None,
        Some(item("cat", "doc.read", "d1", None)),
        Some(item("user:ann", "doc.read", "d1", None)),
    ];
    let reasons: Vec<&str> = authz
        .check_batch("org", &items, &[])
        .iter()
        .map(|d| d.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        ["acl_deny", "invalid_item", "invalid_item", "org_role"]
    );
    let reasons: Vec<&str> = authz
        .check_batch("nope", &items, &[])
        .iter()
        .map(|d| d.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "unknown_organization",
            "invalid_item",
            "invalid_item",
            "unknown_organization"
        ]
    );
}

#[test]
fn permissions() {
    let authz = authz();
    let perms = |subject, id, team, scopes: &[&str]| {
        let resource = Resource {
            resource_type: "doc",
            resource_id: id,
            team_id: team,
        };
        authz
            .permissions("org", subject, &resource, scopes)
            .unwrap()
    };
    assert_eq!(perms("user:dan", "d0", None, &[]), ["org.read"]);
    assert_eq!(
        perms("user:dan", "d2", None, &[]),
        ["doc.write", "org.read"]
    );
    assert_eq!(
        perms("user:cat", "d0", None, &[]),
        ["doc.read", "doc.write", "org.read"]
    );
    assert_eq!(
        perms("user:dan", "d0", Some("t1"), &[]),
        ["doc.publish", "org.read", "team.manage", "team.read"]
    );
    assert_eq!(perms("user:cat", "d3", None, &[]), Vec::<&str>::new());
    assert_eq!(perms("user:zed", "d0", None, &[]), Vec::<&str>::new());
    assert_eq!(
        perms("api_key:k1", "d4", None, &["*"]).len(),
        policy().actions().len() - 1
    );
    assert_eq!(
        perms("api_key:k1", "d0", None, &["doc.read", "x"]),
        ["doc.read"]
    );
    assert_eq!(
        authz
            .permissions(
                "nope",
                "user:ann",
                &Resource {
                    resource_type: "doc",
                    resource_id: "d0",
                    team_id: None
                },
                &[]
            )
            .unwrap(),
        Vec::<&str>::new()
    );
}

#[test]
fn snapshots_swap_by_revision() {
    let authz = authz();
    assert_eq!(authz.revision("org"), Some(3));
    assert!(!authz.load(Arc::new(snapshot(3))));
    assert!(!authz.load(Arc::new(snapshot(2))));
    let held = authz.snapshot("org").unwrap();

    let mut newer = Snapshot::builder("org", 4);
    newer.member("ann", "viewer").unwrap();
    assert!(authz.load(Arc::new(newer.build())));
    assert_eq!(authz.revision("org"), Some(4));
    let d = authz
        .check("org", &item("user:cat", "doc.read", "d0", None), &[])
        .unwrap();
    assert_eq!(d.reason.as_str(), "not_member");
    // A snapshot taken before the swap still answers as it did.
    let p = authz.policy();
    assert!(
        held.check(p, &item("user:cat", "doc.write", "d0", None), &[])
            .unwrap()
            .allowed
    );

    assert_eq!(authz.len(), 1);
    assert!(authz.remove("org"));
    assert!(!authz.remove("org"));
    assert_eq!(authz.revision("org"), None);
    assert!(authz.load(Arc::new(snapshot(1))));
    assert!(!authz.is_empty());
}

/// Issue 8: an admin could `deny *` the owner out of everything, ACL management included.
#[test]
fn deny_entries_cannot_take_shielded_actions_from_owners() {
    let mut p = Policy::builder();
    p.org_role("admin", ["acl.manage", "doc.read"]).unwrap();
    p.org_role("owner", ["*", "org.archive"]).unwrap();
    p.owner_shielded(["acl.manage", "org.archive"]).unwrap();
    let authz = Authz::new(p.build());
    let mut s = Snapshot::builder("org", 1);
    s.member("ann", "owner")
        .unwrap()
        .member("ben", "admin")
        .unwrap();
    s.team_member("t1", "ann", "member").unwrap();
    for (entry_id, subject) in [("d1", "user:ann"), ("d2", "team:t1"), ("d3", "user:ben")] {
        s.acl(AclEntry {
            entry_id,
            resource_type: "organization",
            resource_id: "*",
            action: "*",
            subject,
            effect: "deny",
        })
        .unwrap();
    }
    authz.load(Arc::new(s.build()));
    let on_org = |subject, action| {
        let resource = Resource {
            resource_type: "organization",
            resource_id: "org",
            team_id: None,
        };
        authz
            .check(
                "org",
                &Item {
                    subject,
                    action,
                    resource,
                },
                &[],
            )
            .unwrap()
    };
    for action in ["acl.manage", "org.archive"] {
        let d = on_org("user:ann", action);
        assert_eq!(
            (d.allowed, d.reason.as_str()),
            (true, "org_role"),
            "{action}"
        );
        // The shield is the owner's alone.
        assert!(!on_org("user:ben", action).allowed, "{action}");
    }
    // Other actions still follow the deny.
    assert_eq!(on_org("user:ann", "doc.read").reason.as_str(), "acl_deny");
    let resource = Resource {
        resource_type: "organization",
        resource_id: "org",
        team_id: None,
    };
    let perms = authz
        .permissions("org", "user:ann", &resource, &[])
        .unwrap();
    assert_eq!(perms, ["acl.manage", "org.archive"]);
}

#[test]
fn check_excluding_ignores_one_entry() {
    let authz = authz();
    let it = item("user:cat", "doc.read", "d1", None);
    assert_eq!(
        authz.check("org", &it, &[]).unwrap().reason.as_str(),
        "acl_deny"
    );
    let without = authz.check_excluding("org", &it, &[], Some("e1")).unwrap();
    assert_eq!(
        (without.allowed, without.reason.as_str()),
        (true, "org_role")
    );
    let other = authz.check_excluding("org", &it, &[], Some("e2")).unwrap();
    assert_eq!(other.reason.as_str(), "acl_deny");
}
