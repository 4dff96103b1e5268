"""Jobs: submission, the worker lease protocol, and the listing queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from treadle.store.db import Conn
from treadle.store.records import param, rows_from

Row = dict[str, Any]
STATUSES = ("queued", "running", "succeeded", "dead", "canceled")
# The job stays claimable only through the queue; these end it.
FINAL = ("succeeded", "dead", "canceled")
# A value for ``update`` meaning the database's current time.
NOW = object()


async def get(conn: Conn, job_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        "SELECT * FROM jobs WHERE id = %s" + (" FOR UPDATE" if lock else ""), (job_id,)
    )
    return await cur.fetchone()


async def insert(conn: Conn, job: Row) -> Row | None:
    """The new job, or None when the submitter already used this Idempotency-Key."""
    values = {k: Jsonb(v) if k in ("input", "labels", "pricing") else v for k, v in job.items()}
    columns = ", ".join(values)
    cur = await conn.execute(
        f"INSERT INTO jobs ({columns}) VALUES ({', '.join(['%s'] * len(values))})"
        " ON CONFLICT (organization_id, submitted_by, idempotency_key) DO NOTHING RETURNING *",
        tuple(values.values()),
    )
    return await cur.fetchone()


async def by_idempotency_key(conn: Conn, org_id: UUID, submitted_by: str, key: str) -> Row | None:
    cur = await conn.execute(
        "SELECT * FROM jobs WHERE organization_id = %s AND submitted_by = %s"
        " AND idempotency_key = %s",
        (org_id, submitted_by, key),
    )
    return await cur.fetchone()


async def in_org(
    conn: Conn,
    org_id: UUID,
    limit: int,
    before: tuple[datetime, UUID] | None,
    statuses: list[str] | None,
    job_type: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
) -> list[Row]:
    """A page of the organization's jobs, newest first, after the cursor ``before``."""
    where = ["organization_id = %s"]
    args: list[Any] = [org_id]
    if before is not None:
        where.append("(created_at, id) < (%s, %s)")
        args.extend(before)
    if statuses:
        where.append("status = ANY(%s)")
        args.append(statuses)
    if job_type is not None:
        where.append("type = %s")
        args.append(job_type)
    if created_after is not None:
        where.append("created_at >= %s")
        args.append(created_after)
    if created_before is not None:
        where.append("created_at < %s")
        args.append(created_before)
    cur = await conn.execute(
        f"SELECT * FROM jobs WHERE {' AND '.join(where)}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        (*args, limit),
    )
    return await cur.fetchall()


# Fair across organizations: each organization's ready jobs are ranked (best first) and
# the claim takes rank 1 of every organization before any rank 2, so a backlog of
# thousands in one organization waits its turn behind a single job of another. Ties
# between organizations are broken at random. Rows another worker has locked are skipped.
# The organizations with queued jobs are found by skipping through the jobs_ready index
# (one probe per organization) rather than by reading every queued job.
_CLAIM = """
WITH RECURSIVE orgs AS (
    (SELECT organization_id FROM jobs
     WHERE status = 'queued'
       AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)
     ORDER BY organization_id LIMIT 1)
    UNION ALL
    SELECT (SELECT j.organization_id FROM jobs j
            WHERE j.status = 'queued' AND j.organization_id > orgs.organization_id
              AND %(org)s::uuid IS NULL
            ORDER BY j.organization_id LIMIT 1)
    FROM orgs WHERE orgs.organization_id IS NOT NULL
), picked AS (
    SELECT ranked.id FROM orgs CROSS JOIN LATERAL (
        SELECT ready.id, row_number() OVER () AS rank FROM (
            SELECT id FROM jobs
            WHERE organization_id = orgs.organization_id
              AND status = 'queued' AND run_after <= now()
              AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
            ORDER BY priority DESC, run_after, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        ) ready
    ) ranked
    ORDER BY ranked.rank, random()
    LIMIT %(limit)s
), numbered AS (
    SELECT id, row_number() OVER () AS n FROM picked
)
UPDATE jobs SET
    status = 'running',
    attempts = jobs.attempts + 1,
    lease_owner = %(owner)s,
    lease_token_hash = (%(hashes)s::text[])[numbered.n],
    lease_expires_at = now() + make_interval(secs => coalesce(%(lease)s, jobs.lease_seconds)),
    started_at = coalesce(jobs.started_at, now()),
    updated_at = now()
FROM numbered WHERE jobs.id = numbered.id
RETURNING jobs.*
"""


