"""What the workflow tests share: an organization whose owner defines and runs workflows."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.support.api import bearer, envelope
from tests.support.jobs import claim, job_org

RUNS = "/v1/workflow-runs"


def workflow_org(client: httpx.Client) -> dict[str, Any]:
    """``job_org`` (job types render, quick, brief; submitting and worker keys), with the
    owner's credentials as ``defs`` for the workflow routes."""
    org = job_org(client)
    org["defs"] = bearer(org["owner"])
    return org


def define(client: httpx.Client, org: dict, nodes: list[Any]) -> dict[str, Any]:
    response = client.post(
        "/v1/workflow-definitions",
        json={"organization_id": org["id"], "name": f"flow-{uuid.uuid4().hex[:8]}", "nodes": nodes},
        headers=org["defs"],
    )
    assert response.status_code == 201, response.text
    return dict(envelope(response)["data"])


def start_run(client: httpx.Client, org: dict, definition: dict, **body: Any) -> httpx.Response:
    return client.post(
        RUNS,
        json={"organization_id": org["id"], "definition_id": definition["id"], **body},
        headers={**org["defs"], "Idempotency-Key": str(uuid.uuid4())},
    )


def run_of(client: httpx.Client, org: dict, run_id: str) -> dict[str, Any]:
    return dict(envelope(client.get(f"{RUNS}/{run_id}", headers=org["defs"]))["data"])


def nodes(run: dict[str, Any]) -> dict[str, str]:
    return {n["node"]: n["status"] for n in run["nodes"]}


def work_one(client: httpx.Client, org: dict, result: Any, batch: bool = False) -> dict[str, Any]:
    """Claim the one queued job and complete it with ``result``; the claimed job."""
    (job,) = claim(client, org["work"], limit=10)
    if batch:
        done = client.post(
            "/v1/jobs/complete",
            json={
                "items": [{"id": job["id"], "lease_token": job["lease_token"], "result": result}]
            },
            headers=org["work"],
        )
        assert envelope(done)["data"][0]["ok"], done.text
    else:
        done = client.post(
            f"/v1/jobs/{job['id']}/complete",
            json={"lease_token": job["lease_token"], "result": result},
            headers=org["work"],
        )
        assert done.status_code == 200, done.text
    return dict(job)


def wait_for(client: httpx.Client, org: dict, run_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        run = run_of(client, org, run_id)
        if run["status"] == status or time.monotonic() > deadline:
            return run
        time.sleep(0.1)
