"""ACL entries and the log of denied decisions."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from treadle.store.db import Conn, paged

Row = dict[str, Any]

ENTRY = (
    "id, organization_id, resource_type, resource_id, action, subject, effect, created_by,"
    " created_at"
)


async def insert(conn: Conn, entry: Row) -> Row:
    cur = await conn.execute(
        "INSERT INTO acl_entries (id, organization_id, resource_type, resource_id, action,"
        " subject, effect, created_by) VALUES (%(id)s, %(organization_id)s, %(resource_type)s,"
        " %(resource_id)s, %(action)s, %(subject)s, %(effect)s, %(created_by)s)"
        f" RETURNING {ENTRY}",
        entry,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def get(conn: Conn, entry_id: UUID) -> Row | None:
    cur = await conn.execute(f"SELECT {ENTRY} FROM acl_entries WHERE id = %s", (entry_id,))
    return await cur.fetchone()


async def delete(conn: Conn, entry_id: UUID) -> Row | None:
    cur = await conn.execute(
        f"DELETE FROM acl_entries WHERE id = %s RETURNING {ENTRY}", (entry_id,)
    )
    return await cur.fetchone()


async def in_org(conn: Conn, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        f"SELECT {ENTRY}, count(*) OVER () AS total FROM acl_entries"
        " WHERE organization_id = %s ORDER BY created_at, id",
        (org_id,),
        limit,
        offset,
    )


async def record_denial(conn: Conn, denial: Row) -> None:
    await conn.execute(
        "INSERT INTO authz_denials (organization_id, actor_id, principal_type, action, resource,"
        " reason, method, route, request_id) VALUES (%(organization_id)s, %(actor_id)s,"
        " %(principal_type)s, %(action)s, %(resource)s, %(reason)s, %(method)s, %(route)s,"
        " %(request_id)s)",
        denial,
    )


async def denials(conn: Conn, org_id: UUID, before_id: int | None, limit: int) -> list[Row]:
    cur = await conn.execute(
        "SELECT id, organization_id, actor_id, principal_type, action, resource, reason, method,"
        " route, request_id, created_at FROM authz_denials WHERE organization_id = %s"
        " AND (%s::bigint IS NULL OR id < %s) ORDER BY id DESC LIMIT %s",
        (org_id, before_id, before_id, limit),
    )
    return await cur.fetchall()
