"""Usage metering: records written by job completion and by API-key requests, summed by
day, metric, job type, API key and team, and listed with a cursor."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.api import add_member, bearer, create_key, create_org, envelope, signup
from tests.support.servers import Server

TYPES = [
    {"name": "render", "base_cost": 1, "unit_cost": 0.5, "unit": "frames"},
    {"name": "embed", "base_cost": 0.25, "unit_cost": 0.001, "unit": "tokens"},
]


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def _key(client: httpx.Client, owner: dict, org_id: str, *scopes: str) -> tuple[str, dict]:
    issued = create_key(client, owner, org_id, scopes=list(scopes))
    return issued["id"], {"Authorization": f"Bearer {issued['key']}"}


def _run(
    client: httpx.Client,
    submitter: dict[str, str],
    worker: dict[str, str],
    usage: list[dict[str, Any]],
    **job: Any,
) -> str:
    """Submit a job, claim it and complete it with ``usage``; its id."""
    headers = {**submitter, "Idempotency-Key": str(uuid.uuid4())}
    submitted = client.post("/v1/jobs", json=job, headers=headers)
    assert submitted.status_code == 201, submitted.text
    job_id = envelope(submitted)["data"]["id"]
    claimed = envelope(client.post("/v1/jobs/claim", json={"limit": 1}, headers=worker))["data"]
    assert [j["id"] for j in claimed] == [job_id]
    done = client.post(
        f"/v1/jobs/{job_id}/complete",
        json={"lease_token": claimed[0]["lease_token"], "usage": usage},
        headers=worker,
    )
    assert done.status_code == 200, done.text
    return str(job_id)


@pytest.fixture
def metered(client: httpx.Client) -> dict[str, Any]:
    """An organization where three jobs ran: two renders (one for a team) and an embed."""
    owner = signup(client)
    org = create_org(client, owner, "Metered")
    put = client.put(
        f"/v1/organizations/{org['id']}/settings", json={"job_types": TYPES}, headers=bearer(owner)
    )
    assert put.status_code == 200, put.text
    team = envelope(
        client.post(
            "/v1/teams",
            json={"organization_id": org["id"], "name": "Studio"},
            headers=bearer(owner),
        )
    )["data"]
    key_a, submit_a = _key(client, owner, org["id"], "jobs.submit")
    key_b, submit_b = _key(client, owner, org["id"], "jobs.submit")
    _, worker = _key(client, owner, org["id"], "jobs:work")
    jobs = [
        _run(client, submit_a, worker, [{"metric": "frames", "quantity": 10}], type="render"),
        _run(
            client,
            submit_a,
            worker,
            [{"metric": "frames", "quantity": 4}, {"metric": "gpu_seconds", "quantity": 3}],
            type="render",
            team_id=team["id"],
        ),
        _run(client, submit_b, worker, [{"metric": "tokens", "quantity": 2000}], type="embed"),
    ]
    return {
        "org": org,
        "owner": owner,
        "team": team["id"],
        "key_a": key_a,
        "key_b": key_b,
        "jobs": jobs,
    }


def _summary(client: httpx.Client, m: dict, **params: str) -> dict[str, Any]:
    response = client.get(
        f"/v1/organizations/{m['org']['id']}/usage", params=params, headers=bearer(m["owner"])
    )
    assert response.status_code == 200, response.text
    return dict(envelope(response)["data"])


def _by(rows: list[dict], key: str) -> dict[tuple[Any, str], tuple[float, float]]:
    return {(r[key], r["metric"]): (r["quantity"], r["cost"]) for r in rows}


def test_the_summary_breaks_usage_down_by_every_dimension(
    client: httpx.Client, metered: dict
) -> None:
    s = _summary(client, metered)
    # renders: 1 + 0.5 x 10 and 1 + 0.5 x 4; embed: 0.25 + 0.001 x 2000
    assert s["total_cost"] == pytest.approx(6 + 3 + 2.25)
    # The keys' own requests (api.requests) are metered too, whenever they flush.
    totals = {
        t["metric"]: (t["quantity"], t["cost"], t["records"])
        for t in s["totals"]
        if t["metric"] != "api.requests"
    }
    assert totals == {
        "jobs": (3, 2.25, 3),
        "frames": (14, 7, 2),
        "gpu_seconds": (3, 0, 1),
        "tokens": (2000, 2, 1),
    }
    today = datetime.now(UTC).date().isoformat()
    assert {d["day"] for d in s["by_day"]} == {today}
    by_type = _by([r for r in s["by_job_type"] if r["job_type"]], "job_type")
    assert by_type == {
        ("render", "jobs"): (2, 2),
        ("render", "frames"): (14, 7),
        ("render", "gpu_seconds"): (3, 0),
        ("embed", "jobs"): (1, 0.25),
        ("embed", "tokens"): (2000, 2),
    }
    by_key = _by(s["by_api_key"], "api_key_id")
    assert by_key[(metered["key_a"], "frames")] == (14, 7)
    assert by_key[(metered["key_b"], "tokens")] == (2000, 2)
    by_team = _by(s["by_team"], "team_id")
    assert by_team[(metered["team"], "frames")] == (4, 2)
    assert by_team[(None, "frames")] == (10, 5)


def test_the_time_range_bounds_the_summary(client: httpx.Client, metered: dict) -> None:
    past = datetime.now(UTC) - timedelta(days=3)
    s = _summary(
        client,
        metered,
        since=(past - timedelta(days=1)).isoformat(),
        until=past.isoformat(),
    )
    assert s["totals"] == [] and s["total_cost"] == 0
    for params, path in (
        ({"since": "2026-13-01T00:00:00Z"}, "query.since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "query.since"),
        ({"since": "2020-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "query.since"),
    ):
        bad = client.get(
            f"/v1/organizations/{metered['org']['id']}/usage",
            params=params,
            headers=bearer(metered["owner"]),
        )
        assert bad.status_code == 400, params
        assert envelope(bad)["error"]["details"]["path"] == path


def test_records_page_by_cursor_and_filter(client: httpx.Client, metered: dict) -> None:
    base = f"/v1/organizations/{metered['org']['id']}/usage/records"
    headers = bearer(metered["owner"])
    seen: list[dict] = []
    cursor = ""
    while True:
        page = envelope(client.get(f"{base}?limit=2&metric=&cursor={cursor}", headers=headers))
        seen += page["data"]
        cursor = page["meta"]["page"]["next_cursor"] or ""
        if not cursor:
            break
    ids = [r["id"] for r in seen]
    assert ids == sorted(set(ids), reverse=True)
    # Seven from the three jobs; the keys' own requests are metered too, as they flush.
    assert len([r for r in seen if r["job_id"]]) == 7
    assert {r["metric"] for r in seen if not r["job_id"]} <= {"api.requests"}
    frames = envelope(client.get(f"{base}?metric=frames", headers=headers))["data"]
    assert sorted(r["quantity"] for r in frames) == [4, 10]
    one = envelope(client.get(f"{base}?job_id={metered['jobs'][2]}", headers=headers))["data"]
    assert {r["metric"] for r in one} == {"jobs", "tokens"}
    assert all(r["job_type"] == "embed" and r["api_key_id"] == metered["key_b"] for r in one)
    bad = client.get(f"{base}?job_id=nope", headers=headers)
    assert bad.status_code == 400


def test_requests_made_with_a_key_are_metered(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner, "Chatty")
    key_id, key = _key(client, owner, org["id"], "org.read")
    for _ in range(7):
        assert client.get(f"/v1/organizations/{org['id']}", headers=key).status_code == 200
    base = f"/v1/organizations/{org['id']}/usage/records?metric=api.requests&api_key_id={key_id}"
    deadline = time.monotonic() + 10
    total = 0.0
    while time.monotonic() < deadline:
        rows = envelope(client.get(base, headers=bearer(owner)))["data"]
        total = sum(r["quantity"] for r in rows)
        if total >= 7:
            break
        time.sleep(0.2)
    assert total == 7
    assert all(r["principal_id"] == f"api_key:{key_id}" and r["cost"] == 0 for r in rows)


def test_usage_is_for_admins_and_keys_with_the_scope(client: httpx.Client, metered: dict) -> None:
    org_id = metered["org"]["id"]
    member = signup(client)
    add_member(client, metered["owner"], org_id, member, "member")
    path = f"/v1/organizations/{org_id}/usage"
    assert client.get(path, headers=bearer(member)).status_code == 403
    _, plain = _key(client, metered["owner"], org_id, "jobs.read")
    assert client.get(path, headers=plain).status_code == 403
    _, reader = _key(client, metered["owner"], org_id, "usage.read")
    assert client.get(path, headers=reader).status_code == 200
    assert client.get(path + "/records", headers=reader).status_code == 200
