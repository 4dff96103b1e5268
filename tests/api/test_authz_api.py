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
                "action": "workflows.run",
                "subject": subject,
                "effect": effect,
            },
            headers=bearer(owner),
        )
        assert response.status_code == 201, response.text
        return envelope(response)["data"]

    item = {"action": "workflows.run", "resource_type": "workflow", "resource_id": "wf-1"}
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
