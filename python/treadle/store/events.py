"""The outbox of domain events: a row per event, written in the transaction of the change.

The relay (``treadle.bus.events``) moves rows to the Redis stream in id order and marks
them relayed; what is committed here is delivered even if the process dies right after.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from treadle import clock, encoding
from treadle.store.db import Conn

Row = dict[str, Any]
NOTIFY_CHANNEL = "treadle_events"


def payload(org_id: UUID, topic: str, data: Any, job_id: UUID | None, run_id: UUID | None) -> bytes:
    """The event as subscribers receive it (SSE ``data:``, WebSocket message ``data``)."""
    return orjson.dumps(
        {
            "topic": topic,
            "organization_id": org_id,
            "job_id": job_id,
            "run_id": run_id,
            "occurred_at": clock.now(),
            "data": data,
        },
        default=encoding.default,
    )


async def emit(
    conn: Conn,
    org_id: UUID,
    topic: str,
    data: Any,
    *,
    job_id: UUID | None = None,
    run_id: UUID | None = None,
) -> None:
    """Record an event; call inside the transaction of the change it announces."""
    # One round trip for both: the notification goes out when the transaction commits.
    await conn.execute(
        "WITH added AS (INSERT INTO event_outbox (organization_id, topic, job_id, run_id,"
        " payload) VALUES (%s, %s, %s, %s, %s) RETURNING id)"
        " SELECT pg_notify(%s, '') FROM added",
        (
            org_id,
            topic,
            job_id,
            run_id,
            payload(org_id, topic, data, job_id, run_id),
            NOTIFY_CHANNEL,
        ),
    )


async def pending(conn: Conn, limit: int) -> list[Row]:
    """The oldest events not yet relayed (call in a transaction holding the relay lock)."""
    cur = await conn.execute(
        "SELECT id, organization_id, topic, job_id, run_id, payload FROM event_outbox"
        " WHERE relayed_at IS NULL ORDER BY id LIMIT %s",
        (limit,),
    )
    return await cur.fetchall()


async def mark_relayed(conn: Conn, relayed: list[tuple[int, str]]) -> None:
    """Record the stream id each outbox row got."""
    await conn.cursor().executemany(
        "UPDATE event_outbox SET stream_id = %s, relayed_at = now() WHERE id = %s",
        [(stream_id, outbox_id) for outbox_id, stream_id in relayed],
    )


async def last_relayed(conn: Conn) -> str | None:
    """The stream id of the newest row relayed (and not yet pruned)."""
    cur = await conn.execute(
        "SELECT stream_id FROM event_outbox WHERE stream_id IS NOT NULL ORDER BY id DESC LIMIT 1"
    )
    row = await cur.fetchone()
    return None if row is None else str(row["stream_id"])


async def prune_relayed(conn: Conn, keep_hours: int) -> int:
    """Delete rows relayed more than ``keep_hours`` ago; the stream holds them now."""
    cur = await conn.execute(
        "DELETE FROM event_outbox WHERE relayed_at < now() - make_interval(hours => %s)",
        (keep_hours,),
    )
    return cur.rowcount
