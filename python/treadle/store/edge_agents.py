"""Edge agents and the single-use tokens they enroll with."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn, after_cursor, cursor_args

Row = dict[str, Any]
AFTER_CURSOR_A = after_cursor("a")
# An agent with its credential (the API key that names it).
AGENT = (
    "a.id, a.organization_id, a.name, a.version, a.status, a.created_at, a.updated_at,"
    " a.last_seen_at, k.id AS api_key_id, k.display_prefix"
)
_JOINED = "edge_agents a LEFT JOIN api_keys k ON k.edge_agent_id = a.id AND k.revoked_at IS NULL"


async def insert_enrollment(conn: Conn, enrollment: Row) -> Row:
    cur = await conn.execute(
        "INSERT INTO edge_agent_enrollments (id, organization_id, token_hash, name, created_by,"
        " expires_at) VALUES (%(id)s, %(organization_id)s, %(token_hash)s, %(name)s,"
        " %(created_by)s, now() + make_interval(secs => %(expires_in)s)) RETURNING"
        " id, organization_id, name, created_by, created_at, expires_at",
        enrollment,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def take_enrollment(conn: Conn, token_hash: str) -> Row | None:
    """The enrollment of ``token_hash`` if it is unused and unexpired, marked used (one
    statement: two agents presenting one token at once, one of them gets it)."""
    cur = await conn.execute(
        "UPDATE edge_agent_enrollments SET used_at = now() WHERE token_hash = %s"
        " AND used_at IS NULL AND expires_at > now() RETURNING *",
        (token_hash,),
    )
    return await cur.fetchone()


async def insert(conn: Conn, agent: Row) -> None:
    await conn.execute(
        "INSERT INTO edge_agents (id, organization_id, name, version, enrollment_id)"
        " VALUES (%(id)s, %(organization_id)s, %(name)s, %(version)s, %(enrollment_id)s)",
        agent,
    )
    await conn.execute(
        "UPDATE edge_agent_enrollments SET agent_id = %s WHERE id = %s",
        (agent["id"], agent["enrollment_id"]),
    )


async def get(conn: Conn, agent_id: UUID, *, lock: bool = False) -> Row | None:
    if lock:
        await conn.execute("SELECT 1 FROM edge_agents WHERE id = %s FOR UPDATE", (agent_id,))
    cur = await conn.execute(f"SELECT {AGENT} FROM {_JOINED} WHERE a.id = %s", (agent_id,))
    return await cur.fetchone()


async def in_org(
    conn: Conn, org_id: UUID, limit: int, before: tuple[datetime, UUID] | None
) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {AGENT} FROM {_JOINED} WHERE a.organization_id = %s"
        f" AND {AFTER_CURSOR_A}"
        " ORDER BY a.created_at DESC, a.id DESC LIMIT %s",
        (
            org_id,
            *cursor_args(before),
            limit,
        ),
    )
    return await cur.fetchall()


async def set_status(conn: Conn, agent_id: UUID, status: str) -> None:
    await conn.execute(
        "UPDATE edge_agents SET status = %s, updated_at = now() WHERE id = %s",
        (status, agent_id),
    )
