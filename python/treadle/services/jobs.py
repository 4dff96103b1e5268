"""Jobs: submitted by API consumers, leased to external workers, metered when done.

Every state change is one transaction that also writes the job's event to the outbox
(and, at completion, its usage records), so what a caller was told has happened is what
PostgreSQL holds, and subscribers hear of it even if the process dies right after.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg

from treadle._core import constant_time_eq, derive_key, keyed_hash, random_token
from treadle.background import Background
from treadle.encoding import encodable
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.idempotency import check_same
from treadle.services.principal import Actor, Principal
from treadle.settings import Settings
from treadle.store import events
from treadle.store import jobs as job_store
from treadle.store import orgs as org_store
from treadle.store import teams as team_store
from treadle.store import usage as usage_store
from treadle.store.db import Conn, Database
from treadle.store.jobs import NOW

log = logging.getLogger("treadle.jobs")

Row = dict[str, Any]
DEFAULT_TYPE: Row = {
    "name": "default",
    "base_cost": 0,
    "unit_cost": 0,
    "unit": "units",
    "max_attempts": 3,
    "lease_seconds": 60,
}
# The usage metric that carries a job's base price.
JOB_METRIC = "jobs"
REAP_BATCH = 500
_HIDDEN = ("idempotency_key", "fingerprint", "lease_owner", "run_after", "lease_token_hash")
# How stale workers are told that the attempt they worked on is no longer theirs.
LEASE_LOST = "lease_lost"


def public_job(row: Row) -> Row:
    job = {k: v for k, v in row.items() if k not in _HIDDEN}
    job["worker"] = row["lease_owner"]
    job["next_attempt_at"] = row["run_after"] if row["status"] == "queued" else None
    return job


_NOT_IN_EVENTS = frozenset((*_HIDDEN, "input", "result"))


def _summary(row: Row) -> Row:
    """What a job event carries: the job without its input and result, which may be large
    (one pass over the row: a batch makes a thousand of these)."""
    job = {k: v for k, v in row.items() if k not in _NOT_IN_EVENTS}
    job["worker"] = row["lease_owner"]
    job["next_attempt_at"] = row["run_after"] if row["status"] == "queued" else None
    return job


def job_event(row: Row, topic: str) -> events.Event:
    """The outbox event announcing ``topic`` for the job ``row``."""
    # A job of a workflow run is announced on the run's stream too.
    return (row["organization_id"], topic, _summary(row), row["id"], row.get("workflow_run_id"))


def job_type(settings: Row, name: str) -> Row:
    """The organization's pricing and defaults for ``name``; 400 for a type it lacks."""
    types: dict[str, Row] = {t["name"]: t for t in settings.get("job_types") or [DEFAULT_TYPE]}
    if name not in types:
        known = ", ".join(sorted(types)) or "none"
        raise ApiError.validation(
            f"unknown job type {name!r}; this organization's job types are: {known}"
            " (define more in the organization settings, job_types)",
            "$.type",
        )
    return types[name]


