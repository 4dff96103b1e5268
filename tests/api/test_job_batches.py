"""Jobs in batches over HTTP: up to 1,000 submitted under one Idempotency-Key, and the
worker protocol for many leased jobs per call, answered per item in request order."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import create_key, create_org, envelope, error_code, signup
from tests.support.jobs import claim, job_org, key_auth, once
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return job_org(client)


def batch(client: httpx.Client, org: dict, jobs: list[dict[str, Any]], **headers: str) -> Any:
    return client.post(
        "/v1/jobs/batch", json={"jobs": jobs}, headers={**once(org["submit"]), **headers}
    )


def outcomes(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return list(envelope(response)["data"])


def rows(server: Server, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        return conn.execute(sql, args).fetchall()


def queued_and_claimed(client: httpx.Client, org: dict, n: int) -> list[dict[str, Any]]:
    done = batch(client, org, [{"type": "render", "input": {"i": i}} for i in range(n)])
    assert done.status_code == 201, done.text
    claimed = claim(client, org["work"], limit=n)
    assert len(claimed) == n
    return sorted(claimed, key=lambda j: j["input"]["i"])


# -- submission ---------------------------------------------------------------------------


def test_a_batch_is_queued_in_order_and_a_retry_replays_it_without_new_jobs(
    server: Server, client: httpx.Client, org: dict
) -> None:
    key = str(uuid.uuid4())
    jobs = [{"type": "render", "estimated_units": i, "input": {"i": i}} for i in range(5)]
    first = batch(client, org, jobs, **{"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    answer = envelope(first)["data"]
    assert answer["count"] == 5
    # 0.5 base + 0.01 per frame, for 0..4 frames
    assert answer["cost_estimate"] == pytest.approx(2.5 + 0.1)
    ids = [job["id"] for job in answer["jobs"]]
    assert [job["status"] for job in answer["jobs"]] == ["queued"] * 5
    stored = rows(
        server,
        "SELECT id::text, input->>'i' FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY created_at, id",
        ids,
    )
    assert {row[0]: row[1] for row in stored} == {ids[i]: str(i) for i in range(5)}
    events = rows(server, "SELECT count(*) FROM event_outbox WHERE job_id = ANY(%s::uuid[])", ids)
    assert events == [(5,)]

    again = batch(client, org, jobs, **{"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["data"] == answer
    count = rows(server, "SELECT count(*) FROM jobs WHERE organization_id = %s", org["id"])
    assert count == [(5,)]
    other = batch(client, org, jobs[:4], **{"Idempotency-Key": key})
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"


def test_a_batch_with_one_bad_job_creates_nothing_and_names_it(
    server: Server, client: httpx.Client, org: dict
) -> None:
    for jobs, path in (
        ([{"type": "render"}, {"type": "nope"}], "$.jobs[1].type"),
        ([{"type": "render"}, {"type": "render", "priority": 1000}], "$.jobs[1].priority"),
        (
            [{"type": "render"}, {"type": "render", "team_id": str(uuid.uuid4())}],
            "$.jobs[1].team_id",
        ),
        ([{"type": "render", "organization_id": org["id"]}], "$.jobs[0]"),
    ):
        refused = batch(client, org, jobs)
        assert refused.status_code == 400, refused.text
        assert envelope(refused)["error"]["details"]["path"].startswith(path), refused.text
    for body in ({"jobs": []}, {"jobs": [{"type": "render"}] * 1001}, {"jobs": {}}):
        refused = client.post("/v1/jobs/batch", json=body, headers=once(org["submit"]))
        assert refused.status_code == 400, body
    assert rows(server, "SELECT count(*) FROM jobs WHERE organization_id = %s", org["id"]) == [(0,)]


def test_a_thousand_jobs_in_one_batch(server: Server, client: httpx.Client, org: dict) -> None:
    done = batch(client, org, [{"type": "quick", "input": {"i": i}} for i in range(1000)])
    assert done.status_code == 201, done.text
    assert envelope(done)["data"]["count"] == 1000
    claimed = claim(client, org["work"], limit=1000)
    assert len(claimed) == 1000
    assert len({job["lease_token"] for job in claimed}) == 1000
    items = [{"id": job["id"], "lease_token": job["lease_token"]} for job in claimed]
    finished = outcomes(
        client.post("/v1/jobs/complete", json={"items": items}, headers=org["work"])
    )
    assert all(o["ok"] for o in finished)
    assert rows(
        server,
        "SELECT status, count(*) FROM jobs WHERE organization_id = %s GROUP BY status",
        org["id"],
    ) == [("succeeded", 1000)]


def test_submitting_needs_the_submit_permission_and_a_key(client: httpx.Client, org: dict) -> None:
    refused = client.post(
        "/v1/jobs/batch", json={"jobs": [{"type": "render"}]}, headers=once(org["work"])
    )
    assert refused.status_code == 403
    unkeyed = client.post(
        "/v1/jobs/batch", json={"jobs": [{"type": "render"}]}, headers=org["submit"]
    )
    assert unkeyed.status_code == 428


# -- the worker protocol ------------------------------------------------------------------


def test_complete_answers_per_item_and_one_bad_item_fails_alone(
    server: Server, client: httpx.Client, org: dict
) -> None:
    a, b, c, d = queued_and_claimed(client, org, 4)
    items: list[Any] = [
        {
            "id": a["id"],
            "lease_token": a["lease_token"],
            "result": {"frames": 3},
            "usage": [{"metric": "frames", "quantity": 10}],
        },
        {"id": b["id"], "lease_token": "not-the-token"},
        {"id": c["id"], "lease_token": c["lease_token"], "artifact_url": "javascript:x"},
        {"id": str(uuid.uuid4()), "lease_token": "x"},
        {"id": a["id"], "lease_token": a["lease_token"]},
        "not an object",
        {"id": d["id"], "lease_token": d["lease_token"], "result": [1, 2]},
    ]
    answer = outcomes(client.post("/v1/jobs/complete", json={"items": items}, headers=org["work"]))
    assert [o["index"] for o in answer] == list(range(7))
    assert [(o["ok"], o["status"]) for o in answer] == [
        (True, 200),
        (False, 409),
        (False, 400),
        (False, 404),
        (False, 400),
        (False, 400),
        (True, 200),
    ]
    assert answer[1]["error"]["code"] == "lease_lost"
    assert answer[2]["error"]["details"]["path"] == "$.items[2].artifact_url"
    assert answer[4]["error"]["details"]["path"] == "$.items[4].id"
    assert answer[5]["id"] is None
    assert answer[0]["job"]["status"] == "succeeded"
    assert answer[0]["job"]["result"] == {"frames": 3}
    # 0.5 base + 10 frames x 0.01
    assert answer[0]["job"]["cost"] == pytest.approx(0.6)
    assert answer[6]["job"]["result"] == [1, 2]
    status = dict(
        rows(server, "SELECT id::text, status FROM jobs WHERE organization_id = %s", org["id"])
    )
    assert status == {
        a["id"]: "succeeded",
        b["id"]: "running",
        c["id"]: "running",
        d["id"]: "succeeded",
    }
    usage = rows(
        server,
        "SELECT job_id::text, metric, quantity FROM usage_records WHERE organization_id = %s"
        " AND job_id IS NOT NULL"
        " ORDER BY job_id, metric",
        org["id"],
    )
    assert sorted(usage) == sorted(
        [(a["id"], "frames", 10), (a["id"], "jobs", 1), (d["id"], "jobs", 1)]
    )
    succeeded = rows(
        server,
        "SELECT job_id::text FROM event_outbox WHERE topic = 'job.succeeded'"
        " AND organization_id = %s",
        org["id"],
    )
    assert sorted(r[0] for r in succeeded) == sorted([a["id"], d["id"]])
    # Finished is finished: completing again fails, item by item.
    again = outcomes(
        client.post(
            "/v1/jobs/complete",
            json={"items": [{"id": a["id"], "lease_token": a["lease_token"]}]},
            headers=org["work"],
        )
    )
    assert again[0]["status"] == 409 and "succeeded" in again[0]["error"]["message"]


def test_fail_requeues_or_buries_each_item(server: Server, client: httpx.Client, org: dict) -> None:
    a, b = queued_and_claimed(client, org, 2)
    items = [
        {
            "id": a["id"],
            "lease_token": a["lease_token"],
            "error_code": "flaky",
            "error_message": "try again",
        },
        {
            "id": b["id"],
            "lease_token": b["lease_token"],
            "error_code": "bad_input",
            "retryable": False,
        },
    ]
    answer = outcomes(client.post("/v1/jobs/fail", json={"items": items}, headers=org["work"]))
    assert [o["job"]["status"] for o in answer] == ["queued", "dead"]
    assert answer[0]["job"]["error_code"] == "flaky"
    assert answer[0]["job"]["next_attempt_at"] is not None
    assert answer[1]["job"]["completed_at"] is not None
    topics = rows(
        server,
        "SELECT job_id::text, topic FROM event_outbox WHERE organization_id = %s"
        " AND topic IN ('job.failed', 'job.dead')",
        org["id"],
    )
    assert sorted(topics) == sorted([(a["id"], "job.failed"), (b["id"], "job.dead")])
    stale = outcomes(client.post("/v1/jobs/fail", json={"items": items[:1]}, headers=org["work"]))
    assert stale[0]["error"]["code"] == "lease_lost"


def test_heartbeat_extends_each_lease(server: Server, client: httpx.Client, org: dict) -> None:
    a, b = queued_and_claimed(client, org, 2)
    items = [
        {"id": a["id"], "lease_token": a["lease_token"], "lease_seconds": 600},
        {"id": b["id"], "lease_token": b["lease_token"]},
        {"id": b["id"], "lease_token": b["lease_token"], "lease_seconds": 0},
    ]
    answer = outcomes(client.post("/v1/jobs/heartbeat", json={"items": items}, headers=org["work"]))
    assert [o["ok"] for o in answer] == [True, True, False]
    assert answer[2]["error"]["details"]["path"] == "$.items[2].lease_seconds"
    left = dict(
        rows(
            server,
            "SELECT id::text, extract(epoch FROM lease_expires_at - now()) FROM jobs"
            " WHERE id = ANY(%s::uuid[])",
            [a["id"], b["id"]],
        )
    )
    assert 590 < left[a["id"]] <= 600
    # The type's lease (render: 60 s) when the item names none.
    assert 50 < left[b["id"]] <= 60


def test_another_organizations_jobs_are_not_found_in_a_batch(
    server: Server, client: httpx.Client, org: dict
) -> None:
    (mine,) = queued_and_claimed(client, org, 1)
    owner = signup(client)
    stranger = create_org(client, owner)
    thief = key_auth(create_key(client, owner, stranger["id"], scopes=["jobs:work"]))
    items = [{"id": mine["id"], "lease_token": mine["lease_token"]}]
    for route in ("complete", "fail", "heartbeat"):
        body = {"items": [{**items[0], "error_code": "x"} if route == "fail" else items[0]]}
        answer = outcomes(client.post(f"/v1/jobs/{route}", json=body, headers=thief))
        assert answer[0]["status"] == 404, route
    assert rows(server, "SELECT status FROM jobs WHERE id = %s", mine["id"]) == [("running",)]


def test_worker_batches_need_the_work_scope_and_bounded_items(
    client: httpx.Client, org: dict
) -> None:
    one = {"id": str(uuid.uuid4()), "lease_token": "x"}
    refused = client.post("/v1/jobs/complete", json={"items": [one]}, headers=org["submit"])
    assert refused.status_code == 403
    for body in ({"items": []}, {"items": [one] * 1001}, {"items": {}}, {"jobs": [one]}):
        bad = client.post("/v1/jobs/complete", json=body, headers=org["work"])
        assert bad.status_code == 400, body
