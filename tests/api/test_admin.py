"""Platform admin routes."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.api import PASSWORD, bearer, envelope, error_code, new_email, signup
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def test_admin_routes_refuse_non_admins(client: httpx.Client) -> None:
    user = signup(client)
    for method, path in [
        ("GET", "/v1/admin/users"),
        ("GET", f"/v1/admin/users/{user['user']['id']}"),
        ("DELETE", f"/v1/admin/users/{user['user']['id']}"),
        ("POST", f"/v1/admin/users/{user['user']['id']}/unlock"),
        ("POST", f"/v1/admin/users/{user['user']['id']}/verify"),
        ("POST", f"/v1/admin/users/{user['user']['id']}/logout-all"),
    ]:
        response = client.request(method, path, headers=bearer(user))
        assert response.status_code == 403, (method, path)
        assert error_code(response) == "forbidden"
        assert client.request(method, path).status_code == 401


def test_list_search_sort_and_paginate(client: httpx.Client, admin: dict) -> None:
    tag = f"page{uuid.uuid4().hex[:6]}"
    made = [signup(client, new_email(tag))["user"]["email"] for _ in range(3)]
    first = client.get(
        "/v1/admin/users",
        params={"q": tag, "limit": 2, "sort_by": "email", "sort_order": "asc"},
        headers=bearer(admin),
    )
    body = envelope(first)
    assert [u["email"] for u in body["data"]] == sorted(made)[:2]
    assert body["meta"]["page"] == {"limit": 2, "offset": 0, "returned": 2, "total": 3}
    second = client.get(body["links"]["next"], headers=bearer(admin))
    assert [u["email"] for u in envelope(second)["data"]] == sorted(made)[2:]
    assert envelope(second)["links"]["next"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"offset": -1},
        {"sort_by": "password_hash"},
        {"sort_order": "sideways"},
    ],
)
def test_list_parameters_are_validated(client: httpx.Client, admin: dict, params: dict) -> None:
    response = client.get("/v1/admin/users", params=params, headers=bearer(admin))
    assert response.status_code == 400
    assert envelope(response)["error"]["code"] == "validation_failed"


def test_get_verify_and_unknown_ids(client: httpx.Client, admin: dict) -> None:
    user = signup(client)
    path = f"/v1/admin/users/{user['user']['id']}"
    got = envelope(client.get(path, headers=bearer(admin)))["data"]
    assert got["email"] == user["user"]["email"]
    assert got["email_verified"] is False
    verified = envelope(client.post(path + "/verify", headers=bearer(admin)))["data"]
    assert verified["email_verified"] is True
    for missing in (f"/v1/admin/users/{uuid.uuid4()}", "/v1/admin/users/not-a-uuid"):
        assert client.get(missing, headers=bearer(admin)).status_code == 404


def test_soft_delete_ends_sessions_and_frees_the_email(client: httpx.Client, admin: dict) -> None:
    user = signup(client)
    path = f"/v1/admin/users/{user['user']['id']}"
    deleted = envelope(client.delete(path, headers=bearer(admin)))["data"]
    assert deleted["deleted_at"] is not None
    assert client.get("/v1/me", headers=bearer(user)).status_code == 401
    login = client.post(
        "/v1/auth/login", json={"email": user["user"]["email"], "password": PASSWORD}
    )
    assert login.status_code == 401
    assert client.delete(path, headers=bearer(admin)).status_code == 404
    # The record stays for admins; the address can be used again.
    assert envelope(client.get(path, headers=bearer(admin)))["data"]["deleted_at"] is not None
    signup(client, user["user"]["email"])


def test_admin_logout_all(client: httpx.Client, admin: dict) -> None:
    user = signup(client)
    response = client.post(
        f"/v1/admin/users/{user['user']['id']}/logout-all", headers=bearer(admin)
    )
    assert envelope(response)["data"]["revoked_sessions"] == 1
    assert client.get("/v1/me", headers=bearer(user)).status_code == 401
