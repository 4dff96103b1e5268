"""Workflow runs across SIGKILL: what a run has done is in PostgreSQL, so a new process
carries every run to its end with each node run exactly once."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import bearer, envelope
from tests.support.jobs import claim, job_org
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage


@pytest.fixture
def storage(database_url: str, server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    with own_storage(database_url, server_env, "workflows") as env:
        yield env


def _start(env: dict[str, str], tmp_path) -> Server:
    env = {**env, "TREADLE_PORT": str(free_port())}
    return start_server("granian", env, tmp_path / f"server-{secrets.token_hex(3)}.log")


def _complete(client: httpx.Client, work: dict[str, str], job: dict[str, Any]) -> None:
    done = client.post(
        f"/v1/jobs/{job['id']}/complete",
        json={"lease_token": job["lease_token"], "result": {"node": job["workflow_node"]}},
        headers=work,
    )
    assert done.status_code == 200, done.text


def _run(client: httpx.Client, org: dict, run_id: str) -> dict[str, Any]:
    return dict(
        envelope(client.get(f"/v1/workflow-runs/{run_id}", headers=bearer(org["owner"])))["data"]
    )


def test_runs_killed_mid_delay_and_mid_job_finish_after_restart_each_node_once(
    storage: dict[str, str], tmp_path
) -> None:
    first = _start(storage, tmp_path)
    try:
        with first.client() as client:
            org = job_org(client)
            definition = envelope(
                client.post(
                    "/v1/workflow-definitions",
                    json={
                        "organization_id": org["id"],
                        "name": "restart",
                        "nodes": [
                            {"id": "a", "type": "job", "job_type": "render"},
                            {"id": "wait", "type": "delay", "seconds": 2, "after": ["a"]},
                            {"id": "b", "type": "job", "job_type": "render", "after": ["wait"]},
                        ],
                    },
                    headers=bearer(org["owner"]),
                )
            )["data"]
            runs = [
                envelope(
                    client.post(
                        "/v1/workflow-runs",
                        json={"organization_id": org["id"], "definition_id": definition["id"]},
                        headers={**bearer(org["owner"]), "Idempotency-Key": str(uuid.uuid4())},
                    )
                )["data"]["id"]
                for _ in range(3)
            ]
            a_jobs = claim(client, org["work"], limit=10)
            assert sorted(j["workflow_node"] for j in a_jobs) == ["a", "a", "a"]
            _complete(client, org["work"], a_jobs[0])
            _complete(client, org["work"], a_jobs[1])
            # Killed at once after the completions answered: their delays are pending;
            # the third run's job is still leased to this worker.
    finally:
        first.kill()
    second = _start(storage, tmp_path)
    try:
        with second.client() as client:
            _complete(client, org["work"], a_jobs[2])  # the lease outlived the process
            deadline = time.monotonic() + 20
            finished: dict[str, dict[str, Any]] = {}
            while len(finished) < len(runs) and time.monotonic() < deadline:
                for job in claim(client, org["work"], limit=10):
                    _complete(client, org["work"], job)
                for run_id in runs:
                    run = _run(client, org, run_id)
                    if run["status"] != "running":
                        finished[run_id] = run
                time.sleep(0.2)
    finally:
        second.stop()
    assert {r["status"] for r in finished.values()} == {"succeeded"}, finished
    assert len(finished) == 3
    with psycopg.connect(storage["TREADLE_DATABASE_URL"]) as conn:
        per_node = conn.execute(
            "SELECT workflow_run_id, workflow_node, count(*), bool_and(status = 'succeeded')"
            " FROM jobs WHERE workflow_run_id = ANY(%s::uuid[]) GROUP BY 1, 2",
            (runs,),
        ).fetchall()
    assert sorted((str(r), n, c, ok) for r, n, c, ok in per_node) == sorted(
        (run_id, node, 1, True) for run_id in runs for node in ("a", "b")
    )
