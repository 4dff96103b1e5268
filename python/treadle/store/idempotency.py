"""Stored answers to idempotent requests."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from treadle.store.db import Conn

Row = dict[str, Any]
GET = (
    "SELECT fingerprint, status, body, content_type, expires_at FROM idempotency_keys"
    " WHERE principal = %s AND key = %s AND expires_at > now()"
)


async def get(conn: Conn, principal: str, key: str) -> Row | None:
    cur = await conn.execute(GET, (principal, key))
    return await cur.fetchone()


async def lock_and_get(
    pipeline: AbstractAsyncContextManager[Conn], principal: str, key: str
) -> tuple[bool, Row | None]:
    """Take the key's lock for the rest of the caller's transaction, if no one holds it
    (PostgreSQL drops it with the transaction, or with the connection of a process that
    died), then ``get`` the answer of whoever held it before. Both are sent in
    ``pipeline`` (``RequestTransaction.pipeline``, which opens the transaction in the same
    round trip) and read once it has ended. Two statements, not one: the look must see
    what committed up to the lock, and a statement sees only what committed before it
    began."""
    async with pipeline as conn:
        lock = await conn.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0)) AS locked",
            (f"idempotency:{principal}:{key}",),
        )
        found = await conn.execute(GET, (principal, key))
    row = await lock.fetchone()
    return bool(row and row["locked"]), await found.fetchone()


async def put(
    conn: Conn,
    principal: str,
    key: str,
    fingerprint: str,
    status: int,
    body: bytes,
    content_type: str,
    keep_seconds: int,
) -> None:
    """Store an answer; an expired one under the same key is replaced."""
    await conn.execute(
        "INSERT INTO idempotency_keys (principal, key, fingerprint, status, body, content_type,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))"
        " ON CONFLICT (principal, key) DO UPDATE SET fingerprint = excluded.fingerprint,"
        " status = excluded.status, body = excluded.body, content_type = excluded.content_type,"
        " created_at = now(), expires_at = excluded.expires_at"
        " WHERE idempotency_keys.expires_at <= now()",
        (principal, key, fingerprint, status, body, content_type, keep_seconds),
    )