def backoff(attempt: int, base: float, cap: float) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, with half of it random so that
    jobs failed together do not come back together."""
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class Jobs:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        # Lease tokens are stored as keyed hashes: the database alone cannot forge one.
        self.lease_key = derive_key("treadle 2026 job lease tokens", settings.secret_key.encode())
        # Called with the jobs of workflow runs that ended, in the transaction that ended
        # them (the workflow engine sets it): the run advances with the job.
        self.settled_hook: Callable[[Conn, list[Row]], Awaitable[None]] | None = None

    async def settled(self, conn: Conn, rows: list[Row]) -> None:
        """Announce jobs that reached an end to the workflow runs they belong to."""
        ended = [
            r for r in rows if r["workflow_run_id"] is not None and r["status"] in job_store.FINAL
        ]
        if ended and self.settled_hook is not None:
            await self.settled_hook(conn, ended)

    # -- API consumers -------------------------------------------------------------------

    async def submit(
        self, actor: Actor, org_id: UUID, fields: Row, idempotency: tuple[str, str] | None
    ) -> tuple[Row, bool]:
        """The new job, and whether it already existed (a retry after a crash)."""
        principal = actor.signed_in
        key, fingerprint = idempotency or (None, None)
        async with self.db.transaction() as conn:
            org = await org_store.get(conn, org_id)
            assert org is not None
            kind = job_type(org["settings"], fields["type"])
            if fields["team_id"] is not None:
                team = await team_store.get(conn, fields["team_id"])
                if team is None or team["organization_id"] != org_id:
                    raise ApiError.validation(
                        f"no team {fields['team_id']} in this organization", "$.team_id"
                    )
            row = await job_store.insert(
                conn,
                {
                    **new_job(org_id, kind, fields, *submitter(principal)),
                    "idempotency_key": key,
                    "fingerprint": fingerprint,
                },
            )
            if row is None:
                assert key is not None and fingerprint is not None
                found = await job_store.by_idempotency_key(conn, org_id, principal.subject, key)
                assert found is not None
                check_same(found["fingerprint"], fingerprint)
                return public_job(found), True
            await self._event(conn, row, "job.queued")
        return public_job(row), False

    async def get(self, job_id: UUID) -> Row:
        async with self.db.connection() as conn:
            row = await job_store.get(conn, job_id)
        if row is None:
            raise ApiError.not_found(f"no job with id {job_id}")
        return public_job(row)

    async def in_org(self, org_id: UUID, limit: int, **filters: Any) -> list[Row]:
        async with self.db.connection() as conn:
            rows = await job_store.in_org(conn, org_id, limit, **filters)
        return [public_job(r) for r in rows]

    async def cancel(self, actor: Actor, job_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            job = await self._locked(conn, job_id)
            if job["status"] in job_store.FINAL:
                raise ApiError.conflict(
                    f"this job is already {job['status']}", status=job["status"]
                )
            after = await job_store.update(
                conn,
                job_id,
                {
                    "status": "canceled",
                    "canceled_at": NOW,
                    "completed_at": NOW,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "lease_token_hash": None,
                },
            )
            await self._audit(conn, actor, job, after, "cancel")
            await self.settled(conn, [after])
        return public_job(after)

    async def retry(self, actor: Actor, job_id: UUID) -> Row:
        """A dead or canceled job back in the queue, with its attempts counted afresh."""
        async with self.db.transaction() as conn:
            job = await self._locked(conn, job_id)
            if job["status"] not in ("dead", "canceled"):
                raise ApiError.conflict(
                    f"only a dead or canceled job can be retried; this one is {job['status']}",
                    status=job["status"],
                )
            after = await job_store.update(
                conn,
                job_id,
                {
                    "status": "queued",
                    "attempts": 0,
                    "run_after": NOW,
                    "queued_at": NOW,
                    "started_at": None,
                    "completed_at": None,
                    "canceled_at": None,
                    "error_code": None,
                    "error_message": None,
                },
            )
            await self._audit(conn, actor, job, after, "retry")
        return public_job(after)

    async def usage(self, job_id: UUID) -> Row:
        async with self.db.connection() as conn:
            job = await job_store.get(conn, job_id)
            assert job is not None
            records = await usage_store.of_job(conn, job_id)
        return {
            "job_id": job_id,
            "cost_estimate": job["cost_estimate"],
            "cost": job["cost"],
            "records": records,
        }

    # -- workers -------------------------------------------------------------------------

    async def claim(
        self,
        worker: str,
        limit: int,
        org_id: UUID | None,
        types: list[str] | None,
        lease_seconds: int | None,
    ) -> list[Row]:
        """The leased jobs, each with the ``lease_token`` its attempt must present to
        heartbeat, complete or fail (handed out here only)."""
        tokens = {self._hash(t): t for t in (random_token(24) for _ in range(limit))}
        async with self.db.transaction() as conn:
            rows = await job_store.claim(
                conn, worker, limit, org_id, types, lease_seconds, list(tokens)
            )
            jobs = [public_job(row) for row in rows]
            # One encoding of them all tells that the answer can be written; only when it
            # cannot is each job tried on its own.
            if not encodable(jobs):
                kept = []
                for row, job in zip(rows, jobs, strict=True):
                    if encodable(job):
                        kept.append((row, job))
                    else:
                        await self._bury_unreturnable(conn, row)
                rows, jobs = [row for row, _ in kept], [job for _, job in kept]
            await events.emit_many(conn, [job_event(row, "job.running") for row in rows])
        return [
            {**job, "lease_token": tokens[row["lease_token_hash"]]}
            for row, job in zip(rows, jobs, strict=True)
        ]

    async def _bury_unreturnable(self, conn: Conn, row: Row) -> None:
        """A job whose stored input the answer cannot carry (kept before inputs were checked
        at submission) would fail every claim that leased it: it is dead, not leased."""
        log.error("job %s cannot be encoded; marked dead", row["id"])
        after = await job_store.update(
            conn,
            row["id"],
            {
                "status": "dead",
                "error_code": "unencodable",
                "error_message": "the job's stored input cannot be returned as JSON",
                "completed_at": NOW,
                "lease_expires_at": None,
                "lease_token_hash": None,
            },
        )
        await self._event(conn, after, "job.dead")
        await self.settled(conn, [after])

    async def heartbeat(
        self, worker: str, job_id: UUID, token: str, lease_seconds: int | None
    ) -> Row:
        async with self.db.transaction() as conn:
            job = await self._leased(conn, worker, job_id, token)
            row = await job_store.extend_lease(conn, job_id, lease_seconds or job["lease_seconds"])
        assert row is not None
        return public_job(row)

    async def complete(
        self,
        worker: str,
        job_id: UUID,
        token: str,
        result: Any,
        usage: list[Row],
        artifact_url: str | None,
    ) -> Row:
        """Done: the result stored, the usage metered and the job's cost settled."""
        async with self.db.transaction() as conn:
            job = await self._leased(conn, worker, job_id, token)
            records = usage_records(job, usage)
            after = await job_store.update(
                conn,
                job_id,
                {
                    "status": "succeeded",
                    "result": result,
                    "artifact_url": artifact_url,
                    "cost": sum((r["cost"] for r in records), Decimal(0)),
                    "completed_at": NOW,
                    "lease_expires_at": None,
                    "lease_token_hash": None,
                    "error_code": None,
                    "error_message": None,
                },
            )
            await usage_store.insert(conn, records)
            await self._event(conn, after, "job.succeeded")
            await self.settled(conn, [after])
        return public_job(after)

    async def fail(
        self, worker: str, job_id: UUID, token: str, code: str, message: str, retryable: bool
    ) -> Row:
        """A failed attempt: back in the queue after a backoff, or dead when attempts are
        spent (or the worker says retrying cannot help)."""
        async with self.db.transaction() as conn:
            job = await self._leased(conn, worker, job_id, token)
            error = {"error_code": code, "error_message": message}
            if retryable and job["attempts"] < job["max_attempts"]:
                delay = backoff(
                    job["attempts"],
                    self.settings.job_backoff_seconds,
                    self.settings.job_backoff_max_seconds,
                )
                after = await job_store.requeue_later(conn, job_id, delay, error)
                await self._event(conn, after, "job.failed")
            else:
                after = await job_store.update(
                    conn,
                    job_id,
                    {
                        **error,
                        "status": "dead",
                        "completed_at": NOW,
                        "lease_expires_at": None,
                        "lease_token_hash": None,
                    },
                )
                await self._event(conn, after, "job.dead")
                await self.settled(conn, [after])
        return public_job(after)

    async def reap(self) -> int:
        """Requeue (or bury) jobs whose worker stopped heartbeating; how many."""
        async with self.db.transaction() as conn:
            rows = await job_store.reap(conn, REAP_BATCH)
            await events.emit_many(
                conn,
                [
                    job_event(row, "job.dead" if row["status"] == "dead" else "job.requeued")
                    for row in rows
                ],
            )
            await self.settled(conn, rows)
        return len(rows)

    # -- shared --------------------------------------------------------------------------

    async def _locked(self, conn: Conn, job_id: UUID) -> Row:
        job = await job_store.get(conn, job_id, lock=True)
        if job is None:
            raise ApiError.not_found(f"no job with id {job_id}")
        return job

    def _hash(self, token: str) -> str:
        return keyed_hash(self.lease_key, token.encode())

    async def _leased(self, conn: Conn, worker: str, job_id: UUID, token: str) -> Row:
        """The job, locked, if ``worker`` holds its live lease with ``token``; 409
        ``lease_lost`` saying why not otherwise."""
        job = await self._locked(conn, job_id)
        problem = self.lease_problem(job, worker, token)
        if problem is not None:
            raise problem
        return job

    def lease_problem(self, job: Row, worker: str, token: str) -> ApiError | None:
        """Why ``worker`` presenting ``token`` does not hold the live lease on ``job``
        (None: it does). Each claim hands its attempt a new token, so a worker whose lease
        ran out cannot act on the attempt that replaced it, even when that attempt was
        claimed with the same API key."""
        if job["status"] != "running":
            return _lease_lost(
                f"this job is {job['status']}, not running: your lease is gone"
                + (
                    " (the worker missed its heartbeat)"
                    if job["error_code"] == "lease_expired"
                    else ""
                ),
                job,
            )
        if job["lease_owner"] != worker:
            return _lease_lost("another worker holds this job's lease", job)
        stored = job["lease_token_hash"] or ""
        if not constant_time_eq(self._hash(token).encode(), stored.encode()):
            return _lease_lost(
                "this lease_token is not the live attempt's: your lease ran out and the job"
                " was claimed again (or the token is wrong); drop this attempt",
                job,
            )
        return None

    async def _event(self, conn: Conn, row: Row, topic: str) -> None:
        await events.emit_many(conn, [job_event(row, topic)])

    async def _audit(self, conn: Conn, actor: Actor, before: Row, after: Row, action: str) -> None:
        await audit.record(
            conn,
            actor,
            before["organization_id"],
            f"job.{action}",
            "job",
            before["id"],
            {"status": before["status"]},
            {"status": after["status"]},
            event=False,
        )
        await self._event(conn, after, "job.canceled" if action == "cancel" else "job.retried")


