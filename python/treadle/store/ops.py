"""Operations: what failed across the queues and outboxes, queue depths, backlogs.

Read-mostly queries over tables other modules own (jobs, webhook_deliveries, event_outbox,
mail_outbox), plus the two writes of a retry that no other module makes: waking the relay
and putting a failed mail back in the outbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn, paged
from treadle.store.events import NOTIFY_CHANNEL

Row = dict[str, Any]
KINDS = ("job", "webhook_delivery", "event", "mail")

# One SELECT per kind, with the same columns: ``sort_id`` orders rows of one kind that
# failed at the same microsecond (a UUID as 32 hex digits, a bigint padded to 20), compared
# in the C collation so that text order is byte order whatever the database's locale.
# Each names its columns (any of them may come first in the union, which takes its names)
# and is limited on its own, so the union never holds more than ``limit`` rows a kind.
_UUID_SORT = "replace(id::text, '-', '') COLLATE \"C\""
_INT_SORT = "lpad(id::text, 20, '0') COLLATE \"C\""
_SELECTS = {
    "job": (
        "coalesce(completed_at, updated_at)",
        _UUID_SORT,
        "SELECT 'job'::text AS kind, id::text AS id, organization_id, {at} AS failed_at,"
        " error_code, error_message, attempts, type AS summary, {sort} AS sort_id"
        " FROM jobs WHERE status = 'dead'"
        " AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)",
    ),
    "webhook_delivery": (
        "coalesce(finished_at, created_at)",
        _UUID_SORT,
        "SELECT 'webhook_delivery'::text AS kind, id::text AS id, organization_id,"
        " {at} AS failed_at, CASE WHEN response_status IS NULL THEN 'delivery_failed'"
        " ELSE 'http_' || response_status END AS error_code, last_error AS error_message,"
        " attempts, topic AS summary, {sort} AS sort_id"
        " FROM webhook_deliveries WHERE status = 'dead'"
        " AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)",
    ),
    # The relay has no failed state: an event still unrelayed after ``stuck`` seconds is
    # one it missed (or it is not running).
    "event": (
        "created_at",
        _INT_SORT,
        "SELECT 'event'::text AS kind, id::text AS id, organization_id, {at} AS failed_at,"
        " 'not_relayed'::text AS error_code,"
        " 'not relayed to the event stream within ' || %(stuck)s || ' seconds'"
        " AS error_message, NULL::integer AS attempts, topic AS summary, {sort} AS sort_id"
        " FROM event_outbox WHERE relayed_at IS NULL"
        " AND created_at < now() - make_interval(secs => %(stuck)s)"
        " AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)",
    ),
    # Mail has no organization: only a platform-wide listing asks for it.
    "mail": (
        "failed_at",
        _INT_SORT,
        "SELECT 'mail'::text AS kind, id::text AS id, NULL::uuid AS organization_id,"
        " {at} AS failed_at, 'mail_failed'::text AS error_code, last_error AS error_message,"
        " attempts, subject AS summary, {sort} AS sort_id"
        " FROM mail_outbox WHERE failed_at IS NOT NULL",
    ),
}
# Newest first; the cursor is the last row's (failed_at, kind, sort_id).
_AFTER = (
    " AND (%(at)s::timestamptz IS NULL"
    " OR ({at}, '{kind}'::text, {sort}) < (%(at)s, %(kind)s, %(sort)s))"
)


async def failures(
    conn: Conn,
    kinds: list[str],
    org_id: UUID | None,
    stuck_seconds: int,
    limit: int,
    before: tuple[datetime, str, str] | None,
) -> list[Row]:
    """A page of failures of ``kinds`` (of one organization, or all), newest first."""
    parts = []
    for name in kinds:
        when, order, select = _SELECTS[name]
        sql = select.format(at=when, sort=order) + _AFTER.format(at=when, kind=name, sort=order)
        parts.append(f"({sql} ORDER BY {when} DESC, {order} DESC LIMIT %(limit)s)")
    at, kind, sort = before if before is not None else (None, None, None)
    cur = await conn.execute(
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) f"
        " ORDER BY failed_at DESC, kind DESC, sort_id DESC LIMIT %(limit)s",
        {
            "org": org_id,
            "stuck": stuck_seconds,
            "limit": limit,
            "at": at,
            "kind": kind,
            "sort": sort,
        },
    )
    return await cur.fetchall()


_OWNER = {
    "job": "SELECT organization_id FROM jobs WHERE id = %s",
    "webhook_delivery": "SELECT organization_id FROM webhook_deliveries WHERE id = %s",
    "event": "SELECT organization_id FROM event_outbox WHERE id = %s",
    "mail": "SELECT NULL::uuid AS organization_id FROM mail_outbox WHERE id = %s",
}


async def owner(conn: Conn, kind: str, ident: UUID | int) -> Row | None:
    """The organization the failure belongs to (None for mail); None when there is no row."""
    cur = await conn.execute(_OWNER[kind], (ident,))
    return await cur.fetchone()


async def job_status(conn: Conn, job_id: UUID) -> str | None:
    cur = await conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,))
    row = await cur.fetchone()
    return None if row is None else str(row["status"])


EVENT = "id, organization_id, topic, job_id, run_id, created_at, relayed_at, stream_id"


async def event(conn: Conn, event_id: int, stuck_seconds: int) -> Row | None:
    """The outbox row, and whether it has waited longer than ``stuck_seconds`` (``stuck``,
    by the database's clock, which wrote ``created_at``)."""
    cur = await conn.execute(
        f"SELECT {EVENT}, created_at < now() - make_interval(secs => %s) AS stuck"
        " FROM event_outbox WHERE id = %s",
        (stuck_seconds, event_id),
    )
    return await cur.fetchone()


async def wake_relay(conn: Conn) -> None:
    """Ask the relay to look at the outbox now (sent when the transaction commits)."""
    await conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))


