"""Workflow runs across SIGKILL: what a run has done is in PostgreSQL, so a new process
carries every run to its end with each node run exactly once."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
        finished = _finish_all(second, org, runs)
    finally:
        second.stop()
    assert {r["status"] for r in finished.values()} == {"succeeded"}, finished
    assert len(finished) == 3
    assert _jobs_per_node(storage["TREADLE_DATABASE_URL"], runs) == sorted(
        (run_id, node, 1, True) for run_id in runs for node in ("a", "b")
    )


def _define(client: httpx.Client, org: dict, name: str, nodes: list[dict]) -> dict[str, Any]:
    made = client.post(
        "/v1/workflow-definitions",
        json={"organization_id": org["id"], "name": name, "nodes": nodes},
        headers=bearer(org["owner"]),
    )
    assert made.status_code == 201, made.text
    return dict(envelope(made)["data"])


def _runs(client: httpx.Client, org: dict, definition: dict, count: int) -> list[str]:
    return [
        envelope(
            client.post(
                "/v1/workflow-runs",
                json={"organization_id": org["id"], "definition_id": definition["id"]},
                headers={**bearer(org["owner"]), "Idempotency-Key": str(uuid.uuid4())},
            )
        )["data"]["id"]
        for _ in range(count)
    ]


def _finish_all(server: Server, org: dict, runs: list[str]) -> dict[str, dict[str, Any]]:
    """Work every job the runs queue until each has ended; the runs as they ended."""
    finished: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 30
    with server.client() as client:
        while len(finished) < len(runs) and time.monotonic() < deadline:
            for job in claim(client, org["work"], limit=200):
                _complete(client, org["work"], job)
            for run_id in runs:
                if run_id not in finished:
                    run = _run(client, org, run_id)
                    if run["status"] not in ("running", "paused", "created"):
                        finished[run_id] = run
            time.sleep(0.1)
    return finished


def _jobs_per_node(database_url: str, runs: list[str]) -> list[tuple[str, str, int, bool]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT workflow_run_id, workflow_node, count(*), bool_and(status = 'succeeded')"
            " FROM jobs WHERE workflow_run_id = ANY(%s::uuid[]) GROUP BY 1, 2",
            (runs,),
        ).fetchall()
    return sorted((str(r), n, c, ok) for r, n, c, ok in rows)


def test_runs_killed_while_their_timers_fire_finish_after_restart_each_node_once(
    storage: dict[str, str], tmp_path
) -> None:
    first = _start(storage, tmp_path)
    database_url = storage["TREADLE_DATABASE_URL"]
    try:
        with first.client() as client:
            org = job_org(client)
            definition = _define(
                client,
                org,
                "timers",
                [
                    {"id": "wait", "type": "delay", "seconds": 3600},
                    {"id": "b", "type": "job", "job_type": "render", "after": ["wait"]},
                ],
            )
            runs = _runs(client, org, definition, 400)
        with psycopg.connect(database_url, autocommit=True) as conn:
            # Every timer due at once: the sweep fires them 100 to a transaction, and the
            # process is killed as soon as the first of those transactions has committed.
            conn.execute("UPDATE workflow_nodes SET fire_at = now() WHERE node = 'wait'")
            deadline = time.monotonic() + 10
            fired = 0
            while fired == 0 and time.monotonic() < deadline:
                (fired,) = conn.execute(
                    "SELECT count(*) FROM jobs WHERE workflow_node = 'b'"
                ).fetchone()
                time.sleep(0.002)
            first.kill()
    finally:
        first.kill()
    assert 0 < fired < len(runs), fired  # killed while firing, not before or after
    second = _start(storage, tmp_path)
    try:
        finished = _finish_all(second, org, runs)
    finally:
        second.stop()
    assert len(finished) == len(runs)
    assert {r["status"] for r in finished.values()} == {"succeeded"}
    assert _jobs_per_node(database_url, runs) == sorted((r, "b", 1, True) for r in runs)


def test_runs_killed_while_approvals_are_decided_finish_after_restart_each_decision_once(
    storage: dict[str, str], tmp_path
) -> None:
    first = _start(storage, tmp_path)
    database_url = storage["TREADLE_DATABASE_URL"]
    try:
        with first.client() as client:
            org = job_org(client)
            definition = _define(
                client,
                org,
                "gates",
                [
                    {
                        "id": "gate",
                        "type": "approval",
                        "approvers": {"roles": ["owner"]},
                        "allow_submitter": True,
                    },
                    {
                        "id": "ship",
                        "type": "job",
                        "job_type": "render",
                        "after": [{"node": "gate", "when": "approved"}],
                    },
                ],
            )
            runs = _runs(client, org, definition, 60)

        def approve(run_id: str) -> int:
            try:
                with first.client() as c:
                    return c.post(
                        f"/v1/workflow-runs/{run_id}/approve",
                        json={"node": "gate", "decision": "approve"},
                        headers=bearer(org["owner"]),
                    ).status_code
            except httpx.HTTPError:
                return 0  # the process died under it

        with ThreadPoolExecutor(4) as pool:
            answers = [pool.submit(approve, run_id) for run_id in runs]
            while sum(a.done() for a in answers) < 10:
                time.sleep(0.002)
            first.kill()
            codes = [a.result() for a in answers]
    finally:
        first.kill()
    assert 10 <= codes.count(200) < len(runs), codes
    second = _start(storage, tmp_path)
    try:
        with second.client() as client:
            # Whatever was recorded stays; deciding again is refused, the rest is taken.
            again = [
                client.post(
                    f"/v1/workflow-runs/{run_id}/approve",
                    json={"node": "gate", "decision": "approve"},
                    headers=bearer(org["owner"]),
                ).status_code
                for run_id in runs
            ]
        for code, before in zip(again, codes, strict=True):
            assert code == (409 if before == 200 else code), (code, before)
            assert code in (200, 409)
        finished = _finish_all(second, org, runs)
    finally:
        second.stop()
    assert {r["status"] for r in finished.values()} == {"succeeded"}
    assert len(finished) == len(runs)
    assert _jobs_per_node(database_url, runs) == sorted((r, "ship", 1, True) for r in runs)
    with psycopg.connect(database_url) as conn:
        decisions = conn.execute(
            "SELECT run_id, count(*) FROM workflow_approval_decisions"
            " WHERE run_id = ANY(%s::uuid[]) GROUP BY 1",
            (runs,),
        ).fetchall()
    assert sorted((str(r), c) for r, c in decisions) == sorted((r, 1) for r in runs)
