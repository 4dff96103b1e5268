"""Stored answers to idempotent requests."""

from __future__ import annotations

from typing import Any

from treadle.store.db import Conn

Row = dict[str, Any]


async def get(conn: Conn, principal: str, key: str) -> Row | None:
    cur = await conn.execute(
        "SELECT fingerprint, status, body, content_type, expires_at FROM idempotency_keys"
        " WHERE principal = %s AND key = %s AND expires_at > now()",
        (principal, key),
    )
    return await cur.fetchone()


async def try_lock(conn: Conn, principal: str, key: str) -> bool:
    """Take the key's lock for the rest of the caller's transaction, if no one holds it.
    PostgreSQL drops it with the transaction, or with the connection of a process that died."""
    cur = await conn.execute(
        "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0)) AS locked",
        (f"idempotency:{principal}:{key}",),
    )
    row = await cur.fetchone()
    return bool(row and row["locked"])


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
