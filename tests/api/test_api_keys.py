"""API keys: issued once, hashed at rest, scoped to one organization, revocable at once."""

from __future__ import annotations

import time

import httpx
import psycopg
import pytest

from tests.support.api import add_member, bearer, create_org, envelope, error_code, signup
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict:
    owner = signup(client)
    return {"owner": owner, "id": create_org(client, owner)["id"]}


def _key(client, org, **fields) -> dict:
    body = {"organization_id": org["id"], "name": "ci", "scopes": ["org.read"], **fields}
    response = client.post("/v1/api-keys", json=body, headers=bearer(org["owner"]))
    assert response.status_code == 201, response.text
    return envelope(response)["data"]


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_key_is_shown_once_and_stored_only_hashed(client, org, server: Server) -> None:
    made = _key(client, org, environment="test")
    raw = made["key"]
    assert raw.startswith("trd_test_")
    assert made["display_prefix"] in raw
    got = envelope(client.get(f"/v1/api-keys/{made['id']}", headers=bearer(org["owner"])))["data"]
    assert "key" not in got
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        stored = conn.execute(
            "SELECT key_hash FROM api_key_secrets WHERE key_id = %s", (made["id"],)
        ).fetchall()
        dump = str(conn.execute("SELECT * FROM api_keys WHERE id = %s", (made["id"],)).fetchall())
    assert len(stored) == 1 and raw not in stored[0][0] and raw not in dump
    me = envelope(client.get("/v1/me", headers=_as(raw)))
    assert me["data"]["principal_type"] == "api_key"
    assert me["data"]["id"] == made["id"]
    assert me["context"]["principal_id"] == made["id"]


def test_scopes_and_organization_bound_what_a_key_can_do(client, org) -> None:
    raw = _key(client, org, scopes=["org.read"])["key"]
    path = f"/v1/organizations/{org['id']}"
    assert client.get(path, headers=_as(raw)).status_code == 200
    denied = client.get(f"{path}/members", headers=_as(raw))
    assert denied.status_code == 403
    assert envelope(denied)["error"]["details"]["reason"] == "no_grant"
    other = create_org(client, org["owner"], "Other")
    assert client.get(f"/v1/organizations/{other['id']}", headers=_as(raw)).status_code == 404
    # User-only routes refuse keys.
    assert client.post("/v1/auth/logout", headers=_as(raw)).status_code == 403
    assert client.patch(path, json={"name": "x"}, headers=_as(raw)).status_code == 403


def test_malformed_and_unknown_keys(client) -> None:
    for bad in ("trd_live_short", "trd_live_" + "A" * 38, "trd_nope_" + "a" * 38):
        response = client.get("/v1/me", headers=_as(bad))
        assert response.status_code == 401
        assert error_code(response) == "unauthenticated"


def test_revoke_disable_enable(client, org) -> None:
    made = _key(client, org)
    raw, path = made["key"], f"/v1/api-keys/{made['id']}"
    owner = bearer(org["owner"])
    assert client.get("/v1/me", headers=_as(raw)).status_code == 200  # cached as valid
    assert envelope(client.post(f"{path}/disable", headers=owner))["data"]["status"] == "disabled"
    assert client.get("/v1/me", headers=_as(raw)).status_code == 401
    assert envelope(client.post(f"{path}/enable", headers=owner))["data"]["status"] == "active"
    assert client.get("/v1/me", headers=_as(raw)).status_code == 200
    assert envelope(client.delete(path, headers=owner))["data"]["status"] == "revoked"
    assert client.get("/v1/me", headers=_as(raw)).status_code == 401
    assert client.post(f"{path}/enable", headers=owner).status_code == 409


