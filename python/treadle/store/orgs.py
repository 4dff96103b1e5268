"""Organizations and their members."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from treadle.store.db import Conn, paged

Row = dict[str, Any]

ORG = "id, name, slug, settings, authz_revision, created_by, created_at, updated_at, archived_at"
MEMBER = "m.organization_id, m.user_id, m.role, m.created_at, m.updated_at, u.email, u.display_name"
SORTABLE = {"created_at", "name"}


async def insert(conn: Conn, org_id: UUID, name: str, slug: str, creator: UUID) -> Row:
    cur = await conn.execute(
        f"INSERT INTO organizations (id, name, slug, created_by) VALUES (%s, %s, %s, %s)"
        f" RETURNING {ORG}",
        (org_id, name, slug, creator),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def get(conn: Conn, org_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {ORG} FROM organizations WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (org_id,),
    )
    return await cur.fetchone()


async def update(conn: Conn, org_id: UUID, name: str | None, slug: str | None) -> Row | None:
    cur = await conn.execute(
        "UPDATE organizations SET name = coalesce(%s, name), slug = coalesce(%s, slug),"
        f" updated_at = now() WHERE id = %s RETURNING {ORG}",
        (name, slug, org_id),
    )
    return await cur.fetchone()


async def set_settings(conn: Conn, org_id: UUID, settings: dict[str, Any]) -> Row | None:
    cur = await conn.execute(
        f"UPDATE organizations SET settings = %s, updated_at = now() WHERE id = %s RETURNING {ORG}",
        (Jsonb(settings), org_id),
    )
    return await cur.fetchone()


async def archive(conn: Conn, org_id: UUID) -> Row | None:
    cur = await conn.execute(
        "UPDATE organizations SET archived_at = coalesce(archived_at, now()), updated_at = now(),"
        f" authz_revision = authz_revision + 1 WHERE id = %s RETURNING {ORG}",
        (org_id,),
    )
    return await cur.fetchone()


async def bump_revision(conn: Conn, org_id: UUID) -> int:
    cur = await conn.execute(
        "UPDATE organizations SET authz_revision = authz_revision + 1 WHERE id = %s"
        " RETURNING authz_revision",
        (org_id,),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["authz_revision"])


async def revision(conn: Conn, org_id: UUID) -> int | None:
    cur = await conn.execute("SELECT authz_revision FROM organizations WHERE id = %s", (org_id,))
    row = await cur.fetchone()
    return None if row is None else int(row["authz_revision"])


async def for_user(conn: Conn, user_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    columns = ", ".join("o." + c.strip() for c in ORG.split(","))
    return await paged(
        conn,
        f"SELECT {columns}, m.role, count(*) OVER () AS total"
        " FROM organizations o JOIN memberships m ON m.organization_id = o.id"
        " WHERE m.user_id = %s AND o.archived_at IS NULL ORDER BY o.created_at, o.id",
        (user_id,),
        limit,
        offset,
    )


# -- members ---------------------------------------------------------------------------


async def add_member(conn: Conn, org_id: UUID, user_id: UUID, role: str) -> Row | None:
    """None when the user is a member already."""
    cur = await conn.execute(
        "INSERT INTO memberships (organization_id, user_id, role) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING organization_id",
        (org_id, user_id, role),
    )
    if await cur.fetchone() is None:
        return None
    return await member(conn, org_id, user_id)


async def member(conn: Conn, org_id: UUID, user_id: UUID) -> Row | None:
    cur = await conn.execute(
        f"SELECT {MEMBER} FROM memberships m JOIN users u ON u.id = m.user_id"
        " WHERE m.organization_id = %s AND m.user_id = %s",
        (org_id, user_id),
    )
    return await cur.fetchone()


async def member_ids(conn: Conn, org_id: UUID, user_ids: list[UUID]) -> set[UUID]:
    """Which of ``user_ids`` are members of ``org_id``."""
    cur = await conn.execute(
        "SELECT user_id FROM memberships WHERE organization_id = %s AND user_id = ANY(%s::uuid[])",
        (org_id, user_ids),
    )
    return {row["user_id"] for row in await cur.fetchall()}


async def member_by_email(conn: Conn, org_id: UUID, email: str) -> Row | None:
    cur = await conn.execute(
        f"SELECT {MEMBER} FROM memberships m JOIN users u ON u.id = m.user_id"
        " WHERE m.organization_id = %s AND u.email = %s AND u.deleted_at IS NULL",
        (org_id, email),
    )
    return await cur.fetchone()


async def members(conn: Conn, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        f"SELECT {MEMBER}, count(*) OVER () AS total FROM memberships m"
        " JOIN users u ON u.id = m.user_id WHERE m.organization_id = %s"
        " ORDER BY m.created_at, m.user_id",
        (org_id,),
        limit,
        offset,
    )


async def set_role(conn: Conn, org_id: UUID, user_id: UUID, role: str) -> None:
    await conn.execute(
        "UPDATE memberships SET role = %s, updated_at = now()"
        " WHERE organization_id = %s AND user_id = %s",
        (role, org_id, user_id),
    )


async def remove_member(conn: Conn, org_id: UUID, user_id: UUID) -> None:
    await conn.execute(
        "DELETE FROM team_members WHERE organization_id = %s AND user_id = %s", (org_id, user_id)
    )
    await conn.execute(
        "DELETE FROM memberships WHERE organization_id = %s AND user_id = %s", (org_id, user_id)
    )


async def owner_count(conn: Conn, org_id: UUID) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM memberships WHERE organization_id = %s AND role = 'owner'",
        (org_id,),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def snapshot(conn: Conn, org_id: UUID) -> Row:
    """Everything the authorization evaluator needs about one organization."""
    cur = await conn.execute(
        "SELECT authz_revision, archived_at FROM organizations WHERE id = %s", (org_id,)
    )
    org = await cur.fetchone()
    members_cur = await conn.execute(
        "SELECT user_id::text, role FROM memberships WHERE organization_id = %s", (org_id,)
    )
    teams_cur = await conn.execute(
        "SELECT tm.team_id::text, tm.user_id::text, tm.role FROM team_members tm"
        " JOIN teams t ON t.id = tm.team_id"
        " WHERE tm.organization_id = %s AND t.deleted_at IS NULL",
        (org_id,),
    )
    acl_cur = await conn.execute(
        "SELECT id::text, resource_type, resource_id, action, subject, effect"
        " FROM acl_entries WHERE organization_id = %s",
        (org_id,),
    )
    return {
        "org": org,
        "members": {r["user_id"]: r["role"] for r in await members_cur.fetchall()},
        "team_members": {
            (r["team_id"], r["user_id"]): r["role"] for r in await teams_cur.fetchall()
        },
        "acl": [tuple(r.values()) for r in await acl_cur.fetchall()],
    }
