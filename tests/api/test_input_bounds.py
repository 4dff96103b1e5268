"""Bad input never costs the service (issue 8, items 5-8): over HTTP, what cannot be stored
or returned is a 400 with the field's path, never a 500 and never a stored row."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import bearer, create_key, create_org, envelope, signup
from tests.support.servers import Server
from tests.unit.test_bodies import BILLION_LAUGHS


@pytest.fixture(scope="module")
def tenant(granian_server: Server) -> dict[str, Any]:
    with granian_server.client() as client:
        owner = signup(client)
        org = create_org(client, owner, "Bounds")
        issued = create_key(client, owner, org["id"], scopes=["jobs.submit", "jobs.read"])
    return {"owner": owner, "org": org, "key": {"Authorization": f"Bearer {issued['key']}"}}


@pytest.fixture
def client(granian_server: Server) -> httpx.Client:
    with granian_server.client() as c:
        yield c


def _refused(response: httpx.Response, path: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error = envelope(response)["error"]
    if path is not None:
        assert error["details"]["path"] == path, error
    return dict(error)


def test_a_billion_laughs_yaml_is_refused_at_once(client: httpx.Client, tenant: dict) -> None:
    started = time.monotonic()
    response = client.patch(
        f"/v1/organizations/{tenant['org']['id']}",
        content=BILLION_LAUGHS,
        headers={**bearer(tenant["owner"]), "Content-Type": "application/yaml"},
    )
    assert "anchors" in _refused(response)["message"]
    assert time.monotonic() - started < 2.0
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"type": "default", "input": {"n": 1180591620717411303424}}', "application/json"),
        (b"type: default\ninput:\n  n: 1180591620717411303424\n", "application/yaml"),
        (b'type = "default"\n[input]\nn = 1e400\n', "application/toml"),
        (b'{"type": "default", "input": {"s": "a\\u0000b"}}', "application/json"),
    ],
)
def test_job_input_that_could_not_be_returned_is_refused_and_not_stored(
    client: httpx.Client, tenant: dict, content: bytes, content_type: str
) -> None:
    before = len(envelope(client.get("/v1/jobs", headers=tenant["key"]))["data"])
    response = client.post(
        "/v1/jobs",
        content=content,
        headers={
            **tenant["key"],
            "Content-Type": content_type,
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    assert _refused(response)["details"]["path"].startswith("$")
    after = len(envelope(client.get("/v1/jobs", headers=tenant["key"]))["data"])
    assert after == before


def test_a_deeply_nested_body_is_refused(client: httpx.Client, tenant: dict) -> None:
    deep: Any = 1
    for _ in range(60):
        deep = {"a": deep}
    response = client.post(
        "/v1/jobs",
        json={"type": "default", "input": deep},
        headers={**tenant["key"], "Idempotency-Key": str(uuid.uuid4())},
    )
    assert "levels deep" in _refused(response)["message"]


@pytest.mark.parametrize("bad", ["Evil\r\nBcc: x@example.test", "tab\tname", "nul\x00name"])
def test_control_characters_in_names_are_refused(
    client: httpx.Client, tenant: dict, bad: str
) -> None:
    owner, org_id = bearer(tenant["owner"]), tenant["org"]["id"]
    _refused(client.post("/v1/organizations", json={"name": bad}, headers=owner), "$.name")
    _refused(client.patch(f"/v1/organizations/{org_id}", json={"name": bad}, headers=owner))
    team = client.post("/v1/teams", json={"organization_id": org_id, "name": bad}, headers=owner)
    _refused(team, "$.name")
    _refused(
        client.post(
            "/v1/auth/signup",
            json={
                "email": "x" + uuid.uuid4().hex[:6] + "@example.test",
                "password": "a long passphrase",
                "display_name": bad,
            },
        ),
        "$.display_name",
    )


@pytest.mark.parametrize("email", ["a\r\nb@example.test", "a@exa\x00mple.test", "a b@example.test"])
def test_control_characters_in_emails_are_refused(client: httpx.Client, email: str) -> None:
    _refused(client.post("/v1/auth/forgot-password", json={"email": email}), "$.email")


def test_nul_in_a_query_or_a_path_is_400(client: httpx.Client, tenant: dict) -> None:
    owner, org_id = bearer(tenant["owner"]), tenant["org"]["id"]
    _refused(client.get("/v1/organizations", params={"q": "a\x00b"}, headers=owner), "query.q")
    _refused(client.get(f"/v1/organizations/{org_id}/members?q=%00", headers=owner))
    response = client.get("/v1/jobs/%00", headers=tenant["key"])
    assert response.status_code in (400, 404), response.text


@pytest.mark.parametrize(
    "cursor", ["١٢٣", "²", "99999999999999999999999", "-1", "abc", " 12", "1_0"]
)
def test_malformed_cursors_are_400(client: httpx.Client, tenant: dict, cursor: str) -> None:
    owner, org_id = bearer(tenant["owner"]), tenant["org"]["id"]
    for url, headers in (
        (f"/v1/organizations/{org_id}/audit-logs", owner),
        (f"/v1/organizations/{org_id}/usage/records", owner),
        (f"/v1/authz/denials?organization_id={org_id}", owner),
        ("/v1/jobs", tenant["key"]),
    ):
        response = client.get(url, params={"cursor": cursor}, headers=headers)
        assert response.status_code == 400, (url, response.text)


@pytest.mark.parametrize("value", ["١٢", "²", "1_0", " 5", "99999999999999999999999"])
def test_integer_query_parameters_take_ascii_digits_only(
    client: httpx.Client, tenant: dict, value: str
) -> None:
    owner = bearer(tenant["owner"])
    _refused(client.get("/v1/organizations", params={"limit": value}, headers=owner))
    _refused(client.get("/v1/organizations", params={"offset": value}, headers=owner))


def test_a_trailing_line_break_is_not_one_line(client: httpx.Client, tenant: dict) -> None:
    """Python's ``$`` also matches before a final newline: the patterns say ``(?!\\n)$``."""
    owner = bearer(tenant["owner"])
    _refused(client.post("/v1/organizations", json={"name": "Acme\n"}, headers=owner), "$.name")
    email = {"email": "a@example.test\n", "password": "a long passphrase"}
    _refused(client.post("/v1/auth/signup", json=email), "$.email")
