"""Jobs over HTTP: submission with cost estimates, listing, cancel/retry, and the worker
protocol (claim, heartbeat, complete, fail, expired leases), fair across organizations."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
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
from tests.support.events import open_stream
from tests.support.jobs import RENDER, claim, job_org, key_auth, lease, once, submit
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return job_org(client)


def job_of(client: httpx.Client, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    return dict(envelope(client.get(f"/v1/jobs/{job_id}", headers=headers))["data"])


def drain(client: httpx.Client, headers: dict[str, str]) -> None:
    """Claim and finish whatever is queued, so a test starts from an empty queue."""
    while jobs := claim(client, headers, limit=100):
        for job in jobs:
            client.post(f"/v1/jobs/{job['id']}/complete", json=lease(job), headers=headers)


# -- submission ---------------------------------------------------------------------------


def test_submission_needs_an_idempotency_key(client: httpx.Client, org: dict) -> None:
    response = client.post("/v1/jobs", json={"type": "render"}, headers=org["submit"])
    assert response.status_code == 428
    assert error_code(response) == "idempotency_key_required"


def test_a_job_is_queued_with_a_cost_estimate_from_its_types_pricing(
    client: httpx.Client, org: dict
) -> None:
    job = submit(client, org["submit"], estimated_units=120, input={"scene": "a"}, priority=5)
    assert job["status"] == "queued"
    assert job["organization_id"] == org["id"]
    # 0.5 base + 0.01 per frame x 120 frames
    assert job["cost_estimate"] == 1.7
    assert job["cost"] is None
    assert job["pricing"] == {"base_cost": 0.5, "unit_cost": 0.01, "unit": "frames"}
    assert job["attempts"] == 0 and job["max_attempts"] == 3
    assert job["input"] == {"scene": "a"}
    assert job["queued_at"] and job["started_at"] is None and job["completed_at"] is None
    assert job["error_code"] is None and job["artifact_url"] is None
    assert job["submitted_by"].startswith("api_key:")
    assert job_of(client, org["submit"], job["id"]) == job


def test_a_price_change_does_not_reprice_submitted_jobs(client: httpx.Client, org: dict) -> None:
    job = submit(client, org["submit"], estimated_units=10)
    cheaper = {"job_types": [{**RENDER, "base_cost": 0, "unit_cost": 0}]}
    client.put(
        f"/v1/organizations/{org['id']}/settings", json=cheaper, headers=bearer(org["owner"])
    )
    assert submit(client, org["submit"], estimated_units=10)["cost_estimate"] == 0
    (claimed,) = [j for j in claim(client, org["work"], limit=10) if j["id"] == job["id"]]
    done = client.post(
        f"/v1/jobs/{claimed['id']}/complete",
        json={**lease(claimed), "usage": [{"metric": "frames", "quantity": 10}]},
        headers=org["work"],
    )
    assert envelope(done)["data"]["cost"] == 0.6


def test_unknown_type_and_bad_fields_are_400_with_the_path(client: httpx.Client, org: dict) -> None:
    unknown = client.post("/v1/jobs", json={"type": "nope"}, headers=once(org["submit"]))
    assert unknown.status_code == 400
    error = envelope(unknown)["error"]
    assert error["code"] == "validation_failed" and error["details"]["path"] == "$.type"
    assert "render" in error["message"]
    for body, path in (
        ({"type": "render", "priority": 1000}, "$.priority"),
        ({"type": "render", "estimated_units": -1}, "$.estimated_units"),
        ({"type": "render", "input": [1, 2]}, "$.input"),
        ({"type": "render", "surprise": 1}, "$"),
        ({"type": "render", "team_id": str(uuid.uuid4())}, "$.team_id"),
    ):
        response = client.post("/v1/jobs", json=body, headers=once(org["submit"]))
        assert response.status_code == 400, body
        assert envelope(response)["error"]["details"]["path"].startswith(path), response.text


def test_a_user_names_the_organization_and_viewers_cannot_submit(
    client: httpx.Client, org: dict
) -> None:
    owner = org["owner"]
    missing = client.post("/v1/jobs", json={"type": "render"}, headers=once(bearer(owner)))
    assert missing.status_code == 400
    assert envelope(missing)["error"]["details"]["path"] == "$.organization_id"
    job = submit(client, bearer(owner), organization_id=org["id"])
    assert job["submitted_by"] == f"user:{owner['user']['id']}"
    viewer = signup(client)
    add_member(client, owner, org["id"], viewer, "viewer")
    refused = client.post(
        "/v1/jobs",
        json={"type": "render", "organization_id": org["id"]},
        headers=once(bearer(viewer)),
    )
    assert refused.status_code == 403
    assert job_of(client, bearer(viewer), job["id"])["id"] == job["id"]


def test_a_retry_with_the_same_key_returns_the_same_job(client: httpx.Client, org: dict) -> None:
    headers = once(org["submit"])
    first = client.post("/v1/jobs", json={"type": "render"}, headers=headers)
    again = client.post("/v1/jobs", json={"type": "render"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    other = client.post("/v1/jobs", json={"type": "quick"}, headers=headers)
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"


# -- listing ------------------------------------------------------------------------------


def test_list_filters_by_status_type_and_time_and_pages_by_cursor(
    client: httpx.Client, org: dict
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    made = [submit(client, org["submit"], type="render" if i % 2 else "quick") for i in range(5)]
    headers = org["submit"]
    seen: list[str] = []
    cursor = ""
    while True:
        page = envelope(client.get(f"/v1/jobs?limit=2&cursor={cursor}", headers=headers))
        seen += [j["id"] for j in page["data"]]
        cursor = page["meta"]["page"].get("next_cursor") or ""
        if not cursor:
            break
    assert seen == [j["id"] for j in reversed(made)]
    renders = envelope(client.get("/v1/jobs?type=render", headers=headers))["data"]
    assert {j["id"] for j in renders} == {j["id"] for j in made if j["type"] == "render"}
    client.post(f"/v1/jobs/{made[0]['id']}/cancel", headers=bearer(org["owner"]))
    canceled = envelope(client.get("/v1/jobs?status=canceled", headers=headers))["data"]
    assert [j["id"] for j in canceled] == [made[0]["id"]]
    both = envelope(client.get("/v1/jobs?status=canceled,queued", headers=headers))["data"]
    assert len(both) == 5
    since = before.isoformat().replace("+00:00", "Z")
    assert len(envelope(client.get(f"/v1/jobs?since={since}", headers=headers))["data"]) == 5
    until = client.get("/v1/jobs", params={"until": before.isoformat()}, headers=headers)
    assert envelope(until)["data"] == []
    for query, path in (
        ("status=finished", "query.status"),
        ("since=yesterday", "query.since"),
        ("cursor=garbage", "query.cursor"),
        ("limit=0", "query.limit"),
    ):
        bad = client.get(f"/v1/jobs?{query}", headers=headers)
        assert bad.status_code == 400, query
        assert envelope(bad)["error"]["details"]["path"] == path


# -- the worker protocol ------------------------------------------------------------------


def test_claim_heartbeat_complete_meters_usage_and_settles_the_cost(
    client: httpx.Client, org: dict
) -> None:
    job = submit(client, org["submit"], estimated_units=100)
    (claimed,) = claim(client, org["work"], limit=5)
    assert claimed["id"] == job["id"]
    assert claimed["status"] == "running" and claimed["attempts"] == 1
    assert claimed["started_at"] and claimed["worker"].startswith("api_key:")
    expires = datetime.fromisoformat(claimed["lease_expires_at"])
    beat = client.post(
        f"/v1/jobs/{job['id']}/heartbeat",
        json={**lease(claimed), "lease_seconds": 600},
        headers=org["work"],
    )
    assert datetime.fromisoformat(envelope(beat)["data"]["lease_expires_at"]) > expires
    done = client.post(
        f"/v1/jobs/{job['id']}/complete",
        json={
            **lease(claimed),
            "result": {"frames": 90},
            "usage": [
                {"metric": "frames", "quantity": 90},
                {"metric": "gpu_seconds", "quantity": 12.5},
            ],
            "artifact_url": "https://cdn.example.test/render.mp4",
        },
        headers=org["work"],
    )
    finished = envelope(done)["data"]
    assert finished["status"] == "succeeded"
    assert finished["result"] == {"frames": 90}
    assert finished["artifact_url"] == "https://cdn.example.test/render.mp4"
    assert finished["cost"] == 1.4  # 0.5 + 0.01 x 90; gpu_seconds is not priced
    assert finished["completed_at"] and finished["lease_expires_at"] is None
    got = client.get(f"/v1/jobs/{job['id']}/usage", headers=org["submit"])
    assert got.status_code == 200, got.text
    usage = envelope(got)["data"]
    assert usage["cost"] == 1.4 and usage["cost_estimate"] == 1.5
    metered = {r["metric"]: (r["quantity"], r["cost"]) for r in usage["records"]}
    assert metered == {"jobs": (1, 0.5), "frames": (90, 0.9), "gpu_seconds": (12.5, 0)}
    assert {r["job_type"] for r in usage["records"]} == {"render"}
    again = client.post(f"/v1/jobs/{job['id']}/complete", json=lease(claimed), headers=org["work"])
    assert again.status_code == 409 and error_code(again) == "lease_lost"


def test_a_failed_attempt_is_retried_with_backoff_until_dead(
    client: httpx.Client, org: dict
) -> None:
    drain(client, org["work"])
    job = submit(client, org["submit"], type="quick")  # max_attempts 2
    (first,) = claim(client, org["work"])
    assert first["id"] == job["id"]
    failed = envelope(
        client.post(
            f"/v1/jobs/{job['id']}/fail",
            json={**lease(first), "error_code": "gpu_oom", "error_message": "out of memory"},
            headers=org["work"],
        )
    )["data"]
    assert failed["status"] == "queued" and failed["attempts"] == 1
    assert failed["error_code"] == "gpu_oom" and failed["error_message"] == "out of memory"
    # backoff base 0.2 s in tests: the first retry waits between 0.1 and 0.2 s
    wait = datetime.fromisoformat(failed["next_attempt_at"]) - datetime.fromisoformat(
        failed["updated_at"]
    )
    assert timedelta(seconds=0.09) <= wait <= timedelta(seconds=0.21), wait
    assert claim(client, org["work"]) == [] or wait < timedelta(seconds=0.05)
    time.sleep(0.25)
    (second,) = claim(client, org["work"])
    assert second["id"] == job["id"] and second["attempts"] == 2
    dead = envelope(
        client.post(
            f"/v1/jobs/{job['id']}/fail",
            json={**lease(second), "error_code": "gpu_oom"},
            headers=org["work"],
        )
    )["data"]
    assert dead["status"] == "dead" and dead["completed_at"] and dead["next_attempt_at"] is None
    time.sleep(0.3)
    assert claim(client, org["work"]) == []


def test_a_failure_that_retrying_cannot_fix_is_dead_at_once(
    client: httpx.Client, org: dict
) -> None:
    drain(client, org["work"])
    job = submit(client, org["submit"])
    (claimed,) = claim(client, org["work"])
    response = client.post(
        f"/v1/jobs/{job['id']}/fail",
        json={**lease(claimed), "error_code": "bad_input", "retryable": False},
        headers=org["work"],
    )
    assert envelope(response)["data"]["status"] == "dead"
    assert envelope(response)["data"]["attempts"] == 1


def test_a_job_whose_stored_input_cannot_be_returned_never_breaks_a_claim(
    client: httpx.Client, org: dict, database_url: str
) -> None:
    """A job stored before inputs were bounded at submission (here: an integer past 64
    bits, which jsonb keeps and the encoder refuses) is buried, not leased and lost."""
    drain(client, org["work"])
    poisoned = submit(client, org["submit"], input={"n": 1})
    good = submit(client, org["submit"], input={"n": 2})
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE jobs SET input = '{\"n\": 1180591620717411303424}'::jsonb WHERE id = %s",
            (poisoned["id"],),
        )
    claimed = claim(client, org["work"], limit=10)
    assert [j["id"] for j in claimed] == [good["id"]]
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT status, error_code, lease_token_hash FROM jobs WHERE id = %s",
            (poisoned["id"],),
        ).fetchone()
    assert row == ("dead", "unencodable", None)


def test_an_expired_lease_puts_the_job_back_and_heartbeats_keep_it(
    client: httpx.Client, org: dict
) -> None:
    drain(client, org["work"])
    kept, lost = submit(client, org["submit"]), submit(client, org["submit"])
    claimed = {j["id"]: j for j in claim(client, org["work"], limit=2, lease_seconds=1)}
    assert set(claimed) == {kept["id"], lost["id"]}
    for _ in range(6):
        time.sleep(0.3)
        beat = client.post(
            f"/v1/jobs/{kept['id']}/heartbeat", json=lease(claimed[kept["id"]]), headers=org["work"]
        )
        assert beat.status_code == 200, beat.text
    assert job_of(client, org["submit"], kept["id"])["status"] == "running"
    back = job_of(client, org["submit"], lost["id"])
    assert back["status"] == "queued" and back["error_code"] == "lease_expired"
    assert back["attempts"] == 1 and back["worker"] is None
    late = client.post(
        f"/v1/jobs/{lost['id']}/complete", json=lease(claimed[lost["id"]]), headers=org["work"]
    )
    assert late.status_code == 409 and "not running" in envelope(late)["error"]["message"]
    assert error_code(late) == "lease_lost"
    (again,) = claim(client, org["work"])
    assert again["id"] == lost["id"] and again["attempts"] == 2


def test_a_stale_worker_whose_job_was_claimed_again_changes_nothing(
    client: httpx.Client, org: dict
) -> None:
    """Regression (issue 8, item 4): the worker whose lease ran out used to overwrite the
    live attempt's job; the lease token of each attempt now tells them apart, even when
    both attempts were claimed with the same API key."""
    drain(client, org["work"])
    job = submit(client, org["submit"], type="brief")  # lease_seconds 1
    (stale,) = claim(client, org["work"])
    assert stale["id"] == job["id"] and stale["lease_token"]
    deadline = time.monotonic() + 10
    live: dict[str, Any] | None = None
    while live is None:
        assert time.monotonic() < deadline, "the expired lease was never claimed again"
        time.sleep(0.3)
        live = next(iter(claim(client, org["work"])), None)
    assert live["id"] == job["id"] and live["attempts"] == 2
    assert live["lease_token"] != stale["lease_token"]
    path = f"/v1/jobs/{job['id']}"
    for suffix, body in (
        ("/complete", {"result": {"by": "stale"}}),
        ("/fail", {"error_code": "stale", "retryable": False}),
        ("/heartbeat", {"lease_seconds": 3600}),
    ):
        late = client.post(path + suffix, json={**lease(stale), **body}, headers=org["work"])
        assert late.status_code == 409, (suffix, late.text)
        assert error_code(late) == "lease_lost"
    wrong = client.post(
        path + "/complete", json={"lease_token": "not-the-token"}, headers=org["work"]
    )
    assert wrong.status_code == 409 and error_code(wrong) == "lease_lost"
    missing = client.post(path + "/complete", json={"result": 1}, headers=org["work"])
    assert missing.status_code == 400, missing.text
    assert "lease_token" in missing.text
    untouched = job_of(client, org["submit"], job["id"])
    assert untouched["status"] == "running" and untouched["attempts"] == 2
    assert untouched["result"] is None and untouched["error_code"] == "lease_expired"
    assert untouched["lease_expires_at"] == live["lease_expires_at"]
    done = client.post(
        path + "/complete", json={**lease(live), "result": {"by": "live"}}, headers=org["work"]
    )
    assert done.status_code == 200, done.text
    again = client.post(
        path + "/complete", json={**lease(stale), "result": {"by": "stale"}}, headers=org["work"]
    )
    assert again.status_code == 409 and error_code(again) == "lease_lost"
    final = job_of(client, org["submit"], job["id"])
    assert final["status"] == "succeeded" and final["result"] == {"by": "live"}
    assert "lease_token" not in final


def test_cancel_and_retry(client: httpx.Client, org: dict) -> None:
    drain(client, org["work"])
    manage = key_auth(create_key(client, org["owner"], org["id"], scopes=["jobs.manage"]))
    queued, running = submit(client, org["submit"]), submit(client, org["submit"])
    (leased,) = claim(client, org["work"], limit=1)
    running_now = job_of(client, org["submit"], running["id"])
    first = queued if running_now["status"] == "queued" else running
    second = running if first is queued else queued
    canceled = envelope(client.post(f"/v1/jobs/{first['id']}/cancel", headers=manage))["data"]
    assert canceled["status"] == "canceled" and canceled["canceled_at"]
    stopped = envelope(client.post(f"/v1/jobs/{second['id']}/cancel", headers=manage))["data"]
    assert stopped["status"] == "canceled" and stopped["worker"] is None
    beat = client.post(
        f"/v1/jobs/{second['id']}/heartbeat", json=lease(leased), headers=org["work"]
    )
    assert beat.status_code == 409  # the worker learns to stop
    assert error_code(beat) == "lease_lost"
    twice = client.post(f"/v1/jobs/{first['id']}/cancel", headers=manage)
    assert twice.status_code == 409 and error_code(twice) == "conflict"
    assert claim(client, org["work"], limit=10) == []
    retried = envelope(client.post(f"/v1/jobs/{first['id']}/retry", headers=manage))["data"]
    assert retried["status"] == "queued" and retried["attempts"] == 0
    assert retried["canceled_at"] is None
    assert [j["id"] for j in claim(client, org["work"], limit=10)] == [first["id"]]
    not_dead = client.post(f"/v1/jobs/{first['id']}/retry", headers=manage)
    assert not_dead.status_code == 409
    cannot = client.post(f"/v1/jobs/{first['id']}/cancel", headers=org["work"])
    assert cannot.status_code == 403


def test_worker_routes_need_the_work_scope_and_the_lease(client: httpx.Client, org: dict) -> None:
    refused = client.post("/v1/jobs/claim", json={}, headers=org["submit"])
    assert refused.status_code == 403
    drain(client, org["work"])
    job = submit(client, org["submit"])
    other = key_auth(create_key(client, org["owner"], org["id"], scopes=["jobs:work"]))
    (claimed,) = claim(client, org["work"])
    stolen = client.post(f"/v1/jobs/{job['id']}/complete", json=lease(claimed), headers=other)
    assert stolen.status_code == 409 and error_code(stolen) == "lease_lost"
    assert "another worker" in envelope(stolen)["error"]["message"]
    for body in ({"limit": 0}, {"limit": 1001}, {"types": []}, {"lease_seconds": 0}):
        bad = client.post("/v1/jobs/claim", json=body, headers=org["work"])
        assert bad.status_code == 400, body
    bad_url = client.post(
        f"/v1/jobs/{job['id']}/complete",
        json={**lease(claimed), "artifact_url": "javascript:alert(1)"},
        headers=org["work"],
    )
    assert bad_url.status_code == 400
    bad_code = client.post(
        f"/v1/jobs/{job['id']}/fail",
        json={**lease(claimed), "error_code": "Not A Code"},
        headers=org["work"],
    )
    assert bad_code.status_code == 400


def test_claim_takes_only_the_types_asked_for(client: httpx.Client, org: dict) -> None:
    drain(client, org["work"])
    quick = submit(client, org["submit"], type="quick")
    submit(client, org["submit"], type="render")
    assert [j["id"] for j in claim(client, org["work"], limit=10, types=["quick"])] == [quick["id"]]


def test_a_claims_lease_tokens_are_never_stored_for_a_replay(
    client: httpx.Client, org: dict, database_url: str
) -> None:
    """Lease tokens are kept only as keyed hashes: an Idempotency-Key on a claim stores
    no answer, and a retry with it leases other jobs rather than replaying the tokens."""
    drain(client, org["work"])
    first, second = submit(client, org["submit"]), submit(client, org["submit"])
    key = f"claim-{uuid.uuid4()}"
    headers = {**org["work"], "Idempotency-Key": key}
    got = [
        envelope(client.post("/v1/jobs/claim", json={"limit": 1}, headers=headers))["data"]
        for _ in range(2)
    ]
    assert {got[0][0]["id"], got[1][0]["id"]} == {first["id"], second["id"]}
    with psycopg.connect(database_url) as conn:
        (stored,) = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE key = %s", (key,)
        ).fetchone()
    assert stored == 0


def test_another_organizations_jobs_do_not_exist(client: httpx.Client, org: dict) -> None:
    job = submit(client, org["submit"])
    stranger = signup(client)
    theirs = create_org(client, stranger, "Other")
    their_worker = key_auth(create_key(client, stranger, theirs["id"], scopes=["*"]))
    for method, suffix in (
        ("GET", ""),
        ("GET", "/usage"),
        ("POST", "/cancel"),
        ("POST", "/retry"),
        ("POST", "/heartbeat"),
        ("POST", "/complete"),
        ("POST", "/fail"),
    ):
        body = {"error_code": "x"} if suffix == "/fail" else {}
        if suffix in ("/heartbeat", "/complete", "/fail"):
            body["lease_token"] = "a-well-formed-but-foreign-token"
        for headers in (their_worker, bearer(stranger)):
            response = client.request(
                method, f"/v1/jobs/{job['id']}{suffix}", json=body, headers=headers
            )
            assert response.status_code == 404, (method, suffix, response.text)
    assert claim(client, their_worker, limit=100) == []
    listed = client.get(f"/v1/jobs?organization_id={org['id']}", headers=bearer(stranger))
    assert listed.status_code == 404
    into = client.post(
        "/v1/jobs",
        json={"type": "render", "organization_id": org["id"]},
        headers=once(their_worker),
    )
    assert into.status_code == 404


def test_only_a_platform_admin_grants_the_every_organization_scope(
    client: httpx.Client, org: dict, admin: dict
) -> None:
    body = {"organization_id": org["id"], "name": "pool", "scopes": ["jobs:work", "jobs:work:any"]}
    refused = client.post("/v1/api-keys", json=body, headers=bearer(org["owner"]))
    assert refused.status_code == 403


# -- fairness -----------------------------------------------------------------------------


def test_a_backlog_in_one_organization_does_not_starve_another(
    client: httpx.Client, admin: dict
) -> None:
    busy_owner, quiet_owner = signup(client), signup(client)
    busy, quiet = create_org(client, busy_owner, "Busy"), create_org(client, quiet_owner, "Quiet")
    busy_key = key_auth(create_key(client, busy_owner, busy["id"], scopes=["jobs.submit"]))
    quiet_key = key_auth(create_key(client, quiet_owner, quiet["id"], scopes=["jobs.submit"]))
    pool_org = create_org(client, admin, "Worker pool")
    pool = key_auth(
        create_key(client, admin, pool_org["id"], scopes=["jobs:work", "jobs:work:any"])
    )
    drain(client, pool)

    def post(i: int) -> int:
        body = {"type": "default", "input": {"i": i}}
        return client.post("/v1/jobs", json=body, headers=once(busy_key)).status_code

    # httpx clients are thread-safe: one shared pool of connections, not one client each.
    with concurrent.futures.ThreadPoolExecutor(8) as workers:
        assert set(workers.map(post, range(1000))) == {201}
    lonely = submit(client, quiet_key, type="default")
    # One job at a time: each claim takes the best job of an organization picked fairly,
    # so the quiet organization's job comes up within a few claims, not after 1,000.
    claims = 0
    while True:
        (got,) = claim(client, pool, limit=1)
        claims += 1
        if got["id"] == lonely["id"]:
            break
        assert claims < 20, "the quiet organization's job waited behind the backlog"
    # In a batch, every organization with work gets its turn before anyone gets a second.
    second = submit(client, quiet_key, type="default")
    batch = claim(client, pool, limit=10)
    assert second["id"] in [j["id"] for j in batch]
    assert {j["organization_id"] for j in batch} == {busy["id"], quiet["id"]}
    drain(client, pool)


# -- events -------------------------------------------------------------------------------


def test_every_state_change_is_an_event_on_the_jobs_stream(
    client: httpx.Client, server: Server, org: dict
) -> None:
    drain(client, org["work"])
    job = submit(client, org["submit"])
    work = org["work"]
    path = f"/v1/jobs/{job['id']}/events"
    with open_stream(server, bearer(org["owner"]), {"after": "0-0"}, path=path) as opened:
        stream = opened.past_gap()
        (first,) = claim(client, work)
        client.post(
            f"/v1/jobs/{job['id']}/fail", json={**lease(first), "error_code": "flaky"}, headers=work
        )
        time.sleep(0.25)
        claim(client, work, lease_seconds=1)  # then let the lease run out
        time.sleep(1.5)
        claim(client, work)
        manage = bearer(org["owner"])
        client.post(f"/v1/jobs/{job['id']}/cancel", headers=manage).raise_for_status()
        client.post(f"/v1/jobs/{job['id']}/retry", headers=manage).raise_for_status()
        (last,) = claim(client, work)
        client.post(
            f"/v1/jobs/{job['id']}/complete", json=lease(last), headers=work
        ).raise_for_status()
        frames = stream.until("job.succeeded")
    assert [f["event"] for f in frames] == [
        "job.queued",
        "job.running",
        "job.failed",
        "job.running",
        "job.requeued",
        "job.running",
        "job.canceled",
        "job.retried",
        "job.running",
        "job.succeeded",
    ]
    assert {f["data"]["job_id"] for f in frames} == {job["id"]}
    failed = frames[2]["data"]["data"]
    assert failed["error_code"] == "flaky" and failed["next_attempt_at"]
    assert frames[-1]["data"]["data"]["status"] == "succeeded"
    assert "input" not in frames[0]["data"]["data"]