def _lease_lost(message: str, job: Row) -> ApiError:
    return ApiError(LEASE_LOST, message, {"status": job["status"]})


def new_job(
    org_id: UUID, kind: Row, fields: Row, submitted_by: str, api_key_id: UUID | str | None
) -> Row:
    """The row of a job submitted with ``fields`` as one of type ``kind`` by the principal
    ``submitted_by`` (and the API key it used, if any)."""
    pricing = {k: kind[k] for k in ("base_cost", "unit_cost", "unit")}
    units = Decimal(str(fields["estimated_units"]))
    return {
        **fields,
        "id": uuid.uuid4(),
        "organization_id": org_id,
        "pricing": pricing,
        "cost_estimate": _price(pricing, units),
        "max_attempts": fields["max_attempts"] or kind["max_attempts"],
        "lease_seconds": fields["lease_seconds"] or kind["lease_seconds"],
        "submitted_by": submitted_by,
        "api_key_id": api_key_id,
    }


def submitter(principal: Principal) -> tuple[str, str | None]:
    """Who a job is submitted by: the principal, and the API key it used if any."""
    return principal.subject, principal.id if principal.kind == "api_key" else None


def _price(pricing: Row, units: Decimal) -> Decimal:
    return Decimal(str(pricing["base_cost"])) + Decimal(str(pricing["unit_cost"])) * units


