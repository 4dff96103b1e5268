"""Small helpers for talking to a live server in tests."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.support import mailbox

PASSWORD = "correct horse battery"


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The parsed envelope, checked for the shape every response shares."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"meta", "context", "data", "error", "links"}, body
    assert body["meta"]["status"] == response.status_code
    assert body["meta"]["version"] == "1.0"
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    if response.status_code >= 400:
        assert body["data"] is None
        assert set(body["error"]) == {"code", "message", "details"}
        assert body["error"]["message"]
    else:
        assert body["error"] is None
    return body


def error_code(response: httpx.Response) -> str:
    return str(envelope(response)["error"]["code"])


def new_email(tag: str = "user") -> str:
    return f"{tag}-{secrets.token_hex(6)}@example.test"


def signup(
    client: httpx.Client, email: str | None = None, password: str = PASSWORD
) -> dict[str, Any]:
    email = email or new_email()
    response = client.post("/v1/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    data = envelope(response)["data"]
    data["password"] = password
    return data


def bearer(session: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {session['access_token']}"}


def create_org(client: httpx.Client, owner: dict[str, Any], name: str = "Acme") -> dict[str, Any]:
    response = client.post("/v1/organizations", json={"name": name}, headers=bearer(owner))
    assert response.status_code == 201, response.text
    return dict(envelope(response)["data"])


def add_member(
    client: httpx.Client, admin: dict[str, Any], org_id: str, user: dict[str, Any], role: str
) -> None:
    """Make ``user`` a member the one way there is: ``admin`` invites, ``user`` accepts the
    mailed invitation (a platform admin adds at once). An ``owner`` joins as admin, then
    is promoted."""
    response = client.post(
        f"/v1/organizations/{org_id}/members",
        json={"user_id": user["user"]["id"], "role": "admin" if role == "owner" else role},
        headers=bearer(admin),
    )
    assert response.status_code == 202, response.text
    data = envelope(response)["data"]
    if data["status"] == "added":  # a platform admin's add needs no acceptance
        return _promote(client, admin, org_id, user) if role == "owner" else None
    invitation = data["invitation"]
    token = mailbox.running().invitation_token(user["user"]["email"], invitation["id"])
    accepted = client.post(
        f"/v1/invitations/{invitation['id']}/accept", json={"token": token}, headers=bearer(user)
    )
    assert accepted.status_code == 200, accepted.text
    if role == "owner":
        _promote(client, admin, org_id, user)


def _promote(
    client: httpx.Client, owner: dict[str, Any], org_id: str, user: dict[str, Any]
) -> None:
    promoted = client.patch(
        f"/v1/organizations/{org_id}/members/{user['user']['id']}",
        json={"role": "owner"},
        headers=bearer(owner),
    )
    assert promoted.status_code == 200, promoted.text


def create_key(
    client: httpx.Client, owner: dict[str, Any], org_id: str, **fields: Any
) -> dict[str, Any]:
    """A new API key of the organization (``scopes`` default to org.read); the raw key is
    in ``["key"]``."""
    body = {"organization_id": org_id, "name": "test key", "scopes": ["org.read"], **fields}
    response = client.post("/v1/api-keys", json=body, headers=bearer(owner))
    assert response.status_code == 201, response.text
    return dict(envelope(response)["data"])


def set_policies(
    client: httpx.Client, owner: dict[str, Any], org_id: str, *policies: tuple[str, int, int]
) -> None:
    """Replace the organization's rate-limit policies with (name, limit, period_seconds)."""
    body = {
        "rate_limit_policies": [
            {"name": name, "limit": limit, "period_seconds": period}
            for name, limit, period in policies
        ]
    }
    response = client.put(f"/v1/organizations/{org_id}/settings", json=body, headers=bearer(owner))
    assert response.status_code == 200, response.text
