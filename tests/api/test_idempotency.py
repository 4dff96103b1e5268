"""Idempotency-Key on mutating routes: replay, reuse, scope, and concurrent retries."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.api import bearer, create_org, envelope, error_code, signup
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def _orgs(client: httpx.Client, who: dict) -> list[dict]:
    return envelope(client.get("/v1/organizations", headers=bearer(who)))["data"]


def test_a_retry_gets_the_stored_answer_and_creates_nothing(client: httpx.Client) -> None:
    owner = signup(client)
    headers = {**bearer(owner), "Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/v1/organizations", json={"name": "Once"}, headers=headers)
    again = client.post(
        "/v1/organizations",
        content=b'{ "name" :  "Once" }',
        headers={**headers, "content-type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"] == first.json()["data"]
    assert len(_orgs(client, owner)) == 1


def test_the_same_key_for_another_request_is_422(client: httpx.Client) -> None:
    owner = signup(client)
    headers = {**bearer(owner), "Idempotency-Key": "k-" + uuid.uuid4().hex}
    client.post("/v1/organizations", json={"name": "One"}, headers=headers).raise_for_status()
    other = client.post("/v1/organizations", json={"name": "Two"}, headers=headers)
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"
    assert len(_orgs(client, owner)) == 1


def test_errors_are_replayed_too(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    client.post(
        "/v1/teams", json={"organization_id": org["id"], "name": "T"}, headers=bearer(owner)
    ).raise_for_status()
    headers = {**bearer(owner), "Idempotency-Key": uuid.uuid4().hex}
    body = {"organization_id": org["id"], "name": "T"}
    first = client.post("/v1/teams", json=body, headers=headers)
    assert first.status_code == 409
    team = envelope(client.get(f"/v1/organizations/{org['id']}/teams", headers=bearer(owner)))
    client.delete(f"/v1/teams/{team['data'][0]['id']}", headers=bearer(owner)).raise_for_status()
    again = client.post("/v1/teams", json=body, headers=headers)
    assert again.status_code == 409  # the stored answer, though a new team would fit now
    assert again.headers["idempotent-replayed"] == "true"


def test_keys_are_scoped_to_the_principal(client: httpx.Client) -> None:
    alice, bob = signup(client), signup(client)
    key = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    a = client.post("/v1/organizations", json={"name": "A"}, headers={**bearer(alice), **key})
    b = client.post("/v1/organizations", json={"name": "B"}, headers={**bearer(bob), **key})
    assert a.status_code == b.status_code == 201
    assert "idempotent-replayed" not in b.headers
    assert envelope(b)["data"]["name"] == "B"


def test_keys_are_scoped_to_the_organization(client: httpx.Client) -> None:
    owner = signup(client)
    first, second = create_org(client, owner, "First"), create_org(client, owner, "Second")
    headers = {**bearer(owner), "Idempotency-Key": "per-org-" + uuid.uuid4().hex}
    for org in (first, second):
        made = client.post(
            "/v1/teams", json={"organization_id": org["id"], "name": "Ops"}, headers=headers
        )
        assert made.status_code == 201, made.text
        assert "idempotent-replayed" not in made.headers
        assert envelope(made)["data"]["organization_id"] == org["id"]


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ünïcode"])
def test_malformed_keys_are_400(client: httpx.Client, key: str) -> None:
    owner = signup(client)
    response = client.post(
        "/v1/organizations",
        json={"name": "x"},
        headers={**bearer(owner), "Idempotency-Key": key.encode("utf-8")},
    )
    assert response.status_code == 400
    assert envelope(response)["error"]["details"]["path"] == "header.Idempotency-Key"


def test_openapi_documents_the_header_where_it_applies(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()

    def headers(method: str, path: str) -> list[str]:
        op = doc["paths"][path][method]
        return [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]

    assert "Idempotency-Key" in headers("post", "/v1/organizations")
    assert "Idempotency-Key" in headers("delete", "/v1/teams/{id}")
    assert "Idempotency-Key" not in headers("get", "/v1/organizations")
    # Routes whose answer holds a secret store nothing.
    assert "Idempotency-Key" not in headers("post", "/v1/api-keys")
    assert "Idempotency-Key" not in headers("post", "/v1/auth/login")
