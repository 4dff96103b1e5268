"""The mail outbox: rows written with the change that causes them, claimed by the mailer."""

from __future__ import annotations

from typing import Any

from treadle.store.db import Conn

Row = dict[str, Any]
# What a failure reason is cut to; SMTP servers can answer at length.
REASON_CHARS = 1000


async def enqueue(
    conn: Conn, to_address: str, subject: str, body: str, token: str | None = None
) -> None:
    """Queue a mail; ``token`` (a single-use secret) is kept apart from the body, which
    holds a placeholder for it, and erased once the mail is sent or given up on."""
    await conn.execute(
        "INSERT INTO mail_outbox (to_address, subject, body, token) VALUES (%s, %s, %s, %s)",
        (to_address, subject, body, token),
    )
    await conn.execute("SELECT pg_notify('treadle_mail', '')")


async def claim_one(conn: Conn) -> Row | None:
    """The next mail due for sending, locked so that another process skips it (call in a
    transaction, and record the outcome in it)."""
    cur = await conn.execute(
        "SELECT id, to_address, subject, body, token, attempts FROM mail_outbox"
        " WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    return await cur.fetchone()


async def mark_sent(conn: Conn, mail_id: int) -> None:
    await conn.execute(
        "UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1, token = NULL"
        " WHERE id = %s",
        (mail_id,),
    )


async def retry_later(conn: Conn, mail_id: int, error: str, retry_in: float) -> None:
    await conn.execute(
        "UPDATE mail_outbox SET attempts = attempts + 1, last_error = %s,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
        (error[:REASON_CHARS], retry_in, mail_id),
    )


async def mark_failed(conn: Conn, mail_id: int, error: str) -> None:
    """Given up on for good (it can never be built or delivered), with the reason."""
    await conn.execute(
        "UPDATE mail_outbox SET failed_at = now(), attempts = attempts + 1, last_error = %s,"
        " token = NULL WHERE id = %s",
        (error[:REASON_CHARS], mail_id),
    )


async def prune(conn: Conn, keep_days: int) -> int:
    """Delete mail sent or failed more than ``keep_days`` ago; how many."""
    cur = await conn.execute(
        "DELETE FROM mail_outbox WHERE (sent_at IS NOT NULL OR failed_at IS NOT NULL)"
        " AND coalesce(sent_at, failed_at) < now() - make_interval(days => %s)",
        (keep_days,),
    )
    return cur.rowcount
