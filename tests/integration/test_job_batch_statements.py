"""A batch is a constant number of PostgreSQL statements, whatever its size: counted on a
real connection while the batch services run against jobs a real server queued."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from tests.support.jobs import claim, job_org, once
from tests.support.servers import Server
from treadle.services.job_batches import JobBatches
from treadle.services.jobs import Jobs
from treadle.services.principal import Actor, Principal
from treadle.settings import Settings
from treadle.store.db import Database


class Counting(psycopg.AsyncConnection[Any]):
    """A connection that counts the statements sent through it."""

    statements = 0

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        Counting.statements += 1
        return await super().execute(*args, **kwargs)


def _counted(server: Server, call: Any) -> int:
    async def run() -> int:
        settings = Settings.from_env(server.env)
        db = Database(settings.database_url, 1, 1, connection_class=Counting)
        await db.open()
        try:
            batches = JobBatches(Jobs(settings, db))
            Counting.statements = 0
            await call(batches)
            return Counting.statements
        finally:
            await db.close()

    return asyncio.run(run())


@pytest.mark.parametrize("route", ["complete", "fail", "heartbeat"])
def test_worker_batches_of_5_and_of_200_run_the_same_statements(server: Server, route: str) -> None:
    with server.client() as client:
        org = job_org(client)
        queued = client.post(
            "/v1/jobs/batch",
            json={"jobs": [{"type": "render", "input": {"i": i}} for i in range(205)]},
            headers=once(org["submit"]),
        )
        assert queued.status_code == 201, queued.text
        claimed = claim(client, org["work"], limit=205)
    worker = claimed[0]["worker"]

    def items(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "id": uuid.UUID(job["id"]),
                "lease_token": job["lease_token"],
                "result": {"n": 1},
                "usage": [{"metric": "frames", "quantity": 2}],
                "artifact_url": None,
                "error_code": "flaky",
                "error_message": "",
                "retryable": True,
                "lease_seconds": None,
            }
            for job in jobs
        ]

    counts = []
    for jobs in (claimed[:5], claimed[5:]):

        async def call(batches: JobBatches, jobs: list[dict[str, Any]] = jobs) -> None:
            outcomes = await getattr(batches, route)(worker, None, items(jobs))
            assert all(isinstance(o, dict) for o in outcomes), outcomes

        counts.append(_counted(server, call))
    assert counts[0] == counts[1]
    assert counts[0] <= 5


def test_a_batch_submission_of_3_and_of_1000_runs_the_same_statements(server: Server) -> None:
    with server.client() as client:
        org = job_org(client)
        me = client.get("/v1/me", headers=org["submit"]).json()["data"]
    principal = Principal(
        id=me["id"],
        kind="api_key",
        user_id=None,
        session_id=None,
        email="",
        is_platform_admin=False,
        organization_id=org["id"],
    )
    actor = Actor(principal, "test", "127.0.0.1", "pytest")
    job = {
        "type": "render",
        "input": {},
        "team_id": None,
        "priority": 0,
        "estimated_units": 1.0,
        "max_attempts": None,
        "lease_seconds": None,
        "labels": {},
    }
    counts = []
    for n in (3, 1000):

        async def call(batches: JobBatches, n: int = n) -> None:
            created = await batches.submit(actor, org["id"], [job] * n)
            assert len(created) == n

        counts.append(_counted(server, call))
    assert counts[0] == counts[1] <= 3
