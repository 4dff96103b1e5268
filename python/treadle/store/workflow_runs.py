"""Workflow runs and the state of each of their nodes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from treadle.store.db import Conn, after_cursor, cursor_args

Row = dict[str, Any]
AFTER_CURSOR = after_cursor()
STATUSES = ("created", "running", "paused", "succeeded", "failed", "canceled")
FINAL = ("succeeded", "failed", "canceled")
NODE_FINAL = ("succeeded", "failed", "skipped", "canceled")
# Taken with pg_try_advisory_xact_lock by each sweep (timers, ended children, orphans): one
# process sweeps at a time, the others skip the round.
SWEEP_LOCK = 0x7472_6564_0003


async def take_sweep(conn: Conn) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (SWEEP_LOCK,))
    row = await cur.fetchone()
    return bool(row and row["got"])


async def insert(conn: Conn, run: Row, nodes: list[str]) -> Row:
    cur = await conn.execute(
        "INSERT INTO workflow_runs (id, organization_id, definition_id, input, labels,"
        " submitted_by, api_key_id, parent_run_id, parent_node)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        (
            run["id"],
            run["organization_id"],
            run["definition_id"],
            Jsonb(run["input"]),
            Jsonb(run["labels"]),
            run["submitted_by"],
            run["api_key_id"],
            run.get("parent_run_id"),
            run.get("parent_node"),
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "INSERT INTO workflow_nodes (run_id, node) SELECT %s, unnest(%s::text[])",
        (run["id"], nodes),
    )
    return row


async def get(conn: Conn, run_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        "SELECT * FROM workflow_runs WHERE id = %s" + (" FOR UPDATE" if lock else ""), (run_id,)
    )
    return await cur.fetchone()


async def lock_many(conn: Conn, run_ids: list[UUID]) -> dict[UUID, Row]:
    """The runs among ``run_ids``, locked in id order."""
    cur = await conn.execute(
        "SELECT * FROM workflow_runs WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
        (run_ids,),
    )
    return {row["id"]: row for row in await cur.fetchall()}


async def nodes_of(conn: Conn, run_ids: list[UUID]) -> dict[UUID, dict[str, Row]]:
    """The node rows of each of ``run_ids``, by run and node."""
    cur = await conn.execute(
        "SELECT * FROM workflow_nodes WHERE run_id = ANY(%s::uuid[])", (run_ids,)
    )
    found: dict[UUID, dict[str, Row]] = {run_id: {} for run_id in run_ids}
    for row in await cur.fetchall():
        found[row["run_id"]][row["node"]] = row
    return found


async def nodes(conn: Conn, run_id: UUID) -> dict[str, Row]:
    return (await nodes_of(conn, [run_id]))[run_id]


async def set_run(conn: Conn, run_id: UUID, status: str, **fields: Any) -> Row:
    """The run in ``status`` (started_at / completed_at set on the way), with ``fields``."""
    sets = ["status = %s", "updated_at = now()"]
    args: list[Any] = [status]
    if status == "running":
        sets.append("started_at = coalesce(started_at, now())")
    if status in FINAL:
        sets.append("completed_at = now()")
    for column, value in fields.items():
        sets.append(f"{column} = %s")
        args.append(Jsonb(value) if column == "output" else value)
    cur = await conn.execute(
        f"UPDATE workflow_runs SET {', '.join(sets)} WHERE id = %s RETURNING *", (*args, run_id)
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def set_node(conn: Conn, run_id: UUID, node: str, status: str, **fields: Any) -> Row:
    sets = ["status = %s"]
    args: list[Any] = [status]
    if status in ("running", "succeeded"):
        # A condition succeeds the moment it starts.
        sets.append("started_at = coalesce(started_at, now())")
    if status in NODE_FINAL:
        # An ended node's timer is gone (the timer index holds only those that may fire).
        sets.append("completed_at = now(), fire_at = NULL")
    for column, value in fields.items():
        if column == "fire_in":
            sets.append("fire_at = now() + make_interval(secs => %s)")
        else:
            sets.append(f"{column} = %s")
        args.append(Jsonb(value) if column in ("output", "items") else value)
    cur = await conn.execute(
        f"UPDATE workflow_nodes SET {', '.join(sets)} WHERE run_id = %s AND node = %s RETURNING *",
        (*args, run_id, node),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def due_timers(conn: Conn, limit: int) -> list[Row]:
    """Delays (and signal timeouts) whose time has come. Not locked here: the caller locks
    each run first, as every other step does, and fires the timer only if it still waits
    (a node row locked before its run would deadlock against a job's end)."""
    cur = await conn.execute(
        "SELECT run_id, node, fire_at FROM workflow_nodes WHERE status = 'running'"
        " AND fire_at IS NOT NULL AND fire_at <= now() ORDER BY fire_at LIMIT %s",
        (limit,),
    )
    return await cur.fetchall()


async def freeze_timers(conn: Conn, run_id: UUID) -> None:
    """Stop the run's timers, keeping what each had left."""
    await conn.execute(
        "UPDATE workflow_nodes SET remaining = greatest(0,"
        " extract(epoch FROM fire_at - clock_timestamp())), fire_at = NULL"
        " WHERE run_id = %s AND status = 'running' AND fire_at IS NOT NULL",
        (run_id,),
    )


async def thaw_timers(conn: Conn, run_id: UUID) -> None:
    """Start the run's stopped timers again with what each had left."""
    await conn.execute(
        "UPDATE workflow_nodes SET fire_at = clock_timestamp()"
        " + make_interval(secs => remaining), remaining = NULL"
        " WHERE run_id = %s AND status = 'running' AND remaining IS NOT NULL",
        (run_id,),
    )


async def in_org(
    conn: Conn,
    org_id: UUID,
    limit: int,
    before: tuple[datetime, UUID] | None,
    statuses: list[str] | None,
    definition_id: UUID | None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> list[Row]:
    cur = await conn.execute(
        "SELECT * FROM workflow_runs WHERE organization_id = %s"
        " AND (%s::text[] IS NULL OR status = ANY(%s::text[]))"
        " AND (%s::uuid IS NULL OR definition_id = %s::uuid)"
        " AND (%s::timestamptz IS NULL OR created_at >= %s::timestamptz)"
        " AND (%s::timestamptz IS NULL OR created_at < %s::timestamptz)"
        f" AND {AFTER_CURSOR}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        (
            org_id,
            statuses,
            statuses,
            definition_id,
            definition_id,
            created_after,
            created_after,
            created_before,
            created_before,
            *cursor_args(before),
            limit,
        ),
    )
    return await cur.fetchall()


async def matching(
    conn: Conn,
    org_id: UUID,
    statuses: list[str],
    limit: int,
    definition_id: UUID | None = None,
    label: tuple[str, str] | None = None,
) -> list[UUID]:
    """Ids of the organization's runs in ``statuses`` that match the filters, oldest first."""
    cur = await conn.execute(
        "SELECT id FROM workflow_runs WHERE organization_id = %s AND status = ANY(%s::text[])"
        " AND (%s::uuid IS NULL OR definition_id = %s::uuid)"
        " AND (%s::jsonb IS NULL OR labels @> %s::jsonb)"
        " ORDER BY created_at, id LIMIT %s",
        (
            org_id,
            statuses,
            definition_id,
            definition_id,
            Jsonb(dict([label])) if label else None,
            Jsonb(dict([label])) if label else None,
            limit,
        ),
    )
    return [row["id"] for row in await cur.fetchall()]


async def cancel_jobs(conn: Conn, run_id: UUID) -> list[Row]:
    """Cancel the run's jobs that have not finished; the canceled rows."""
    cur = await conn.execute(
        "UPDATE jobs SET status = 'canceled', canceled_at = now(), completed_at = now(),"
        " lease_owner = NULL, lease_expires_at = NULL, lease_token_hash = NULL,"
        " updated_at = now()"
        " WHERE workflow_run_id = %s AND status IN ('queued', 'running') RETURNING *",
        (run_id,),
    )
    return await cur.fetchall()


async def item_results(conn: Conn, run_id: UUID, node: str) -> list[Any]:
    """The results of a map node's item jobs, in item order."""
    cur = await conn.execute(
        "SELECT result FROM jobs WHERE workflow_run_id = %s AND workflow_node = %s"
        " AND workflow_item IS NOT NULL AND status = 'succeeded' ORDER BY workflow_item",
        (run_id, node),
    )
    return [row["result"] for row in await cur.fetchall()]


async def attempts(conn: Conn, job_ids: list[UUID]) -> dict[UUID, int]:
    cur = await conn.execute("SELECT id, attempts FROM jobs WHERE id = ANY(%s::uuid[])", (job_ids,))
    return {row["id"]: row["attempts"] for row in await cur.fetchall()}


async def lock_live_children(conn: Conn, run_id: UUID) -> list[Row]:
    """The run's child runs that have not ended and that no one else holds now, locked.
    Skipping those held keeps a parent from waiting on a child while holding itself (the
    child's own steps never wait on the parent); ``orphans`` finds the ones skipped."""
    cur = await conn.execute(
        "SELECT * FROM workflow_runs WHERE parent_run_id = %s"
        " AND status IN ('created', 'running', 'paused') ORDER BY id FOR UPDATE SKIP LOCKED",
        (run_id,),
    )
    return await cur.fetchall()


async def orphans(conn: Conn, limit: int) -> list[UUID]:
    """Child runs still going whose parent has ended."""
    cur = await conn.execute(
        "SELECT c.id FROM workflow_runs c JOIN workflow_runs p ON p.id = c.parent_run_id"
        " WHERE c.parent_run_id IS NOT NULL AND c.status IN ('created', 'running', 'paused')"
        " AND p.status IN ('succeeded', 'failed', 'canceled') ORDER BY c.id LIMIT %s",
        (limit,),
    )
    return [row["id"] for row in await cur.fetchall()]


async def ended_children(conn: Conn, limit: int) -> list[Row]:
    """Workflow nodes still waiting for a child run that has ended (unlocked, as timers)."""
    cur = await conn.execute(
        "SELECT n.run_id, n.node, n.child_run_id FROM workflow_nodes n"
        " JOIN workflow_runs c ON c.id = n.child_run_id"
        " WHERE n.status = 'running' AND n.child_run_id IS NOT NULL"
        " AND c.status IN ('succeeded', 'failed', 'canceled') ORDER BY n.run_id LIMIT %s",
        (limit,),
    )
    return await cur.fetchall()