async def claim(
    conn: Conn,
    owner: str,
    limit: int,
    org_id: UUID | None,
    types: list[str] | None,
    lease_seconds: int | None,
    token_hashes: list[str],
) -> list[Row]:
    """Lease up to ``limit`` ready jobs to ``owner`` (of ``org_id``, or of every
    organization when None), each attempt with one of ``token_hashes`` (``limit`` of them,
    distinct) as its lease token's hash."""
    cur = await conn.execute(
        _CLAIM,
        {
            "org": org_id,
            "types": types,
            "limit": limit,
            "owner": owner,
            "lease": lease_seconds,
            "hashes": token_hashes,
        },
    )
    rows = await cur.fetchall()
    rows.sort(key=lambda r: (r["run_after"], r["id"]))
    return rows


async def extend_lease(conn: Conn, job_id: UUID, lease_seconds: int) -> Row | None:
    cur = await conn.execute(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %s),"
        " updated_at = now() WHERE id = %s RETURNING *",
        (lease_seconds, job_id),
    )
    return await cur.fetchone()


async def update(conn: Conn, job_id: UUID, changes: Row) -> Row:
    """Set ``changes`` (column -> value, or ``NOW`` for the database's time)."""
    sets, args = [], []
    for column, value in changes.items():
        if value is NOW:
            sets.append(f"{column} = now()")
        else:
            sets.append(f"{column} = %s")
            args.append(Jsonb(value) if column == "result" else value)
    cur = await conn.execute(
        f"UPDATE jobs SET {', '.join(sets)}, updated_at = now() WHERE id = %s RETURNING *",
        (*args, job_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def requeue_later(conn: Conn, job_id: UUID, delay: float, changes: Row) -> Row:
    """Back in the queue after ``delay`` seconds, lease released."""
    cur = await conn.execute(
        "UPDATE jobs SET status = 'queued', run_after = now() + make_interval(secs => %s),"
        " lease_owner = NULL, lease_expires_at = NULL, lease_token_hash = NULL,"
        " error_code = %s, error_message = %s,"
        " updated_at = now() WHERE id = %s RETURNING *",
        (delay, changes["error_code"], changes["error_message"], job_id),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def reap(conn: Conn, limit: int) -> list[Row]:
    """Jobs whose lease ran out: back to the queue at once, or dead when out of attempts."""
    cur = await conn.execute(
        "UPDATE jobs SET"
        " status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'queued' END,"
        " completed_at = CASE WHEN attempts >= max_attempts THEN now() END,"
        " run_after = now(), lease_owner = NULL, lease_expires_at = NULL, lease_token_hash = NULL,"
        " error_code = 'lease_expired',"
        " error_message = 'the worker stopped heartbeating before its lease ran out',"
        " updated_at = now()"
        " WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < now()"
        "  ORDER BY lease_expires_at LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING *",
        (limit,),
    )
    return await cur.fetchall()


# -- batches: a constant number of statements, whatever the batch's size ------------------

# What a submission sets; the other columns take their defaults.
_NEW = {
    "id": "uuid",
    "organization_id": "uuid",
    "team_id": "uuid",
    "type": "text",
    "priority": "smallint",
    "input": "jsonb",
    "labels": "jsonb",
    "estimated_units": "numeric",
    "pricing": "jsonb",
    "cost_estimate": "numeric",
    "max_attempts": "integer",
    "lease_seconds": "integer",
    "submitted_by": "text",
    "api_key_id": "uuid",
    "workflow_run_id": "uuid",
    "workflow_node": "text",
    "workflow_item": "integer",
}


async def insert_many(conn: Conn, jobs: list[Row]) -> list[Row]:
    """The new jobs (dicts with the keys of ``_NEW``), in the order given, one statement."""
    columns = ", ".join(_NEW)
    cur = await conn.execute(
        f"INSERT INTO jobs ({columns}) SELECT {columns} FROM {rows_from('j', _NEW)}"
        " ORDER BY n RETURNING *",
        (param(jobs, _NEW),),
    )
    by_id = {row["id"]: row for row in await cur.fetchall()}
    return [by_id[job["id"]] for job in jobs]


# What a worker batch reads of each job before changing it: the lease, the attempts and what
# metering needs; not the input or the result, which may be large.
_LOCKED = (
    "id, organization_id, team_id, type, status, attempts, max_attempts, lease_seconds,"
    " lease_owner, lease_token_hash, error_code, pricing, submitted_by, api_key_id"
)


async def lock_many(conn: Conn, job_ids: list[UUID]) -> dict[UUID, Row]:
    """The jobs among ``job_ids`` that exist (the columns of ``_LOCKED``), locked in id
    order, so that two batches locking the same jobs never deadlock."""
    cur = await conn.execute(
        f"SELECT {_LOCKED} FROM jobs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (job_ids,),
    )
    return {row["id"]: row for row in await cur.fetchall()}


async def complete_many(conn: Conn, done: list[Row]) -> dict[UUID, Row]:
    """Succeeded: each of ``done`` (id, result, artifact_url, cost) in one statement."""
    columns = {"id": "uuid", "result": "jsonb", "artifact_url": "text", "cost": "numeric"}
    cur = await conn.execute(
        "UPDATE jobs SET status = 'succeeded', result = d.result,"
        " artifact_url = d.artifact_url, cost = d.cost, completed_at = now(),"
        " lease_expires_at = NULL, lease_token_hash = NULL, error_code = NULL,"
        " error_message = NULL, updated_at = now()"
        f" FROM {rows_from('d', columns)} WHERE jobs.id = d.id RETURNING jobs.*",
        (param(done, columns),),
    )
    return {row["id"]: row for row in await cur.fetchall()}


async def fail_many(conn: Conn, failed: list[Row]) -> dict[UUID, Row]:
    """Each of ``failed`` (id, error_code, error_message, and ``retry_in``: seconds until
    it may run again, or None for dead) in one statement."""
    columns = {"id": "uuid", "error_code": "text", "error_message": "text", "retry_in": "float8"}
    cur = await conn.execute(
        "UPDATE jobs SET"
        " status = CASE WHEN f.retry_in IS NULL THEN 'dead' ELSE 'queued' END,"
        " run_after = CASE WHEN f.retry_in IS NULL THEN jobs.run_after"
        "  ELSE now() + make_interval(secs => f.retry_in) END,"
        " completed_at = CASE WHEN f.retry_in IS NULL THEN now() END,"
        " lease_owner = CASE WHEN f.retry_in IS NULL THEN jobs.lease_owner END,"
        " lease_expires_at = NULL, lease_token_hash = NULL,"
        " error_code = f.error_code, error_message = f.error_message, updated_at = now()"
        f" FROM {rows_from('f', columns)} WHERE jobs.id = f.id RETURNING jobs.*",
        (param(failed, columns),),
    )
    return {row["id"]: row for row in await cur.fetchall()}


async def extend_many(conn: Conn, leases: list[Row]) -> dict[UUID, Row]:
    """Each of ``leases`` (id, lease_seconds) extended from now, in one statement."""
    columns = {"id": "uuid", "lease_seconds": "integer"}
    cur = await conn.execute(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => l.lease_seconds),"
        f" updated_at = now() FROM {rows_from('l', columns)}"
        " WHERE jobs.id = l.id RETURNING jobs.*",
        (param(leases, columns),),
    )
    return {row["id"]: row for row in await cur.fetchall()}
