"""Sessions (refresh-token families), their refresh tokens, and mailed single-use tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn

Row = dict[str, Any]


async def create(
    conn: Conn, session_id: UUID, user_id: UUID, expires_at: datetime, user_agent: str, ip: str
) -> None:
    await conn.execute(
        "INSERT INTO sessions (id, user_id, expires_at, user_agent, ip)"
        " VALUES (%s, %s, %s, %s, %s)",
        (session_id, user_id, expires_at, user_agent[:512], ip[:64]),
    )


async def state(conn: Conn, session_id: UUID) -> Row | None:
    cur = await conn.execute(
        "SELECT s.user_id, s.expires_at, s.revoked_at FROM sessions s WHERE s.id = %s",
        (session_id,),
    )
    return await cur.fetchone()


async def revoke(conn: Conn, session_id: UUID, reason: str) -> bool:
    cur = await conn.execute(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = %s"
        " WHERE id = %s AND revoked_at IS NULL",
        (reason, session_id),
    )
    return cur.rowcount > 0


async def revoke_all(conn: Conn, user_id: UUID, reason: str) -> list[UUID]:
    cur = await conn.execute(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = %s"
        " WHERE user_id = %s AND revoked_at IS NULL RETURNING id",
        (reason, user_id),
    )
    return [row["id"] for row in await cur.fetchall()]


async def add_refresh(conn: Conn, token_hash: str, session_id: UUID, expires_at: datetime) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (%s, %s, %s)",
        (token_hash, session_id, expires_at),
    )


async def spend_refresh(conn: Conn, token_hash: str) -> Row | None:
    """Mark a refresh token used. Returns its row as it was before, with its session's state;
    ``was_used`` tells a replay of a spent token apart from a first use."""
    cur = await conn.execute(
        "WITH old AS ("
        "  SELECT t.token_hash, t.used_at FROM refresh_tokens t"
        "  WHERE t.token_hash = %s FOR UPDATE)"
        " UPDATE refresh_tokens t SET used_at = coalesce(t.used_at, now())"
        " FROM old, sessions s"
        " WHERE t.token_hash = old.token_hash AND s.id = t.session_id"
        " RETURNING t.session_id, t.expires_at, old.used_at IS NOT NULL AS was_used,"
        "   s.user_id, s.revoked_at, s.expires_at AS session_expires_at",
        (token_hash,),
    )
    return await cur.fetchone()


async def add_user_token(
    conn: Conn, token_hash: str, user_id: UUID, purpose: str, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO user_tokens (token_hash, user_id, purpose, expires_at)"
        " VALUES (%s, %s, %s, %s)",
        (token_hash, user_id, purpose, expires_at),
    )


async def spend_user_token(conn: Conn, token_hash: str, purpose: str) -> UUID | None:
    """Use a mailed token once: only an unused, unexpired token of the purpose matches."""
    cur = await conn.execute(
        "UPDATE user_tokens SET used_at = now()"
        " WHERE token_hash = %s AND purpose = %s AND used_at IS NULL AND expires_at > now()"
        " RETURNING user_id",
        (token_hash, purpose),
    )
    row = await cur.fetchone()
    return None if row is None else row["user_id"]


async def void_user_tokens(conn: Conn, user_id: UUID, purpose: str) -> None:
    await conn.execute(
        "UPDATE user_tokens SET used_at = now()"
        " WHERE user_id = %s AND purpose = %s AND used_at IS NULL",
        (user_id, purpose),
    )
