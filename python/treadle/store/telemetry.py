"""Telemetry batches, events and their partitions: one per organization, split by day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from treadle.store.db import Conn, after_cursor, cursor_args

Row = dict[str, Any]
AFTER_CURSOR = after_cursor()
COLUMNS = "organization_id, agent_id, batch_id, seq, event_id, type, ts, attributes, received_at"


def partition_name(org_id: UUID, day: date) -> str:
    return f"telemetry_events_{org_id.hex}_{day:%Y%m%d}"


async def known_partitions(conn: Conn) -> set[tuple[UUID, date]]:
    cur = await conn.execute("SELECT organization_id, day FROM telemetry_partitions")
    return {(row["organization_id"], row["day"]) for row in await cur.fetchall()}


async def create_partition(conn: Conn, org_id: UUID, day: date) -> None:
    """The organization's partition (if it has none yet) and its partition for ``day``;
    under a lock on the organization, so that two processes never race on the DDL."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 11))", (str(org_id),)
    )
    org_table = sql.Identifier(f"telemetry_events_{org_id.hex}")
    day_table = sql.Identifier(partition_name(org_id, day))
    await conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF telemetry_events"
            " FOR VALUES IN ({}) PARTITION BY RANGE (received_at)"
        ).format(org_table, sql.Literal(str(org_id)))
    )
    await conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
        ).format(
            day_table,
            org_table,
            sql.Literal(f"{day.isoformat()} 00:00:00+00"),
            sql.Literal(f"{(day + timedelta(days=1)).isoformat()} 00:00:00+00"),
        )
    )
    await conn.execute(
        "INSERT INTO telemetry_partitions (organization_id, day, name) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (org_id, day, partition_name(org_id, day)),
    )


async def copy_events(conn: Conn, org_id: UUID, day: date, data: bytes) -> None:
    """Binary COPY of ``data`` (a whole COPY stream, header to trailer) into the day's
    partition directly: no routing through the parents."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(partition_name(org_id, day)), sql.SQL(COLUMNS)
    )
    async with conn.cursor() as cur, cur.copy(statement) as copy:
        await copy.write(data)


async def record_batch(conn: Conn, batch: Row, error: str | None) -> None:
    """The batch's row, its agent's status (``error`` is the first rejection's, if any)
    and the agent's last seen, in one statement: one round trip per batch."""
    await conn.execute(
        "WITH b AS (INSERT INTO telemetry_batches (id, organization_id, agent_id, accepted,"
        " rejected, rejections, bytes, created_at) VALUES (%(id)s, %(organization_id)s,"
        " %(agent_id)s, %(accepted)s, %(rejected)s, %(rejections)s, %(bytes)s, %(created_at)s)),"
        " seen AS (UPDATE edge_agents SET last_seen_at = now() WHERE id = %(agent_id)s)"
        " INSERT INTO telemetry_agent_status AS s (agent_id, organization_id, last_batch_id,"
        " last_batch_at, batches, accepted, rejected, last_error, last_error_at)"
        " VALUES (%(agent_id)s, %(organization_id)s, %(id)s, %(created_at)s, 1, %(accepted)s,"
        " %(rejected)s, %(error)s, CASE WHEN %(error)s::text IS NULL THEN NULL ELSE now() END)"
        " ON CONFLICT (agent_id) DO UPDATE SET last_batch_id = excluded.last_batch_id,"
        " last_batch_at = excluded.last_batch_at, batches = s.batches + 1,"
        " accepted = s.accepted + excluded.accepted, rejected = s.rejected + excluded.rejected,"
        " last_error = coalesce(excluded.last_error, s.last_error),"
        " last_error_at = coalesce(excluded.last_error_at, s.last_error_at)",
        {**batch, "rejections": Jsonb(batch["rejections"]), "error": error},
    )


async def record_failure(conn: Conn, org_id: UUID, agent_id: UUID, error: str) -> None:
    """A batch refused whole (not JSON, too large): its agent's last error."""
    await conn.execute(
        "INSERT INTO telemetry_agent_status AS s (agent_id, organization_id, last_error,"
        " last_error_at) VALUES (%s, %s, %s, now()) ON CONFLICT (agent_id) DO UPDATE SET"
        " last_error = excluded.last_error, last_error_at = excluded.last_error_at",
        (agent_id, org_id, error),
    )


async def batches(
    conn: Conn,
    org_id: UUID,
    limit: int,
    before: tuple[datetime, UUID] | None,
    agent_id: UUID | None,
) -> list[Row]:
    cur = await conn.execute(
        "SELECT * FROM telemetry_batches WHERE organization_id = %s"
        " AND (%s::uuid IS NULL OR agent_id = %s::uuid)"
        f" AND {AFTER_CURSOR}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        (
            org_id,
            agent_id,
            agent_id,
            *cursor_args(before),
            limit,
        ),
    )
    return await cur.fetchall()


async def events(
    conn: Conn,
    org_id: UUID,
    limit: int,
    before: tuple[datetime, UUID, int] | None,
    agent_id: UUID | None,
    types: list[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Row]:
    """The organization's events, newest arrival first (cursor: received_at, batch, seq);
    ``since`` / ``until`` bound the events' own timestamps."""
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM telemetry_events WHERE organization_id = %s"
        " AND (%s::uuid IS NULL OR agent_id = %s::uuid)"
        " AND (%s::text[] IS NULL OR type = ANY(%s::text[]))"
        " AND (%s::timestamptz IS NULL OR ts >= %s::timestamptz)"
        " AND (%s::timestamptz IS NULL OR ts < %s::timestamptz)"
        " AND (%s::timestamptz IS NULL"
        "  OR (received_at, batch_id, seq) < (%s::timestamptz, %s::uuid, %s::integer))"
        " ORDER BY received_at DESC, batch_id DESC, seq DESC LIMIT %s",
        (
            org_id,
            agent_id,
            agent_id,
            types,
            types,
            since,
            since,
            until,
            until,
            *((before[0], before[0], before[1], before[2]) if before else (None,) * 4),
            limit,
        ),
    )
    return await cur.fetchall()


async def status(conn: Conn, org_id: UUID) -> list[Row]:
    cur = await conn.execute(
        "SELECT a.id AS agent_id, a.name, a.status AS agent_status, a.last_seen_at,"
        " s.last_batch_id, s.last_batch_at, coalesce(s.batches, 0) AS batches,"
        " coalesce(s.accepted, 0) AS accepted, coalesce(s.rejected, 0) AS rejected,"
        " s.last_error, s.last_error_at FROM edge_agents a"
        " LEFT JOIN telemetry_agent_status s ON s.agent_id = a.id"
        " WHERE a.organization_id = %s ORDER BY a.created_at, a.id",
        (org_id,),
    )
    return await cur.fetchall()


async def drop_expired(conn: Conn, default_days: int) -> int:
    """Drop the day partitions older than their organization's ``telemetry_days``; how many."""
    cur = await conn.execute(
        "SELECT p.organization_id, p.day, p.name FROM telemetry_partitions p"
        " JOIN organizations o ON o.id = p.organization_id"
        " WHERE p.day < (now() AT TIME ZONE 'UTC')::date"
        " - coalesce((o.settings->'retention'->>'telemetry_days')::int, %s)",
        (default_days,),
    )
    expired = await cur.fetchall()
    for row in expired:
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(row["name"])))
        await conn.execute(
            "DELETE FROM telemetry_partitions WHERE organization_id = %s AND day = %s",
            (row["organization_id"], row["day"]),
        )
    return len(expired)
