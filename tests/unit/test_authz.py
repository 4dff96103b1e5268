"""``treadle._core.Authz`` against the pure-Python reference in ``tests.reference.authz``:
a table with every reason code, the API's edges, and a property test over random
organizations that requires both to agree on every check, batch and permission list."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reference.authz import (
    ORG_ROLES,
    TEAM_ROLES,
    ReferenceAuthz,
    ReferenceOrg,
    ReferencePolicy,
)
from treadle._core import Authz, AuthzError, Decision, Policy, Snapshot

ORG_POLICY = {
    "viewer": ["org.read", "doc.read"],
    "member": ["doc.write"],
    "admin": ["members.manage"],
    "owner": ["*"],
}
TEAM_POLICY = {"viewer": ["team.read"], "member": ["doc.publish"], "admin": ["team.manage"]}
MEMBERS = {"ann": "owner", "ben": "admin", "cat": "member", "dan": "viewer"}
TEAM_MEMBERS = {("t1", "cat"): "member", ("t1", "dan"): "admin", ("t2", "dan"): "viewer"}
ACL = [
    ("e1", "doc", "d1", "doc.read", "user:cat", "deny"),
    ("e2", "doc", "d2", "doc.write", "team:t2", "allow"),
    ("e3", "doc", "*", "*", "user:eve", "allow"),
    ("e4", "doc", "d3", "*", "team:t1", "deny"),
    ("e5", "doc", "d3", "doc.read", "user:ben", "allow"),
    ("e0", "doc", "d4", "doc.read", "api_key:k1", "deny"),
    ("e6", "doc", "d5", "doc.read", "team:t9", "allow"),
    ("e9", "doc", "*", "doc.read", "user:dan", "deny"),
    ("e8", "doc", "d6", "doc.read", "user:dan", "deny"),
]


def both(
    members: dict[str, str] = MEMBERS,
    team_members: dict[tuple[str, str], str] = TEAM_MEMBERS,
    acl: list[tuple[str, str, str, str, str, str]] = ACL,
    revision: int = 1,
    org_policy: dict[str, list[str]] = ORG_POLICY,
    team_policy: dict[str, list[str]] = TEAM_POLICY,
) -> tuple[Authz, ReferenceAuthz]:
    rust = Authz(Policy(org_policy, team_policy))
    ref = ReferenceAuthz(ReferencePolicy(org_policy, team_policy))
    assert rust.load(Snapshot("org", revision, members, team_members, acl))
    assert ref.load(ReferenceOrg("org", revision, members, team_members, acl))
    return rust, ref


def as_tuple(decision: Any) -> tuple[bool, str, str | None]:
    return decision.allowed, decision.reason, decision.decided_by


# (subject, action, resource id, team, scopes, allowed, reason, decided_by)
CASES = [
    ("user:ann", "anything", "d0", None, None, True, "org_role", "org_role:owner"),
    ("user:ben", "members.manage", "d0", None, None, True, "org_role", "org_role:admin"),
    ("user:ben", "doc.read", "d0", None, None, True, "org_role", "org_role:admin"),
    ("user:dan", "doc.write", "d0", None, None, False, "no_grant", None),
    ("user:zed", "doc.read", "d0", None, None, False, "not_member", None),
    ("user:cat", "doc.read", "d1", None, None, False, "acl_deny", "e1"),
    ("user:dan", "doc.write", "d2", None, None, True, "acl_allow", "e2"),
    ("user:ben", "doc.read", "d3", None, None, True, "acl_allow", "e5"),
    ("user:cat", "doc.read", "d3", None, None, False, "acl_deny", "e4"),
    ("user:cat", "doc.publish", "d0", "t1", None, True, "team_role", "team_role:t1:member"),
    ("user:dan", "doc.publish", "d0", "t1", None, True, "team_role", "team_role:t1:admin"),
    ("user:dan", "doc.publish", "d0", "t2", None, False, "no_grant", None),
    ("user:cat", "doc.publish", "d0", None, None, False, "no_grant", None),
    ("user:cat", "doc.publish", "d0", "t9", None, False, "no_grant", None),
    ("user:cat", "doc.write", "d0", "t1", None, True, "org_role", "org_role:member"),
    ("user:dan", "doc.read", "d6", None, None, False, "acl_deny", "e8"),
    ("user:dan", "doc.read", "d7", None, None, False, "acl_deny", "e9"),
    ("api_key:k1", "doc.read", "d0", None, ["doc.write", "doc.read"], True, "key_scope",
     "scope:doc.read"),
    ("api_key:k1", "doc.read", "d0", None, ["*", "doc.read"], True, "key_scope", "scope:*"),
    ("api_key:k1", "doc.read", "d4", None, ["*"], False, "acl_deny", "e0"),
    ("api_key:k1", "doc.write", "d0", None, ["doc.read"], False, "no_grant", None),
    ("api_key:k2", "doc.read", "d0", None, None, False, "no_grant", None),
    ("user:dan", "doc.write", "d0", None, ["*"], False, "no_grant", None),
    ("team:t9", "doc.read", "d5", None, None, True, "acl_allow", "e6"),
    ("team:t9", "doc.read", "d0", None, None, False, "no_grant", None),
    ("user:eve", "doc.read", "d0", None, None, False, "not_member", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("subject", "action", "resource_id", "team", "scopes", "allowed", "reason", "decided_by"),
    CASES,
)
def test_decision_table(
    subject: str,
    action: str,
    resource_id: str,
    team: str | None,
    scopes: list[str] | None,
    allowed: bool,
    reason: str,
    decided_by: str | None,
) -> None:
    want = (allowed, reason, decided_by)
    for authz in both():
        got = authz.check("org", subject, action, "doc", resource_id, team, scopes)
        assert as_tuple(got) == want, type(authz).__name__


def test_every_reason_code_is_in_the_table() -> None:
    reasons = {case[6] for case in CASES}
    assert reasons == {
        "acl_deny", "acl_allow", "team_role", "org_role", "key_scope", "not_member", "no_grant"
    }  # fmt: skip
    rust, ref = both()
    for authz in (rust, ref):
        assert as_tuple(authz.check("nope", "user:ann", "x", "doc", "d0")) == (
            False,
            "unknown_organization",
            None,
        )
        batch = authz.check_batch("org", [("ann", "x", "doc", "d0", None)])
        assert as_tuple(batch[0]) == (False, "invalid_item", None)


def test_decision_object() -> None:
    rust, _ = both()
    d = rust.check("org", "user:cat", "doc.read", "doc", "d1")
    assert repr(d) == "Decision(allowed=False, reason='acl_deny', decided_by='e1')"
    assert d == rust.check("org", "user:cat", "doc.read", "doc", "d1")
    assert d != rust.check("org", "user:ann", "doc.read", "doc", "d1")
    assert len({d, rust.check("org", "user:cat", "doc.read", "doc", "d1")}) == 1
    assert isinstance(d, Decision)
    with pytest.raises(TypeError):
        Decision()
    with pytest.raises(AttributeError):
        d.allowed = True  # type: ignore[misc]


@pytest.mark.parametrize("subject", ["ann", "user:", "robot:r1", ":x", ""])
def test_malformed_subjects_raise(subject: str) -> None:
    rust, ref = both()
    for org in ("org", "nope"):
        with pytest.raises(AuthzError, match="invalid subject"):
            rust.check(org, subject, "doc.read", "doc", "d0")
        with pytest.raises(AuthzError):
            rust.permissions(org, subject, "doc", "d0")
        with pytest.raises(ValueError):
            ref.check(org, subject, "doc.read", "doc", "d0")


def test_batch_order_bad_items_and_unknown_org() -> None:
    rust, ref = both()
    items: list[Any] = [
        ("user:cat", "doc.read", "d1", "d1", None),
        ("user:cat", "doc.read", "doc", "d1", None),
        None,
        ["user:ann", "doc.read", "doc", "d1", None],
        ("user:ann", "doc.read", "doc", "d1"),
        ("user:ann", "doc.read", "doc", 7, None),
        ("cat", "doc.read", "doc", "d1", None),
        ("user:dan", "doc.publish", "doc", "d0", "t1"),
        ("api_key:k1", "doc.write", "doc", "d0", None),
    ]
    for org in ("org", "nope"):
        got = [as_tuple(d) for d in rust.check_batch(org, items, scopes=["doc.write"])]
        assert got == [as_tuple(d) for d in ref.check_batch(org, items, scopes=["doc.write"])]
    reasons = [d.reason for d in rust.check_batch("org", items, ["doc.write"])]
    assert reasons == [
        "org_role", "acl_deny", "invalid_item", "invalid_item", "invalid_item",
        "invalid_item", "invalid_item", "team_role", "key_scope",
    ]  # fmt: skip
    assert rust.check_batch("org", []) == []
    assert len(rust.check_batch("org", iter(items * 20))) == len(items) * 20


def test_large_batches_equal_single_checks() -> None:
    rust, _ = both()
    items = [(case[0], case[1], "doc", case[2], case[3]) for case in CASES if case[4] is None] * 50
    batch = rust.check_batch("org", items)
    assert batch == [rust.check("org", *item) for item in items]


def test_a_batch_sees_one_snapshot_while_others_swap_in() -> None:
    """Revisions alternate between "cat may read" and "cat is denied"; every batch, run
    with the GIL released, must come back all one or all the other."""
    policy = Policy(ORG_POLICY, TEAM_POLICY)
    rust = Authz(policy)
    deny = [("x", "doc", "*", "*", "user:cat", "deny")]
    rust.load(Snapshot("org", 0, MEMBERS, {}, []))
    items = [("user:cat", "doc.read", "doc", f"d{i}", None) for i in range(5_000)]
    stop = threading.Event()
    mixed: list[set[bool]] = []

    def checker() -> None:
        while not stop.is_set():
            seen = {d.allowed for d in rust.check_batch("org", items)}
            if len(seen) != 1:
                mixed.append(seen)

    thread = threading.Thread(target=checker)
    thread.start()
    for revision in range(1, 400):
        rust.load(Snapshot("org", revision, MEMBERS, {}, deny if revision % 2 else []))
    stop.set()
    thread.join()
    assert mixed == []


def test_permissions_table() -> None:
    rust, ref = both()
    cases = [
        ("user:dan", "d0", None, None, ["org.read"]),
        ("user:dan", "d2", None, None, ["doc.write", "org.read"]),
        ("user:cat", "d0", None, None, ["doc.read", "doc.write", "org.read"]),
        ("user:dan", "d0", "t1", None, ["doc.publish", "org.read", "team.manage", "team.read"]),
        ("user:cat", "d3", None, None, []),
        ("user:zed", "d0", None, None, []),
        ("api_key:k1", "d0", None, ["doc.read", "x"], ["doc.read"]),
    ]
    for subject, resource_id, team, scopes, want in cases:
        for authz in (rust, ref):
            assert authz.permissions("org", subject, "doc", resource_id, team, scopes) == want
    assert rust.permissions("nope", "user:ann", "doc", "d0") == []
    every = Policy(ORG_POLICY, TEAM_POLICY).actions
    assert rust.permissions("org", "user:ann", "doc", "d0") == every


def test_snapshots_load_by_revision() -> None:
    rust, _ = both(revision=5)
    assert rust.revision("org") == 5
    assert len(rust) == 1
    assert not rust.load(Snapshot("org", 5, {}, {}, []))
    assert not rust.load(Snapshot("org", 4, {}, {}, []))
    assert rust.check("org", "user:ann", "x", "doc", "d0").allowed
    assert rust.load(Snapshot("org", 6, {"ann": "viewer"}, {}, []))
    assert rust.revision("org") == 6
    assert rust.check("org", "user:ann", "x", "doc", "d0").reason == "no_grant"
    assert rust.drop("org")
    assert not rust.drop("org")
    assert rust.revision("org") is None
    assert rust.check("org", "user:ann", "x", "doc", "d0").reason == "unknown_organization"
    assert rust.load(Snapshot("org", 1, {}, {}, []))


def test_snapshot_and_policy_validation() -> None:
    snap = Snapshot("org", 3, MEMBERS, TEAM_MEMBERS, iter(ACL))
    assert (snap.org_id, snap.revision, snap.member_count, snap.acl_count) == ("org", 3, 4, 9)
    bad_snapshots: list[tuple[Any, str]] = [
        (({"u": "boss"}, {}, []), "unknown organization role"),
        (({}, {("t", "u"): "owner"}, []), "unknown team role"),
        (({}, {}, [ACL[0], ACL[0]]), "duplicate ACL entry id"),
        (({}, {}, [("e", "doc", "d", "read", "u1", "allow")]), "invalid subject"),
        (({}, {}, [("e", "doc", "d", "read", "user:u1", "permit")]), "invalid ACL effect"),
        (({}, {}, [("e", "", "d", "read", "user:u1", "allow")]), "resource_type must not"),
    ]
    for (members, team_members, acl), message in bad_snapshots:
        with pytest.raises(AuthzError, match=message):
            Snapshot("org", 1, members, team_members, acl)
    with pytest.raises((TypeError, ValueError)):
        Snapshot("org", 1, {}, {}, [("too", "short")])  # type: ignore[list-item]
    with pytest.raises(OverflowError):
        Snapshot("org", -1, {}, {}, [])
    with pytest.raises(AuthzError, match="unknown organization role"):
        Policy({"boss": ["x"]}, {})
    with pytest.raises(AuthzError, match="unknown team role"):
        Policy({}, {"owner": ["x"]})
    with pytest.raises(AuthzError, match="action must not be empty"):
        Policy({"admin": [""]}, {})
    assert Policy({"owner": ["*", "b", "a"]}, {"admin": ["a", "c"]}).actions == ["a", "b", "c"]


# --- property test: Rust and the reference agree on random organizations -------------

USERS = [f"u{i}" for i in range(6)]
TEAMS = [f"t{i}" for i in range(3)]
KEYS = [f"k{i}" for i in range(2)]
ACTIONS = ["org.read", "doc.read", "doc.write", "members.manage", "team.manage"]
ACL_ACTIONS = [*ACTIONS, "*", "custom"]
RESOURCE_TYPES = ["doc", "job"]
RESOURCE_IDS = ["r0", "r1", "r2"]
SUBJECTS = [
    *(f"user:{u}" for u in [*USERS, "stranger"]),
    *(f"team:{t}" for t in TEAMS),
    *(f"api_key:{k}" for k in KEYS),
]

role_grants = st.lists(st.sampled_from([*ACTIONS, "*"]), max_size=3)
scope_lists = st.one_of(st.none(), st.lists(st.sampled_from([*ACTIONS, "*", "nope"]), max_size=3))


@st.composite
def organizations(draw: st.DrawFn) -> dict[str, Any]:
    org_policy = {r: draw(role_grants) for r in ORG_ROLES if draw(st.booleans())}
    team_policy = {r: draw(role_grants) for r in TEAM_ROLES if draw(st.booleans())}
    members = draw(st.dictionaries(st.sampled_from(USERS), st.sampled_from(ORG_ROLES)))
    team_members = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(TEAMS), st.sampled_from([*USERS, "stranger"])),
            st.sampled_from(TEAM_ROLES),
        )
    )
    entries = draw(
        st.lists(
            st.tuples(
                st.sampled_from(RESOURCE_TYPES),
                st.sampled_from([*RESOURCE_IDS, "*"]),
                st.sampled_from(ACL_ACTIONS),
                st.sampled_from(SUBJECTS),
                st.sampled_from(["allow", "deny"]),
            ),
            max_size=30,
        )
    )
    ids = draw(
        st.lists(
            st.text("abcxyz0189_", min_size=1, max_size=4),
            min_size=len(entries),
            max_size=len(entries),
            unique=True,
        )
    )
    acl = [(entry_id, *entry) for entry_id, entry in zip(ids, entries, strict=True)]
    return {
        "org_policy": org_policy,
        "team_policy": team_policy,
        "members": members,
        "team_members": team_members,
        "acl": acl,
    }


checks = st.lists(
    st.tuples(
        st.sampled_from(SUBJECTS),
        st.sampled_from([*ACTIONS, "custom", "*"]),
        st.sampled_from(RESOURCE_TYPES),
        st.sampled_from(RESOURCE_IDS),
        st.one_of(st.none(), st.sampled_from([*TEAMS, "t_other"])),
    ),
    min_size=20,
    max_size=40,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(org=organizations(), items=checks, scopes=scope_lists)
def test_rust_and_reference_agree(
    org: dict[str, Any], items: list[tuple[str, str, str, str, str | None]], scopes: Any
) -> None:
    rust, ref = both(**org)
    for item in items:
        want = as_tuple(ref.check("org", *item, scopes))
        assert as_tuple(rust.check("org", *item, scopes)) == want, item
    got = [as_tuple(d) for d in rust.check_batch("org", items, scopes)]
    assert got == [as_tuple(d) for d in ref.check_batch("org", items, scopes)]
    for subject, _, resource_type, resource_id, team in items:
        args = ("org", subject, resource_type, resource_id, team, scopes)
        assert rust.permissions(*args) == ref.permissions(*args)


def test_owner_shield_and_exclusion_match_the_reference() -> None:
    """Issue 8: a deny entry could lock an owner out of ACL management."""
    shield = ["members.manage", "doc.read"]
    rust = Authz(Policy(ORG_POLICY, TEAM_POLICY, shield))
    ref = ReferenceAuthz(ReferencePolicy(ORG_POLICY, TEAM_POLICY, shield))
    acl = [
        *ACL,
        ("f1", "doc", "*", "*", "user:ann", "deny"),
        ("f2", "doc", "d1", "members.manage", "team:t1", "deny"),
        ("f3", "doc", "d1", "doc.write", "user:ann", "allow"),
    ]
    members = {**MEMBERS, "cat": "owner"}
    assert rust.load(Snapshot("org", 1, members, TEAM_MEMBERS, acl))
    assert ref.load(ReferenceOrg("org", 1, members, TEAM_MEMBERS, acl))
    seen = set()
    for subject in ("user:ann", "user:ben", "user:cat", "user:dan", "team:t1"):
        for action in ("members.manage", "doc.read", "doc.write", "other"):
            for resource in ("d0", "d1", "d3"):
                for excluding in (None, "f1", "f2", "e1", "e4"):
                    args = ("org", subject, action, "doc", resource, None, None, excluding)
                    got = as_tuple(rust.check(*args))
                    assert got == as_tuple(ref.check(*args)), args
                    seen.add(got[1])
            perms = rust.permissions("org", subject, "doc", "d1")
            assert perms == ref.permissions("org", subject, "doc", "d1"), subject
    assert {"acl_deny", "acl_allow", "org_role"} <= seen
    shielded = as_tuple(rust.check("org", "user:ann", "doc.read", "doc", "d1"))
    assert shielded == (True, "org_role", "org_role:owner")
    assert rust.check("org", "user:ann", "doc.write", "doc", "d0").reason == "acl_deny"
    assert rust.check("org", "user:ben", "doc.read", "doc", "d3").reason == "acl_allow"
