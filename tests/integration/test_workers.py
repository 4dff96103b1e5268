"""Two worker processes behave like one server: revocations and metrics cross between them."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    envelope,
    set_policies,
    signup,
)
from tests.support.servers import Server, free_port, start_server


@pytest.fixture(scope="module")
def two_workers(server_env: dict[str, str], tmp_path_factory) -> Iterator[Server]:
    env = {**server_env, "TREADLE_PORT": str(free_port()), "TREADLE_WORKERS": "2"}
    server = start_server("granian", env, tmp_path_factory.mktemp("two") / "server.log")
    yield server
    server.stop()


def _fresh_connection_statuses(server: Server, headers: dict[str, str], n: int) -> list[int]:
    # A new connection per request, so the kernel's accept spreads them over both workers.
    return [httpx.get(server.url + "/v1/me", headers=headers).status_code for _ in range(n)]


def test_revocation_reaches_the_other_worker_at_once(two_workers: Server) -> None:
    with two_workers.client() as client:
        account = signup(client)
    # Both workers now cache the session as valid.
    assert set(_fresh_connection_statuses(two_workers, bearer(account), 30)) == {200}
    with two_workers.client() as client:
        assert client.post("/v1/auth/logout-all", headers=bearer(account)).status_code == 200
    time.sleep(0.1)
    assert set(_fresh_connection_statuses(two_workers, bearer(account), 30)) == {401}


def test_metrics_add_up_across_workers(two_workers: Server) -> None:
    for _ in range(40):
        httpx.get(two_workers.url + "/version")
    time.sleep(2.5)  # each worker publishes its series every 2 s
    text = httpx.get(two_workers.url + "/metrics").text
    found = re.search(
        r'treadle_http_requests_total\{method="GET",route="/version",status="200"\} (\d+)', text
    )
    assert found and int(found.group(1)) >= 40


def test_membership_and_acl_changes_reach_the_other_worker_within_100ms(
    two_workers: Server,
) -> None:

    with two_workers.client() as client:
        owner, member = signup(client), signup(client)
        org = create_org(client, owner)
        add_member(client, owner, org["id"], member, "member")
    path = f"{two_workers.url}/v1/organizations/{org['id']}"
    check = {
        "organization_id": org["id"],
        "action": "reports.read",
        "resource_type": "report",
        "resource_id": "r1",
    }

    def allowed() -> set[bool]:
        return {
            envelope(
                httpx.post(f"{two_workers.url}/v1/authz/check", json=check, headers=bearer(member))
            )["data"]["allowed"]
            for _ in range(20)
        }

    # Both workers load the snapshot.
    assert {httpx.get(path, headers=bearer(member)).status_code for _ in range(20)} == {200}
    acl = {
        "organization_id": org["id"],
        "resource_type": "report",
        "resource_id": "r1",
        "action": "reports.read",
        "subject": f"user:{member['user']['id']}",
    }
    httpx.post(
        f"{two_workers.url}/v1/acl", json={**acl, "effect": "allow"}, headers=bearer(owner)
    ).raise_for_status()
    time.sleep(0.1)
    assert allowed() == {True}
    httpx.post(
        f"{two_workers.url}/v1/acl", json={**acl, "effect": "deny"}, headers=bearer(owner)
    ).raise_for_status()
    time.sleep(0.1)
    assert allowed() == {False}
    httpx.delete(f"{path}/members/{member['user']['id']}", headers=bearer(owner)).raise_for_status()
    time.sleep(0.1)
    assert {httpx.get(path, headers=bearer(member)).status_code for _ in range(20)} == {404}


def test_key_revocation_reaches_every_worker_within_a_second(two_workers: Server) -> None:

    with two_workers.client() as client:
        owner = signup(client)
        org = create_org(client, owner)
        key = create_key(client, owner, org["id"])
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert set(_fresh_connection_statuses(two_workers, headers, 20)) == {200}
    httpx.delete(
        f"{two_workers.url}/v1/api-keys/{key['id']}", headers=bearer(owner)
    ).raise_for_status()
    time.sleep(1.0)
    assert set(_fresh_connection_statuses(two_workers, headers, 20)) == {401}


def test_redis_mode_admits_the_policy_across_workers_under_a_burst(
    server_env: dict[str, str], tmp_path
) -> None:
    import concurrent.futures

    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_WORKERS": "2",
        "TREADLE_RATE_LIMIT_MODE": "redis",
    }
    server = start_server("granian", env, tmp_path / "server.log")
    try:
        with server.client() as client:
            owner = signup(client)
            org = create_org(client, owner)
            set_policies(client, owner, org["id"], ("burst", 100, 3600))
            key = create_key(client, owner, org["id"], rate_limit_policy="burst")["key"]
        headers = {"Authorization": f"Bearer {key}"}

        def call(_: int) -> int:
            return httpx.get(server.url + "/v1/me", headers=headers, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            statuses = list(pool.map(call, range(300)))
        admitted = statuses.count(200)
        assert statuses.count(429) + admitted == 300
        assert abs(admitted - 100) <= 2, admitted  # within 2% of the policy
    finally:
        server.stop()


def test_fifty_concurrent_retries_over_two_workers_create_one_thing(two_workers: Server) -> None:
    import concurrent.futures
    import uuid

    with two_workers.client() as client:
        owner = signup(client)
    headers = {**bearer(owner), "Idempotency-Key": str(uuid.uuid4())}

    def post(_: int) -> httpx.Response:
        return httpx.post(
            f"{two_workers.url}/v1/organizations",
            json={"name": "Race"},
            headers=headers,
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(post, range(50)))
    statuses = [a.status_code for a in answers]
    assert all(s < 500 for s in statuses), statuses
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    created = {a.json()["data"]["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1
    orgs = httpx.get(f"{two_workers.url}/v1/organizations", headers=bearer(owner)).json()
    assert [o["name"] for o in orgs["data"]] == ["Race"]


def test_fifty_concurrent_job_submissions_over_two_workers_create_one_job(
    two_workers: Server,
) -> None:
    import concurrent.futures
    import uuid

    with two_workers.client() as client:
        owner = signup(client)
        org = create_org(client, owner, "Jobs race")
        issued = create_key(client, owner, org["id"], scopes=["jobs.submit", "jobs.read"])
    key = {"Authorization": f"Bearer {issued['key']}"}
    headers = {**key, "Idempotency-Key": str(uuid.uuid4())}

    def post(_: int) -> httpx.Response:
        # A fresh connection each, so both workers take a share.
        return httpx.post(
            f"{two_workers.url}/v1/jobs", json={"type": "default"}, headers=headers, timeout=30
        )

    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(post, range(50)))
    statuses = [a.status_code for a in answers]
    assert all(s < 500 for s in statuses), statuses
    assert set(statuses) <= {201, 409}, statuses
    created = {a.json()["data"]["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1
    jobs = envelope(httpx.get(f"{two_workers.url}/v1/jobs", headers=key))["data"]
    assert [j["id"] for j in jobs] == list(created)