def usage_records(job: Row, usage: list[Row]) -> list[Row]:
    """The job's base price as one ``jobs`` record, then each metric the worker reported;
    only the type's priced unit costs anything beyond the base."""
    pricing = job["pricing"]
    common = {
        "organization_id": job["organization_id"],
        "team_id": job["team_id"],
        "principal_id": job["submitted_by"],
        "api_key_id": job["api_key_id"],
        "job_id": job["id"],
        "job_type": job["type"],
    }
    records = [
        {
            **common,
            "metric": JOB_METRIC,
            "quantity": Decimal(1),
            "cost": Decimal(str(pricing["base_cost"])),
        }
    ]
    for item in usage:
        quantity = Decimal(str(item["quantity"]))
        unit_cost = Decimal(str(pricing["unit_cost"])) if item["metric"] == pricing["unit"] else 0
        records.append(
            {**common, "metric": item["metric"], "quantity": quantity, "cost": quantity * unit_cost}
        )
    return records


class Reaper(Background):
    """Puts back in the queue the jobs whose lease ran out, every few seconds."""

    def __init__(self, jobs: Jobs, interval: float) -> None:
        self.jobs = jobs
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                while await self.jobs.reap() == REAP_BATCH:
                    pass
            except (psycopg.Error, ApiError):
                pass  # PostgreSQL away: the next round catches up.
            except Exception:
                log.exception("reaping expired leases failed")
