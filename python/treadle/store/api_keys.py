"""API keys, their secrets (stored only as keyed hashes) and their usage counters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn, paged

Row = dict[str, Any]

KEY = (
    "k.id, k.organization_id, k.name, k.environment, k.display_prefix, k.scopes, k.expires_at,"
    " k.rate_limit_policy, k.created_by, k.created_at, k.updated_at, k.disabled_at,"
    " k.revoked_at, k.last_used_at, k.edge_agent_id"
)


async def insert(conn: Conn, key: Row) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, organization_id, name, environment, display_prefix, scopes,"
        " expires_at, rate_limit_policy, created_by, edge_agent_id) VALUES (%(id)s,"
        " %(organization_id)s, %(name)s, %(environment)s, %(display_prefix)s, %(scopes)s,"
        " %(expires_at)s, %(rate_limit_policy)s, %(created_by)s, %(edge_agent_id)s)",
        {"edge_agent_id": None, **key},
    )


async def add_secret(conn: Conn, key_hash: str, key_id: UUID) -> None:
    await conn.execute(
        "INSERT INTO api_key_secrets (key_hash, key_id) VALUES (%s, %s)", (key_hash, key_id)
    )


async def get(conn: Conn, key_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {KEY} FROM api_keys k WHERE k.id = %s" + (" FOR UPDATE" if lock else ""),
        (key_id,),
    )
    return await cur.fetchone()


async def by_hash(conn: Conn, key_hash: str) -> Row | None:
    """The key a secret belongs to, with the secret's own expiry."""
    cur = await conn.execute(
        f"SELECT {KEY}, s.expires_at AS secret_expires_at FROM api_key_secrets s"
        " JOIN api_keys k ON k.id = s.key_id WHERE s.key_hash = %s",
        (key_hash,),
    )
    return await cur.fetchone()


async def secret_hashes(conn: Conn, key_id: UUID) -> list[str]:
    cur = await conn.execute("SELECT key_hash FROM api_key_secrets WHERE key_id = %s", (key_id,))
    return [r["key_hash"] for r in await cur.fetchall()]


async def expire_secrets(conn: Conn, key_id: UUID, grace_seconds: float) -> None:
    """Old secrets of the key stop working after the grace period (0: now)."""
    await conn.execute(
        "UPDATE api_key_secrets SET expires_at = LEAST(coalesce(expires_at, 'infinity'),"
        " now() + make_interval(secs => %s)) WHERE key_id = %s",
        (grace_seconds, key_id),
    )


async def in_org(conn: Conn, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        f"SELECT {KEY}, count(*) OVER () AS total FROM api_keys k"
        " WHERE k.organization_id = %s ORDER BY k.created_at DESC, k.id",
        (org_id,),
        limit,
        offset,
    )


async def update(conn: Conn, key_id: UUID, changes: Row) -> Row | None:
    sets = ", ".join(f"{column} = %({column})s" for column in changes)
    cur = await conn.execute(
        f"UPDATE api_keys k SET {sets}, updated_at = now() WHERE k.id = %(key_id)s RETURNING {KEY}",
        {**changes, "key_id": key_id},
    )
    return await cur.fetchone()


async def add_usage(conn: Conn, rows: list[tuple[UUID, date, str, int]]) -> None:
    """Add counted requests in one statement (one row per key, day and route)."""
    if not rows:
        return
    key_ids, days, routes, counts = (list(column) for column in zip(*rows, strict=True))
    await conn.execute(
        "INSERT INTO api_key_usage (key_id, day, route, requests)"
        " SELECT * FROM unnest(%s::uuid[], %s::date[], %s::text[], %s::bigint[])"
        " ON CONFLICT (key_id, day, route)"
        " DO UPDATE SET requests = api_key_usage.requests + excluded.requests",
        (key_ids, days, routes, counts),
    )


async def touch(conn: Conn, last_used: dict[UUID, datetime]) -> None:
    if not last_used:
        return
    await conn.execute(
        "UPDATE api_keys k SET last_used_at = GREATEST(coalesce(k.last_used_at, u.at), u.at)"
        " FROM unnest(%s::uuid[], %s::timestamptz[]) AS u(id, at) WHERE k.id = u.id",
        (list(last_used), list(last_used.values())),
    )


async def usage(conn: Conn, key_id: UUID, since: date) -> list[Row]:
    cur = await conn.execute(
        "SELECT day, route, requests FROM api_key_usage WHERE key_id = %s AND day >= %s"
        " ORDER BY day, route",
        (key_id, since),
    )
    return await cur.fetchall()
