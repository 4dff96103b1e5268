"""Authorization over HTTP: checks, batches, ACL precedence, the denial log."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import add_member, bearer, create_org, envelope, signup
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict:
    owner, member = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], member, "member")
    return {"id": org["id"], "owner": owner, "member": member}


def _check(client, who, org_id, **item):
    response = client.post(
        "/v1/authz/check", json={"organization_id": org_id, **item}, headers=bearer(who)
    )
    assert response.status_code == 200, response.text
    return envelope(response)["data"]


def test_check_says_why(client: httpx.Client, org: dict) -> None:
    owner, member = org["owner"], org["member"]
    read = _check(client, member, org["id"], action="org.read")
    assert (read["allowed"], read["reason"], read["decided_by"]) == (
        True,
        "org_role",
        "org_role:member",
    )
    assert read["revision"] >= 1
    denied = _check(client, member, org["id"], action="org.update")
    assert (denied["allowed"], denied["reason"]) == (False, "no_grant")
    # An admin may ask about someone else; a member may not.
    other = _check(
        client, owner, org["id"], action="org.update", subject=f"user:{member['user']['id']}"
    )
    assert other["allowed"] is False
    refused = client.post(
        "/v1/authz/check",
        json={
            "organization_id": org["id"],
            "action": "org.read",
            "subject": f"user:{owner['user']['id']}",
        },
        headers=bearer(member),
    )
    assert refused.status_code == 403


def test_deny_acl_beats_allow_acl_beats_role(client: httpx.Client, org: dict) -> None:
    owner, member = org["owner"], org["member"]
    subject = f"user:{member['user']['id']}"

    def acl(effect: str) -> dict:
        response = client.post(
            "/v1/acl",
            json={
                "organization_id": org["id"],
                "resource_type": "workflow",
                "resource_id": "wf-1",
                "action": "workflows.manage",
                "subject": subject,
                "effect": effect,
            },
            headers=bearer(owner),
        )
        assert response.status_code == 201, response.text
        return envelope(response)["data"]

    # An action an organization member does not hold by role.
    item = {"action": "workflows.manage", "resource_type": "workflow", "resource_id": "wf-1"}
    assert _check(client, member, org["id"], **item)["reason"] == "no_grant"
    allow = acl("allow")
    got = _check(client, member, org["id"], at_least_revision=allow["revision"], **item)
    assert (got["allowed"], got["reason"], got["decided_by"]) == (True, "acl_allow", allow["id"])
    deny = acl("deny")
    got = _check(client, member, org["id"], at_least_revision=deny["revision"], **item)
    assert (got["allowed"], got["reason"], got["decided_by"]) == (False, "acl_deny", deny["id"])
    listed = envelope(
        client.get("/v1/acl", params={"organization_id": org["id"]}, headers=bearer(owner))
    )
    assert {e["id"] for e in listed["data"]} == {allow["id"], deny["id"]}
    removed = envelope(client.delete(f"/v1/acl/{deny['id']}", headers=bearer(owner)))["data"]
    got = _check(client, member, org["id"], at_least_revision=removed["revision"], **item)
    assert got["reason"] == "acl_allow"


def test_future_revision_is_a_conflict(client: httpx.Client, org: dict) -> None:
    response = client.post(
        "/v1/authz/check",
        json={
            "organization_id": org["id"],
            "action": "org.read",
            "at_least_revision": 10**9,
        },
        headers=bearer(org["member"]),
    )
    assert response.status_code == 409


def test_batch_answers_in_order_with_per_item_results(client: httpx.Client, org: dict) -> None:
    actions = ["org.read", "org.update", "members.read", "acl.manage"] * 250
    response = client.post(
        "/v1/authz/check-batch",
        json={
            "organization_id": org["id"],
            "items": [{"action": a} for a in actions],
        },
        headers=bearer(org["member"]),
    )
    data = envelope(response)["data"]
    assert [r["allowed"] for r in data["results"]] == [
        a in ("org.read", "members.read") for a in actions
    ]
    too_many = client.post(
        "/v1/authz/check-batch",
        json={
            "organization_id": org["id"],
            "items": [{"action": "org.read"}] * 1001,
        },
        headers=bearer(org["member"]),
    )
    assert too_many.status_code == 400
    assert envelope(too_many)["error"]["details"]["path"] == "$.items"


def test_denials_are_logged_for_admins(client: httpx.Client, org: dict) -> None:
    member = org["member"]
    client.patch(f"/v1/organizations/{org['id']}", json={"name": "x"}, headers=bearer(member))
    log = client.get(
        "/v1/authz/denials", params={"organization_id": org["id"]}, headers=bearer(org["owner"])
    )
    [row] = envelope(log)["data"]
    assert row["actor_id"] == member["user"]["id"]
    assert row["action"] == "org.update"
    assert row["reason"] == "no_grant"
    assert (row["method"], row["route"]) == ("PATCH", "/v1/organizations/{id}")
    assert (
        client.get(
            "/v1/authz/denials", params={"organization_id": org["id"]}, headers=bearer(member)
        ).status_code
        == 403
    )


def test_batch_items_fail_alone(client: httpx.Client, org: dict) -> None:
    owner, member = org["owner"], org["member"]
    items = [
        {"action": "org.read"},
        {"action": "org.read", "subject": f"user:{owner['user']['id']}"},
        {"action": "workflows.run", "resource_type": "workflow"},
        {"action": "members.read"},
    ]
    response = client.post(
        "/v1/authz/check-batch",
        json={"organization_id": org["id"], "items": items},
        headers=bearer(member),
    )
    results = envelope(response)["data"]["results"]
    assert [(r["allowed"], r["reason"]) for r in results] == [
        (True, "org_role"),
        (False, "subject_not_allowed"),
        (False, "invalid_item"),
        (True, "org_role"),
    ]
    # An admin may ask about others in the same batch.
    as_owner = client.post(
        "/v1/authz/check-batch",
        json={"organization_id": org["id"], "items": items[:2]},
        headers=bearer(owner),
    )
    assert [r["reason"] for r in envelope(as_owner)["data"]["results"]] == ["org_role", "org_role"]


# -- nobody grants more than they hold (issue 8) -----------------------------------------


def _acl(client, who, org_id, action, subject, effect="allow", kind="organization", rid=None):
    return client.post(
        "/v1/acl",
        json={
            "organization_id": org_id,
            "resource_type": kind,
            "resource_id": rid or org_id,
            "action": action,
            "subject": subject,
            "effect": effect,
        },
        headers=bearer(who),
    )


def _refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 403, response.text
    error = envelope(response)["error"]
    assert (error["code"], error["details"]["reason"]) == ("forbidden", reason), error


def test_an_admin_cannot_take_the_organization_from_its_owner(
    client: httpx.Client, org: dict
) -> None:
    """The attack of issue 8: an admin granted itself members.owners, promoted itself,
    demoted the owner, and denied the owner everything."""
    owner = org["owner"]
    admin = signup(client)
    add_member(client, owner, org["id"], admin, "admin")
    me, them = f"user:{admin['user']['id']}", f"user:{owner['user']['id']}"
    members = f"/v1/organizations/{org['id']}/members"

    _refused(_acl(client, admin, org["id"], "members.owners", me), "owner_only")
    _refused(_acl(client, admin, org["id"], "org.archive", me), "owner_only")
    _refused(_acl(client, admin, org["id"], "*", me), "owner_only")
    _refused(_acl(client, admin, org["id"], "*", them, "deny"), "owner_only")
    promote = client.patch(
        f"{members}/{admin['user']['id']}", json={"role": "owner"}, headers=bearer(admin)
    )
    _refused(promote, "owner_only")
    demote = client.patch(
        f"{members}/{owner['user']['id']}", json={"role": "admin"}, headers=bearer(admin)
    )
    _refused(demote, "owner_only")
    _refused(client.delete(f"{members}/{owner['user']['id']}", headers=bearer(admin)), "owner_only")

    # A deny the admin may write (it holds acl.manage) still cannot lock the owner out of
    # the ACL: the owner reads it, and removes the entry.
    lockout = _acl(client, admin, org["id"], "acl.manage", them, "deny")
    assert lockout.status_code == 201, lockout.text
    entry = envelope(lockout)["data"]
    got = _check(client, owner, org["id"], action="acl.manage", at_least_revision=entry["revision"])
    assert (got["allowed"], got["reason"]) == (True, "org_role")
    listed = client.get("/v1/acl", params={"organization_id": org["id"]}, headers=bearer(owner))
    assert entry["id"] in {e["id"] for e in envelope(listed)["data"]}
    assert client.delete(f"/v1/acl/{entry['id']}", headers=bearer(owner)).status_code == 200
    roles = envelope(client.get(members, headers=bearer(owner)))["data"]
    assert {(m["user_id"], m["role"]) for m in roles} == {
        (owner["user"]["id"], "owner"),
        (admin["user"]["id"], "admin"),
        (org["member"]["user"]["id"], "member"),
    }


def test_an_owner_denied_everything_keeps_the_acl_and_the_owner_actions(
    client: httpx.Client, org: dict
) -> None:
    owner = org["owner"]
    them = f"user:{owner['user']['id']}"
    made = _acl(client, owner, org["id"], "*", them, "deny", rid="*")
    assert made.status_code == 201, made.text
    entry = envelope(made)["data"]
    path = f"/v1/organizations/{org['id']}"
    denied = client.patch(path, json={"name": "Renamed"}, headers=bearer(owner))
    assert envelope(denied)["error"]["details"]["reason"] == "acl_deny"
    scopes = envelope(client.get("/v1/me/permissions", headers=bearer(owner)))["data"]
    [here] = [s for s in scopes if s["resource_type"] == "organization"]
    assert set(here["actions"]) == {"acl.read", "acl.manage", "members.owners", "org.archive"}
    listed = client.get("/v1/acl", params={"organization_id": org["id"]}, headers=bearer(owner))
    assert entry["id"] in {e["id"] for e in envelope(listed)["data"]}
    assert client.delete(f"/v1/acl/{entry['id']}", headers=bearer(owner)).status_code == 200
    assert client.patch(path, json={"name": "Renamed"}, headers=bearer(owner)).status_code == 200


def test_acl_entries_only_for_actions_the_caller_holds(client: httpx.Client, org: dict) -> None:
    owner, member = org["owner"], org["member"]
    admin = signup(client)
    add_member(client, owner, org["id"], admin, "admin")
    subject = f"user:{member['user']['id']}"
    # The admin holds jobs.submit: it may grant and deny it.
    assert _acl(client, admin, org["id"], "jobs.submit", subject, "deny").status_code == 201
    # An action only owners hold (any the policy does not name): not the admin's to give.
    unheld = _acl(client, admin, org["id"], "reports.export", subject, kind="report", rid="r1")
    _refused(unheld, "not_held")
    # Deleting counts what the caller would hold without the entry: an allow the owner
    # gave the admin is not the admin's to remove, a deny on the admin is.
    gift = _acl(
        client,
        owner,
        org["id"],
        "reports.export",
        f"user:{admin['user']['id']}",
        kind="report",
        rid="r1",
    )
    assert gift.status_code == 201, gift.text
    _refused(
        client.delete(f"/v1/acl/{envelope(gift)['data']['id']}", headers=bearer(admin)), "not_held"
    )
    curb = _acl(client, owner, org["id"], "jobs.submit", f"user:{admin['user']['id']}", "deny")
    assert curb.status_code == 201, curb.text
    removed = client.delete(f"/v1/acl/{envelope(curb)['data']['id']}", headers=bearer(admin))
    assert removed.status_code == 200, removed.text
