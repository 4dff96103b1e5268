"""The mail outbox: rows written with the change that causes them, claimed by the mailer."""

from __future__ import annotations

from typing import Any

from treadle.store.db import Conn

Row = dict[str, Any]


async def enqueue(conn: Conn, to_address: str, subject: str, body: str) -> None:
    await conn.execute(
        "INSERT INTO mail_outbox (to_address, subject, body) VALUES (%s, %s, %s)",
        (to_address, subject, body),
    )
    await conn.execute("SELECT pg_notify('treadle_mail', '')")


async def claim(conn: Conn, limit: int) -> list[Row]:
    """Rows due for sending; locked so that another process skips them (call in a transaction)."""
    cur = await conn.execute(
        "SELECT id, to_address, subject, body, attempts FROM mail_outbox"
        " WHERE sent_at IS NULL AND next_attempt_at <= now()"
        " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    return await cur.fetchall()


async def mark_sent(conn: Conn, mail_id: int) -> None:
    await conn.execute(
        "UPDATE mail_outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = %s",
        (mail_id,),
    )


async def mark_failed(conn: Conn, mail_id: int, error: str, retry_in: float) -> None:
    await conn.execute(
        "UPDATE mail_outbox SET attempts = attempts + 1, last_error = %s,"
        " next_attempt_at = now() + make_interval(secs => %s) WHERE id = %s",
        (error[:1000], retry_in, mail_id),
    )