# Neither body nor token: what an operator sees of a mail.
# Where a mail's body holds its token (treadle.services.mail.TOKEN).
TOKEN = "{token}"
MAIL = "id, subject, created_at, attempts, next_attempt_at, last_error, failed_at, sent_at"


async def mail(conn: Conn, mail_id: int, *, lock: bool = False) -> Row | None:
    """The mail, and whether its single-use link was erased (a failed mail's token is)."""
    cur = await conn.execute(
        f"SELECT {MAIL}, token IS NULL AND strpos(body, %s) > 0 AS link_spent"
        " FROM mail_outbox WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (TOKEN, mail_id),
    )
    return await cur.fetchone()


async def requeue_mail(conn: Conn, mail_id: int) -> Row:
    """A failed mail due again at once, its attempts kept."""
    cur = await conn.execute(
        "UPDATE mail_outbox SET failed_at = NULL, last_error = NULL, next_attempt_at = now()"
        f" WHERE id = %s RETURNING {MAIL}",
        (mail_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


# Each claim of a job writes one ``job.running`` outbox row in the claim's transaction, so
# these rows count claims, every attempt included (``jobs.started_at`` keeps only the first
# attempt's). A row of the last minute was relayed in the last minute or is still pending,
# which the outbox's two partial indexes find without reading the day the outbox keeps.
_QUEUES = """
WITH live AS (
    SELECT organization_id, type,
           count(*) FILTER (WHERE status = 'queued') AS queued,
           count(*) FILTER (WHERE status = 'queued' AND run_after <= now()) AS ready,
           count(*) FILTER (WHERE status = 'running') AS running,
           min(queued_at) FILTER (WHERE status = 'queued') AS oldest_queued_at
    FROM jobs
    WHERE status IN ('queued', 'running')
      AND (%s::uuid IS NULL OR organization_id = %s::uuid)
    GROUP BY organization_id, type
), claims AS (
    SELECT j.organization_id, j.type, count(*) AS claims
    FROM event_outbox e JOIN jobs j ON j.id = e.job_id
    WHERE e.topic = 'job.running'
      AND (e.relayed_at >= now() - make_interval(secs => %s) OR e.relayed_at IS NULL)
      AND e.created_at >= now() - make_interval(secs => %s)
      AND (%s::uuid IS NULL OR e.organization_id = %s::uuid)
    GROUP BY j.organization_id, j.type
)
SELECT organization_id, type,
       coalesce(l.queued, 0) AS queued, coalesce(l.ready, 0) AS ready,
       coalesce(l.running, 0) AS running,
       extract(epoch FROM now() - l.oldest_queued_at)::float8 AS oldest_queued_seconds,
       coalesce(c.claims, 0) AS claims_last_minute,
       count(*) OVER () AS total
FROM live l FULL JOIN claims c USING (organization_id, type)
ORDER BY oldest_queued_seconds DESC NULLS LAST, organization_id, type
"""


async def queues(
    conn: Conn, org_id: UUID | None, window_seconds: int, limit: int, offset: int
) -> tuple[list[Row], int]:
    """Per organization and job type: depth, age and claim rate, the oldest backlog first;
    and how many such rows there are in all."""
    # In the statement's order: the organization twice, the window twice, the organization twice.
    args = (org_id, org_id, window_seconds, window_seconds, org_id, org_id)
    return await paged(conn, _QUEUES, args, limit, offset)


def _age(column: str) -> str:
    """Seconds since ``column``; NULL when it is (no rows)."""
    return f"extract(epoch FROM now() - {column})::float8"


async def relay_backlog(conn: Conn, org_id: UUID | None) -> Row:
    cur = await conn.execute(
        f"SELECT count(*) AS pending, {_age('min(created_at)')} AS oldest_age_seconds"
        " FROM event_outbox WHERE relayed_at IS NULL"
        " AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)",
        {"org": org_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def mail_backlog(conn: Conn) -> Row:
    pending = "failed_at IS NULL"
    due = f"{pending} AND next_attempt_at <= now()"
    cur = await conn.execute(
        f"SELECT count(*) FILTER (WHERE {pending}) AS pending,"
        f" {_age(f'min(created_at) FILTER (WHERE {pending})')} AS oldest_age_seconds,"
        f" {_age(f'min(next_attempt_at) FILTER (WHERE {due})')} AS overdue_seconds,"
        " count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed"
        " FROM mail_outbox WHERE sent_at IS NULL"
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def webhook_backlog(conn: Conn, org_id: UUID | None) -> Row:
    # A delivery being sent is leased until next_attempt_at: past it, its sender died.
    cur = await conn.execute(
        f"SELECT count(*) AS pending,"
        f" {_age('min(next_attempt_at) FILTER (WHERE next_attempt_at <= now())')}"
        " AS overdue_seconds,"
        " (SELECT count(*) FROM webhook_deliveries WHERE status = 'dead'"
        "  AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)) AS dead"
        " FROM webhook_deliveries WHERE status IN ('pending', 'sending')"
        " AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)",
        {"org": org_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return row
