"""Edge agents over HTTP: single-use enrollment, a credential that may only ingest and read
its policy, rotation with an overlap, disabling, and the policy's ETag."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import add_member, bearer, envelope, error_code, signup
from tests.support.jobs import job_org
from tests.support.servers import Server
from tests.support.telemetry import enroll, enrollment, event, post_batch


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return job_org(client)


def test_an_enrollment_token_works_once_and_gives_a_credential_that_only_ingests(
    client: httpx.Client, org: dict, server: Server
) -> None:
    made = enrollment(client, org, name="gateway-7")
    assert made["token"].startswith("tdl_enroll_")
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        (stored,) = conn.execute(
            "SELECT token_hash FROM edge_agent_enrollments WHERE id = %s", (made["id"],)
        ).fetchone()
    assert made["token"] not in stored  # kept only as its keyed hash
    done = client.post("/v1/edge-agents/enroll", json={"token": made["token"], "version": "2.1"})
    assert done.status_code == 201, done.text
    agent = envelope(done)["data"]
    assert (agent["agent"]["name"], agent["agent"]["version"]) == ("gateway-7", "2.1")
    assert agent["credential"]["scopes"] == ["telemetry.ingest", "edge_agents.policy"]
    again = client.post("/v1/edge-agents/enroll", json={"token": made["token"]})
    assert again.status_code == 401 and error_code(again) == "unauthenticated"
    key = {"Authorization": f"Bearer {agent['credential']['key']}"}
    assert client.get("/v1/edge-agents/policy", headers=key).status_code == 200
    assert post_batch(client, {"auth": key}, [event()]).status_code == 201
    # Nothing else: not the organization's jobs, events, agents or keys.
    for path in ("/v1/jobs", "/v1/telemetry/events", "/v1/edge-agents", "/v1/api-keys"):
        assert client.get(path, headers=key).status_code == 403, path


def test_one_token_presented_at_once_by_many_enrolls_one_agent(
    client: httpx.Client, org: dict, server: Server
) -> None:
    token = enrollment(client, org)["token"]
    codes: list[int] = []

    def attempt() -> None:
        with server.client() as c:
            codes.append(c.post("/v1/edge-agents/enroll", json={"token": token}).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201, 401, 401, 401, 401, 401]


def test_expired_or_unknown_tokens_are_refused_and_only_admins_make_them(
    client: httpx.Client, org: dict, server: Server
) -> None:
    made = enrollment(client, org)
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE edge_agent_enrollments SET expires_at = now() - interval '1 second'"
            " WHERE id = %s",
            (made["id"],),
        )
    expired = client.post("/v1/edge-agents/enroll", json={"token": made["token"]})
    assert expired.status_code == 401
    unknown = client.post("/v1/edge-agents/enroll", json={"token": "tdl_enroll_nope"})
    assert unknown.status_code == 401
    member = signup(client)
    add_member(client, org["owner"], org["id"], member, "member")
    refused = client.post(
        "/v1/edge-agents/enrollments", json={"organization_id": org["id"]}, headers=bearer(member)
    )
    assert refused.status_code == 403
    too_long = client.post(
        "/v1/edge-agents/enrollments",
        json={"organization_id": org["id"], "expires_in_seconds": 8 * 86400},
        headers=bearer(org["owner"]),
    )
    assert too_long.status_code == 400


def test_the_policy_has_an_etag_and_changes_with_the_settings(
    client: httpx.Client, org: dict
) -> None:
    agent = enroll(client, org)
    first = client.get("/v1/edge-agents/policy", headers=agent["auth"])
    assert first.status_code == 200
    assert envelope(first)["data"]["max_batch_events"] == 1000
    etag = first.headers["etag"]
    cached = client.get("/v1/edge-agents/policy", headers={**agent["auth"], "If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["etag"] == etag
    put = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"telemetry": {"max_batch_events": 50, "allowed_types": ["cpu.sample"]}},
        headers=bearer(org["owner"]),
    )
    assert put.status_code == 200, put.text
    changed = client.get("/v1/edge-agents/policy", headers={**agent["auth"], "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert envelope(changed)["data"]["allowed_types"] == ["cpu.sample"]
    # A user is not an agent: the policy is for agents' credentials.
    as_user = client.get(
        "/v1/edge-agents/policy",
        params={"organization_id": org["id"]},
        headers=bearer(org["owner"]),
    )
    assert as_user.status_code == 403


def test_rotation_keeps_the_old_credential_for_its_overlap_and_disable_ends_both(
    client: httpx.Client, org: dict
) -> None:
    agent = enroll(client, org, name="rot")
    agent_id = agent["agent"]["id"]
    rotated = client.post(
        f"/v1/edge-agents/{agent_id}/rotate",
        json={"overlap_seconds": 600},
        headers=bearer(org["owner"]),
    )
    assert rotated.status_code == 200, rotated.text
    new_key = {"Authorization": f"Bearer {envelope(rotated)['data']['credential']['key']}"}
    assert post_batch(client, agent, [event()]).status_code == 201  # the old one, overlapping
    assert post_batch(client, {"auth": new_key}, [event()]).status_code == 201
    rolled = client.post(
        f"/v1/edge-agents/{agent_id}/rotate",
        json={"overlap_seconds": 0},
        headers=bearer(org["owner"]),
    )
    newest = {"Authorization": f"Bearer {envelope(rolled)['data']['credential']['key']}"}
    assert post_batch(client, {"auth": new_key}, [event()]).status_code == 401
    assert post_batch(client, {"auth": newest}, [event()]).status_code == 201
    disabled = client.post(f"/v1/edge-agents/{agent_id}/disable", headers=bearer(org["owner"]))
    assert envelope(disabled)["data"]["status"] == "disabled"
    assert post_batch(client, {"auth": newest}, [event()]).status_code == 401
    again = client.post(f"/v1/edge-agents/{agent_id}/rotate", json={}, headers=bearer(org["owner"]))
    assert again.status_code == 409
    listed = envelope(
        client.get(
            "/v1/edge-agents", params={"organization_id": org["id"]}, headers=bearer(org["owner"])
        )
    )["data"]
    mine = next(a for a in listed if a["id"] == agent_id)
    assert (mine["status"], mine["version"], mine["api_key_id"]) == ("disabled", "1.0.0", None)
    assert mine["last_seen_at"] is not None


def test_an_agents_credential_keeps_its_scopes(client: httpx.Client, org: dict) -> None:
    agent = enroll(client, org)
    widened = client.patch(
        f"/v1/api-keys/{agent['credential']['id']}",
        json={"scopes": ["*"]},
        headers=bearer(org["owner"]),
    )
    assert widened.status_code == 409
    assert client.get("/v1/jobs", headers=agent["auth"]).status_code == 403
