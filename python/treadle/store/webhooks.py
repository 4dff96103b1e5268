"""Webhook endpoints and their deliveries.

Deliveries of events are made by the relay (``store.events.mark_relayed``) in the
transaction that relays them, one per matching endpoint and event (the unique key keeps a
second relay of an event from making another). Senders lease due deliveries
(``claim``), send them without a transaction open, and record each outcome (``record``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from treadle.store.db import Conn, after_cursor, cursor_args
from treadle.store.records import param, rows_from

Row = dict[str, Any]
ENDPOINT = (
    "id, organization_id, url, description, topics, enabled, ordered, previous_until,"
    " failing_since, disabled_reason, created_by, created_at, updated_at"
)
DELIVERY = (
    "id, seq, endpoint_id, organization_id, event_id, topic, status, attempts,"
    " next_attempt_at, created_at, last_attempt_at, finished_at, response_status,"
    " response_body, latency_ms, last_error, redrives"
)
UNFINISHED = "('pending', 'sending')"
# Whether event row ``m`` has a topic endpoint ``w`` asks for: the event streams' rules
# (a topic, a prefix ending in .*, or *), as ``_core``'s fan-out filter applies them.
TOPIC_MATCHES = (
    "EXISTS (SELECT 1 FROM unnest(w.topics) p WHERE p = '*' OR p = m.topic"
    " OR (right(p, 2) = '.*' AND length(m.topic) > length(p) - 1"
    " AND starts_with(m.topic, left(p, -1))))"
)
# An event's delivery body: the event as subscribers get it, with its id first.
EVENT_BODY = (
    "convert_to('{\"id\":\"' || m.stream_id || '\",', 'UTF8') || substring(m.payload from 2)"
)


async def insert_endpoint(conn: Conn, endpoint: Row) -> Row:
    cur = await conn.execute(
        "INSERT INTO webhook_endpoints (id, organization_id, url, description, topics,"
        " enabled, ordered, secret, created_by) VALUES (%(id)s, %(organization_id)s, %(url)s,"
        " %(description)s, %(topics)s, %(enabled)s, %(ordered)s, %(secret)s, %(created_by)s)"
        f" RETURNING {ENDPOINT}",
        endpoint,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def get_endpoint(conn: Conn, endpoint_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {ENDPOINT}, secret, previous_secret FROM webhook_endpoints WHERE id = %s"
        + (" FOR UPDATE" if lock else ""),
        (endpoint_id,),
    )
    return await cur.fetchone()


async def endpoints_in_org(conn: Conn, org_id: UUID, limit: int, before: Any) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {ENDPOINT} FROM webhook_endpoints WHERE organization_id = %s"
        f" AND {after_cursor()} ORDER BY created_at DESC, id DESC LIMIT %s",
        (org_id, *cursor_args(before), limit),
    )
    return await cur.fetchall()


async def update_endpoint(conn: Conn, endpoint_id: UUID, changes: Row) -> Row:
    """Set ``changes``: column names (the service's, never a caller's) to values."""
    sets = ", ".join(f"{name} = %({name})s" for name in changes)
    cur = await conn.execute(
        f"UPDATE webhook_endpoints SET {sets}, updated_at = now() WHERE id = %(endpoint_id)s"
        f" RETURNING {ENDPOINT}",
        {**changes, "endpoint_id": endpoint_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def delete_endpoint(conn: Conn, endpoint_id: UUID) -> None:
    await conn.execute("DELETE FROM webhook_endpoints WHERE id = %s", (endpoint_id,))


async def kill_unfinished(conn: Conn, endpoint_id: UUID, reason: str) -> int:
    """Give up on what an endpoint still had to receive (it was disabled): dead, so a
    redrive can send it once the endpoint is enabled again."""
    cur = await conn.execute(
        "UPDATE webhook_deliveries SET status = 'dead', finished_at = now(), last_error = %s"
        f" WHERE endpoint_id = %s AND status IN {UNFINISHED}",
        (reason, endpoint_id),
    )
    return cur.rowcount


async def insert_delivery(conn: Conn, delivery: Row) -> Row:
    """A delivery not made from an event (a test send), due at once."""
    cur = await conn.execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, organization_id, topic, body)"
        " VALUES (%(id)s, %(endpoint_id)s, %(organization_id)s, %(topic)s, %(body)s)"
        f" RETURNING {DELIVERY}",
        delivery,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def deliveries_of(
    conn: Conn, endpoint_id: UUID, limit: int, before_seq: int | None, statuses: list[str] | None
) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {DELIVERY} FROM webhook_deliveries WHERE endpoint_id = %s"
        " AND (%s::bigint IS NULL OR seq < %s) AND (%s::text[] IS NULL OR status = ANY(%s))"
        " ORDER BY seq DESC LIMIT %s",
        (endpoint_id, before_seq, before_seq, statuses, statuses, limit),
    )
    return await cur.fetchall()


async def get_delivery(conn: Conn, delivery_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {DELIVERY} FROM webhook_deliveries WHERE id = %s"
        + (" FOR UPDATE" if lock else ""),
        (delivery_id,),
    )
    return await cur.fetchone()


async def redrive(conn: Conn, delivery_id: UUID) -> Row:
    """A dead delivery due again at once, with the whole retry schedule ahead of it."""
    cur = await conn.execute(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(),"
        " finished_at = NULL, redrives = redrives + 1 WHERE id = %s"
        f" RETURNING {DELIVERY}",
        (delivery_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


# Due deliveries, leased until ``next_attempt_at`` (a sender that dies leaves them due
# again then). An ordered endpoint offers only its oldest unfinished delivery, and only
# while no other of its deliveries is leased: one in flight, in event order.
_CLAIM = f"""
WITH due AS (
    SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
    WHERE d.status IN {UNFINISHED} AND d.next_attempt_at <= now() AND w.enabled
      AND (NOT w.ordered OR d.seq = (SELECT min(h.seq) FROM webhook_deliveries h
                                     WHERE h.endpoint_id = d.endpoint_id
                                       AND h.status IN {UNFINISHED}))
    ORDER BY d.next_attempt_at LIMIT %s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET status = 'sending', attempts = d.attempts + 1, last_attempt_at = now(),
    next_attempt_at = now() + make_interval(secs => %s)
FROM due, webhook_endpoints w
WHERE d.id = due.id AND w.id = d.endpoint_id
RETURNING d.id, d.endpoint_id, d.organization_id, d.topic, d.body, d.attempts, d.seq,
          w.url, w.secret, w.previous_secret, w.previous_until > now() AS overlap
"""


async def claim(conn: Conn, limit: int, lease_seconds: float) -> list[Row]:
    cur = await conn.execute(_CLAIM, (limit, lease_seconds))
    return await cur.fetchall()


_OUTCOME = {
    "id": "uuid",
    "status": "text",
    "retry_in": "float8",
    "response_status": "int",
    "response_body": "text",
    "latency_ms": "float8",
    "last_error": "text",
}


async def record(conn: Conn, outcomes: list[Row]) -> None:
    """Each attempt's outcome (``status`` succeeded, dead, or pending with ``retry_in``
    seconds), one statement for all. Only a delivery still leased is changed: one
    redriven or given up on meanwhile keeps its new state."""
    await conn.execute(
        "UPDATE webhook_deliveries d SET status = o.status, response_status = o.response_status,"
        " response_body = o.response_body, latency_ms = o.latency_ms, last_error = o.last_error,"
        " next_attempt_at = CASE WHEN o.status = 'pending'"
        "   THEN now() + make_interval(secs => o.retry_in) ELSE d.next_attempt_at END,"
        " finished_at = CASE WHEN o.status = 'pending' THEN NULL ELSE now() END"
        f" FROM {rows_from('o', _OUTCOME)} WHERE d.id = o.id AND d.status = 'sending'",
        (param(outcomes, _OUTCOME),),
    )


_HEALTH = {"id": "uuid", "ok": "boolean"}


async def endpoint_outcomes(
    conn: Conn, health: list[Row], gone: list[UUID], disable_after: int
) -> list[Row]:
    """Record, per endpoint, whether its last attempt succeeded (``ok``); then disable
    those that answered 410 Gone (``gone``) or failed every delivery for longer than
    ``disable_after`` seconds. The endpoints disabled now (not before), for their event."""
    await conn.execute(
        "UPDATE webhook_endpoints w SET failing_since = CASE WHEN h.ok THEN NULL"
        " ELSE coalesce(w.failing_since, now()) END"
        f" FROM {rows_from('h', _HEALTH)} WHERE w.id = h.id",
        (param(health, _HEALTH),),
    )
    cur = await conn.execute(
        "UPDATE webhook_endpoints SET enabled = false, updated_at = now(),"
        " disabled_reason = CASE WHEN id = ANY(%s) THEN 'the endpoint answered 410 Gone'"
        " ELSE 'every delivery failed for ' || %s || ' seconds' END"
        " WHERE id = ANY(%s) AND enabled AND (id = ANY(%s)"
        " OR failing_since < now() - make_interval(secs => %s))"
        " RETURNING id, organization_id, url, disabled_reason",
        (gone, disable_after, [h["id"] for h in health], gone, disable_after),
    )
    return await cur.fetchall()
