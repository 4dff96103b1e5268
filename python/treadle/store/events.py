"""The outbox of domain events: a row per event, written in the transaction of the change.

The relay (``treadle.bus.events``) moves rows to the Redis stream in id order and marks
them relayed; what is committed here is delivered even if the process dies right after.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from treadle import clock, encoding
from treadle.store import webhooks
from treadle.store.db import Conn
from treadle.store.records import param, rows_from

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
    await emit_many(conn, [(org_id, topic, data, job_id, run_id)])


Event = tuple[UUID, str, Any, UUID | None, UUID | None]


async def emit_many(conn: Conn, items: list[Event]) -> None:
    """Record events (organization, topic, data, job id, run id) with one statement,
    whatever their number; call inside the transaction of the change they announce."""
    if not items:
        return
    rows = [
        {
            "o": org_id,
            "t": topic,
            "j": job_id,
            "r": run_id,
            "p": payload(org_id, topic, data, job_id, run_id).decode(),
        }
        for org_id, topic, data, job_id, run_id in items
    ]
    # One round trip for the rows and one notification, sent when the transaction commits;
    # ``ORDER BY n`` gives the rows ids in the order of ``items``.
    await conn.execute(
        "WITH added AS (INSERT INTO event_outbox (organization_id, topic, job_id, run_id,"
        f" payload) SELECT o, t, j, r, convert_to(p, 'UTF8') FROM {rows_from('e', _OUTBOX)}"
        " ORDER BY n RETURNING 1)"
        " SELECT pg_notify(%s, '') WHERE EXISTS (SELECT 1 FROM added)",
        (param(rows, _OUTBOX), NOTIFY_CHANNEL),
    )


_OUTBOX = {"o": "uuid", "t": "text", "j": "uuid", "r": "uuid", "p": "text"}


async def pending(conn: Conn, limit: int) -> list[Row]:
    """The oldest events not yet relayed (call in a transaction holding the relay lock)."""
    cur = await conn.execute(
        "SELECT id, organization_id, topic, job_id, run_id, payload FROM event_outbox"
        " WHERE relayed_at IS NULL ORDER BY id LIMIT %s",
        (limit,),
    )
    return await cur.fetchall()


async def mark_relayed(conn: Conn, relayed: list[tuple[int, str]]) -> int:
    """Record the stream id each outbox row got, and make a webhook delivery for each
    enabled endpoint of the event's organization whose topics match: one statement, in
    the relay's transaction, so an event relayed has its deliveries and one relayed again
    (after a crash before the commit) makes no others. How many deliveries it made."""
    columns = {"id": "bigint", "stream_id": "text"}
    cur = await conn.execute(
        "WITH m AS (UPDATE event_outbox SET stream_id = r.stream_id, relayed_at = now()"
        f" FROM {rows_from('r', columns)} WHERE event_outbox.id = r.id"
        " RETURNING event_outbox.id, event_outbox.organization_id, event_outbox.topic,"
        " event_outbox.payload, r.stream_id),"
        " added AS (INSERT INTO webhook_deliveries (id, endpoint_id, organization_id, event_id,"
        f" topic, body) SELECT gen_random_uuid(), w.id, m.organization_id, m.stream_id,"
        f" m.topic, {webhooks.EVENT_BODY} FROM m JOIN webhook_endpoints w"
        f" ON w.organization_id = m.organization_id AND w.enabled AND {webhooks.TOPIC_MATCHES}"
        " ORDER BY m.id, w.id ON CONFLICT (endpoint_id, event_id) DO NOTHING RETURNING 1)"
        " SELECT count(*) AS made FROM added",
        (param(({"id": i, "stream_id": s} for i, s in relayed), columns),),
    )
    row = await cur.fetchone()
    return int(row["made"]) if row else 0


async def relayed_among(conn: Conn, ids: list[int]) -> list[int]:
    """Which of ``ids`` PostgreSQL records as relayed, or no longer holds (pruned)."""
    cur = await conn.execute(
        "SELECT i AS id FROM unnest(%s::bigint[]) AS i WHERE NOT EXISTS"
        " (SELECT 1 FROM event_outbox e WHERE e.id = i AND e.relayed_at IS NULL)",
        (ids,),
    )
    return [row["id"] for row in await cur.fetchall()]


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