def test_rotate_keeps_the_old_key_for_the_grace_period_and_roll_does_not(client, org) -> None:
    made = _key(client, org)
    old, path = made["key"], f"/v1/api-keys/{made['id']}"
    rotated = envelope(
        client.post(f"{path}/rotate", json={"grace_seconds": 2}, headers=bearer(org["owner"]))
    )["data"]
    new = rotated["key"]
    assert new != old
    assert client.get("/v1/me", headers=_as(old)).status_code == 200
    assert client.get("/v1/me", headers=_as(new)).status_code == 200
    time.sleep(2.2)
    expired = client.get("/v1/me", headers=_as(old))
    assert expired.status_code == 401
    assert "rotated" in envelope(expired)["error"]["message"]
    rolled = envelope(client.post(f"{path}/roll", headers=bearer(org["owner"])))["data"]["key"]
    assert client.get("/v1/me", headers=_as(new)).status_code == 401
    assert client.get("/v1/me", headers=_as(rolled)).status_code == 200


def test_expiry_update_and_validation(client, org) -> None:
    made = _key(client, org)
    path = f"/v1/api-keys/{made['id']}"
    owner = bearer(org["owner"])
    patched = envelope(
        client.patch(
            path, json={"name": "renamed", "scopes": ["org.read", "teams.read"]}, headers=owner
        )
    )["data"]
    assert (patched["name"], patched["scopes"]) == ("renamed", ["org.read", "teams.read"])
    past = client.patch(path, json={"expires_at": "2020-01-01T00:00:00Z"}, headers=owner)
    assert past.status_code == 400
    bad_scope = client.post(
        "/v1/api-keys",
        json={"organization_id": org["id"], "name": "x", "scopes": ["DROP TABLE"]},
        headers=owner,
    )
    assert envelope(bad_scope)["error"]["details"]["path"].startswith("$.scopes")


def test_usage_is_counted_per_day_and_route(client, org) -> None:
    made = _key(client, org)
    for _ in range(3):
        client.get("/v1/me", headers=_as(made["key"]))
    client.get(f"/v1/organizations/{org['id']}", headers=_as(made["key"]))
    time.sleep(1.5)  # counters are written in batches every second
    usage = envelope(client.get(f"/v1/api-keys/{made['id']}/usage", headers=bearer(org["owner"])))[
        "data"
    ]
    assert usage["total"] == 4
    assert {r["route"]: r["requests"] for r in usage["by_route"]} == {
        "/v1/me": 3,
        "/v1/organizations/{id}": 1,
    }
    assert envelope(client.get(f"/v1/api-keys/{made['id']}", headers=bearer(org["owner"])))["data"][
        "last_used_at"
    ]


def test_only_a_platform_admin_renews_an_every_organization_key(client, admin) -> None:
    """Issue 8: an organization admin could roll a platform-issued jobs:work:any key and
    read every organization's jobs with it. Roll, rotate and enable grant the key's scopes
    anew, so they are checked as create and patch are."""
    org_admin = signup(client)
    org_id = create_org(client, admin, "Pool")["id"]
    add_member(client, admin, org_id, org_admin, "admin")
    body = {"organization_id": org_id, "name": "pool", "scopes": ["jobs:work", "jobs:work:any"]}
    made = client.post("/v1/api-keys", json=body, headers=bearer(admin))
    assert made.status_code == 201, made.text
    path = f"/v1/api-keys/{envelope(made)['data']['id']}"

    def refused(response: httpx.Response) -> None:
        assert response.status_code == 403, response.text
        assert envelope(response)["error"]["details"]["reason"] == "scope_not_grantable"

    refused(client.post(f"{path}/roll", headers=bearer(org_admin)))
    refused(client.post(f"{path}/rotate", json={}, headers=bearer(org_admin)))
    refused(client.patch(path, json={"scopes": ["jobs:work:any"]}, headers=bearer(org_admin)))
    assert client.post(f"{path}/disable", headers=bearer(org_admin)).status_code == 200
    refused(client.post(f"{path}/enable", headers=bearer(org_admin)))
    assert envelope(client.get(path, headers=bearer(admin)))["data"]["status"] == "disabled"
    assert client.post(f"{path}/enable", headers=bearer(admin)).status_code == 200
    assert client.post(f"{path}/rotate", json={}, headers=bearer(admin)).status_code == 200
    rolled = client.post(f"{path}/roll", headers=bearer(admin))
    assert rolled.status_code == 200, rolled.text
    assert envelope(rolled)["data"]["scopes"] == ["jobs:work", "jobs:work:any"]
