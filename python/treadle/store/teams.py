"""Teams and their members."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from treadle.store.db import Conn, paged

Row = dict[str, Any]

TEAM = "id, organization_id, name, description, created_at, updated_at"


async def insert(conn: Conn, team_id: UUID, org_id: UUID, name: str, description: str) -> Row:
    cur = await conn.execute(
        "INSERT INTO teams (id, organization_id, name, description) VALUES (%s, %s, %s, %s)"
        f" RETURNING {TEAM}",
        (team_id, org_id, name, description),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def get(conn: Conn, team_id: UUID) -> Row | None:
    cur = await conn.execute(
        f"SELECT {TEAM} FROM teams WHERE id = %s AND deleted_at IS NULL", (team_id,)
    )
    return await cur.fetchone()


async def update(
    conn: Conn, team_id: UUID, name: str | None, description: str | None
) -> Row | None:
    cur = await conn.execute(
        "UPDATE teams SET name = coalesce(%s, name), description = coalesce(%s, description),"
        f" updated_at = now() WHERE id = %s AND deleted_at IS NULL RETURNING {TEAM}",
        (name, description, team_id),
    )
    return await cur.fetchone()


async def delete(conn: Conn, team_id: UUID) -> Row | None:
    await conn.execute("DELETE FROM team_members WHERE team_id = %s", (team_id,))
    cur = await conn.execute(
        "UPDATE teams SET deleted_at = now(), updated_at = now()"
        f" WHERE id = %s AND deleted_at IS NULL RETURNING {TEAM}",
        (team_id,),
    )
    return await cur.fetchone()


async def in_org(conn: Conn, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        f"SELECT {TEAM}, count(*) OVER () AS total FROM teams"
        " WHERE organization_id = %s AND deleted_at IS NULL ORDER BY created_at, id",
        (org_id,),
        limit,
        offset,
    )


async def for_user(conn: Conn, user_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        "SELECT t.id, t.organization_id, t.name, t.description, t.created_at, t.updated_at,"
        " tm.role, count(*) OVER () AS total FROM teams t"
        " JOIN team_members tm ON tm.team_id = t.id"
        " JOIN organizations o ON o.id = t.organization_id"
        " WHERE tm.user_id = %s AND t.deleted_at IS NULL AND o.archived_at IS NULL"
        " ORDER BY t.created_at, t.id",
        (user_id,),
        limit,
        offset,
    )


async def add_member(conn: Conn, team_id: UUID, org_id: UUID, user_id: UUID, role: str) -> Row:
    await conn.execute(
        "INSERT INTO team_members (team_id, user_id, organization_id, role)"
        " VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
        (team_id, user_id, org_id, role),
    )
    row = await member(conn, team_id, user_id)
    assert row is not None
    return row


async def member(conn: Conn, team_id: UUID, user_id: UUID) -> Row | None:
    cur = await conn.execute(
        "SELECT tm.team_id, tm.user_id, tm.role, tm.created_at, u.email, u.display_name"
        " FROM team_members tm JOIN users u ON u.id = tm.user_id"
        " WHERE tm.team_id = %s AND tm.user_id = %s",
        (team_id, user_id),
    )
    return await cur.fetchone()


async def members(conn: Conn, team_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        "SELECT tm.team_id, tm.user_id, tm.role, tm.created_at, u.email, u.display_name,"
        " count(*) OVER () AS total FROM team_members tm JOIN users u ON u.id = tm.user_id"
        " WHERE tm.team_id = %s ORDER BY tm.created_at, tm.user_id",
        (team_id,),
        limit,
        offset,
    )


async def remove_member(conn: Conn, team_id: UUID, user_id: UUID) -> bool:
    cur = await conn.execute(
        "DELETE FROM team_members WHERE team_id = %s AND user_id = %s", (team_id, user_id)
    )
    return cur.rowcount > 0


async def ids_in_org(conn: Conn, org_id: UUID, team_ids: list[UUID]) -> set[UUID]:
    """Which of ``team_ids`` are teams of ``org_id``."""
    cur = await conn.execute(
        "SELECT id FROM teams WHERE organization_id = %s AND id = ANY(%s::uuid[])",
        (org_id, team_ids),
    )
    return {row["id"] for row in await cur.fetchall()}
