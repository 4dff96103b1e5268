"""Idempotency-Key on mutating routes: replay, reuse, scope, and concurrent retries."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    envelope,
    error_code,
    signup,
)
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


# A retry identical to one already replayed is answered before its body is decoded: the
# tests below send such retries (the third request on) and check that it changes nothing.
WARM = 3


def _replays(client: httpx.Client, body: dict, headers: dict[str, str]) -> str:
    """Send ``body`` WARM + 1 times with the same key; the id of the one job made."""
    ids = set()
    for n in range(WARM + 1):
        response = client.post("/v1/jobs", json=body, headers=headers)
        assert response.status_code == 201, response.text
        assert (response.headers.get("idempotent-replayed") == "true") == (n > 0)
        ids.add(response.json()["data"]["id"])  # a replay keeps the first request id
    [job_id] = ids
    return job_id


def test_a_member_demoted_to_viewer_gets_no_more_replays(client: httpx.Client) -> None:
    owner, member = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], member, "member")
    body = {"type": "default", "organization_id": org["id"]}
    headers = {**bearer(member), "Idempotency-Key": uuid.uuid4().hex}
    _replays(client, body, headers)
    demoted = client.patch(
        f"/v1/organizations/{org['id']}/members/{member['user']['id']}",
        json={"role": "viewer"},
        headers=bearer(owner),
    )
    assert demoted.status_code == 200, demoted.text
    refused = client.post("/v1/jobs", json=body, headers=headers)
    assert refused.status_code == 403, refused.text
    assert envelope(refused)["error"]["details"]["action"] == "jobs.submit"
    assert "idempotent-replayed" not in refused.headers


def test_a_key_whose_scopes_were_narrowed_gets_no_more_replays(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    issued = create_key(client, owner, org["id"], scopes=["jobs.submit", "jobs.read"])
    headers = {"Authorization": f"Bearer {issued['key']}", "Idempotency-Key": uuid.uuid4().hex}
    job_id = _replays(client, {"type": "default"}, headers)
    narrowed = client.patch(
        f"/v1/api-keys/{issued['id']}", json={"scopes": ["jobs.read"]}, headers=bearer(owner)
    )
    assert narrowed.status_code == 200, narrowed.text
    refused = client.post("/v1/jobs", json={"type": "default"}, headers=headers)
    assert refused.status_code == 403, refused.text
    assert "idempotent-replayed" not in refused.headers
    # What it may still do, it does.
    assert client.get(f"/v1/jobs/{job_id}", headers=headers).status_code == 200


def test_after_identical_retries_another_body_is_still_422_and_an_equal_one_a_replay(
    client: httpx.Client,
) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    issued = create_key(client, owner, org["id"], scopes=["jobs.submit"])
    headers = {"Authorization": f"Bearer {issued['key']}", "Idempotency-Key": uuid.uuid4().hex}
    body = {"type": "default", "input": {"n": 1}}
    _replays(client, body, headers)
    other = client.post("/v1/jobs", json={**body, "priority": 5}, headers=headers)
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"
    spaced = client.post(
        "/v1/jobs",
        content=b'{ "input" : {"n": 1}, "type": "default" }',
        headers={**headers, "content-type": "application/json"},
    )
    assert spaced.status_code == 201
    assert spaced.headers["idempotent-replayed"] == "true"
    bad = client.post(
        "/v1/jobs",
        content=b'{"type": "default", "input": {"n": 1}}',
        headers={**headers, "content-type": "application/json", "content-encoding": "gzip"},
    )
    # The same bytes, said to be compressed: decoded (and refused) as they say.
    assert bad.status_code == 415, bad.text
    assert error_code(bad) == "unsupported_media_type"


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
