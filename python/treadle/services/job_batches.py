"""Jobs in batches: submission of many under one Idempotency-Key, and the worker protocol
(complete, fail, heartbeat) for many leased jobs at once.

Each batch runs a constant number of statements, whatever its size: the jobs are locked
with one ``SELECT … FOR UPDATE``, changed with one ``UPDATE … FROM unnest(…)``, metered with
one ``INSERT`` and announced with one outbox ``INSERT`` and one notification. The worker
routes answer per item, in request order: an item that fails (invalid, not leased by the
caller, already finished) fails alone, and the others commit.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

from treadle.errors import ApiError
from treadle.services.jobs import (
    Jobs,
    backoff,
    job_event,
    job_type,
    new_job,
    public_job,
    submitter,
    usage_records,
)
from treadle.services.principal import Actor
from treadle.store import events
from treadle.store import jobs as job_store
from treadle.store import orgs as org_store
from treadle.store import teams as team_store
from treadle.store import usage as usage_store
from treadle.store.db import Conn

Row = dict[str, Any]
# An item of a worker batch: decoded fields, or why it could not be decoded.
Item = Row | ApiError
Outcome = Row | ApiError


class JobBatches:
    def __init__(self, jobs: Jobs) -> None:
        self.jobs = jobs
        self.db = jobs.db
        self.settings = jobs.settings

    async def submit(self, actor: Actor, org_id: UUID, items: list[Row]) -> list[Row]:
        """The new jobs, in the order of ``items``; all or none (a retry of the batch is
        answered by the request's Idempotency-Key, so the jobs carry no key of their own)."""
        principal = actor.signed_in
        async with self.db.transaction() as conn:
            org = await org_store.get(conn, org_id)
            assert org is not None
            settings = org["settings"]
            rows = []
            for index, fields in enumerate(items):
                try:
                    kind = job_type(settings, fields["type"])
                except ApiError as exc:
                    raise _at(exc, f"$.jobs[{index}].type") from None
                rows.append(new_job(org_id, kind, fields, *submitter(principal)))
            await self._check_teams(conn, org_id, items)
            created = await job_store.insert_many(conn, rows)
            await events.emit_many(conn, [job_event(row, "job.queued") for row in created])
        return [public_job(row) for row in created]

    async def _check_teams(self, conn: Conn, org_id: UUID, items: list[Row]) -> None:
        wanted = {f["team_id"] for f in items if f["team_id"] is not None}
        if not wanted:
            return
        known = await team_store.ids_in_org(conn, org_id, list(wanted))
        for index, fields in enumerate(items):
            if fields["team_id"] is not None and fields["team_id"] not in known:
                raise ApiError.validation(
                    f"no team {fields['team_id']} in this organization",
                    f"$.jobs[{index}].team_id",
                )

    # -- workers -------------------------------------------------------------------------

    async def complete(self, worker: str, org_id: UUID | None, items: list[Item]) -> list[Outcome]:
        """Finish each leased job with its result and usage (``org_id``: the only
        organization whose jobs the worker may touch; None for every organization)."""

        async def apply(conn: Conn, held: list[tuple[Row, Row]]) -> dict[UUID, Row]:
            metered = [(job, usage_records(job, item["usage"])) for job, item in held]
            done = await job_store.complete_many(
                conn,
                [
                    {
                        "id": job["id"],
                        "result": item["result"],
                        "artifact_url": item["artifact_url"],
                        "cost": sum((r["cost"] for r in records), Decimal(0)),
                    }
                    for (job, item), (_, records) in zip(held, metered, strict=True)
                ],
            )
            await usage_store.insert(conn, [r for _, records in metered for r in records])
            await events.emit_many(
                conn, [job_event(done[j["id"]], "job.succeeded") for j, _ in held]
            )
            await self.jobs.settled(conn, list(done.values()))
            return done

        return await self._leased(worker, org_id, items, apply)

    async def fail(self, worker: str, org_id: UUID | None, items: list[Item]) -> list[Outcome]:
        """Record each failed attempt: back in the queue after a backoff, or dead when its
        attempts are spent or the worker says retrying cannot help."""
        base, cap = self.settings.job_backoff_seconds, self.settings.job_backoff_max_seconds

        async def apply(conn: Conn, held: list[tuple[Row, Row]]) -> dict[UUID, Row]:
            failed = [
                {
                    "id": job["id"],
                    "error_code": item["error_code"],
                    "error_message": item["error_message"],
                    "retry_in": (
                        backoff(job["attempts"], base, cap)
                        if item["retryable"] and job["attempts"] < job["max_attempts"]
                        else None
                    ),
                }
                for job, item in held
            ]
            after = await job_store.fail_many(conn, failed)
            await events.emit_many(
                conn,
                [
                    job_event(row, "job.dead" if row["status"] == "dead" else "job.failed")
                    for row in (after[j["id"]] for j, _ in held)
                ],
            )
            await self.jobs.settled(conn, list(after.values()))
            return after

        return await self._leased(worker, org_id, items, apply)

    async def heartbeat(self, worker: str, org_id: UUID | None, items: list[Item]) -> list[Outcome]:
        """Extend each lease from now (by the item's lease_seconds, or the job's)."""

        async def apply(conn: Conn, held: list[tuple[Row, Row]]) -> dict[UUID, Row]:
            return await job_store.extend_many(
                conn,
                [
                    {
                        "id": job["id"],
                        "lease_seconds": item["lease_seconds"] or job["lease_seconds"],
                    }
                    for job, item in held
                ],
            )

        return await self._leased(worker, org_id, items, apply)

    async def _leased(
        self,
        worker: str,
        org_id: UUID | None,
        items: list[Item],
        apply: Callable[[Conn, list[tuple[Row, Row]]], Any],
    ) -> list[Outcome]:
        """Lock the items' jobs, keep those whose live lease ``worker`` holds with the
        item's token, ``apply`` the change to them in one go, and answer per item."""
        outcomes: list[Outcome | None] = [
            item if isinstance(item, ApiError) else None for item in items
        ]
        first: dict[UUID, int] = {}
        for index, item in enumerate(items):
            if isinstance(item, ApiError):
                continue
            if item["id"] in first:
                outcomes[index] = ApiError.validation(
                    f"job {item['id']} is already item {first[item['id']]} of this batch;"
                    " send each job once",
                    f"$.items[{index}].id",
                )
            else:
                first[item["id"]] = index
        async with self.db.transaction() as conn:
            jobs = await job_store.lock_many(conn, list(first))
            held: list[tuple[Row, Row]] = []
            for job_id, index in first.items():
                item = items[index]
                assert not isinstance(item, ApiError)
                job = jobs.get(job_id)
                if job is None or (org_id is not None and job["organization_id"] != org_id):
                    outcomes[index] = ApiError.not_found(f"no job with id {job_id}")
                    continue
                problem = self.jobs.lease_problem(job, worker, item["lease_token"])
                if problem is not None:
                    outcomes[index] = problem
                    continue
                held.append((job, item))
            if held:
                after = await apply(conn, held)
                for job, _ in held:
                    outcomes[first[job["id"]]] = public_job(after[job["id"]])
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]


def _at(error: ApiError, path: str) -> ApiError:
    """``error`` with its details pointing at ``path``."""
    return error.at(path)
