"""Invitations to join an organization."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn, paged

Row = dict[str, Any]

INVITATION = (
    "id, organization_id, email, role, invited_by, created_at, expires_at, accepted_at,"
    " accepted_by, revoked_at"
)


async def insert(
    conn: Conn,
    invitation_id: UUID,
    org_id: UUID,
    email: str,
    role: str,
    token_hash: str,
    invited_by: UUID,
    expires_at: datetime,
) -> Row:
    cur = await conn.execute(
        "INSERT INTO invitations (id, organization_id, email, role, token_hash, invited_by,"
        f" expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {INVITATION}",
        (invitation_id, org_id, email, role, token_hash, invited_by, expires_at),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def get(conn: Conn, invitation_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {INVITATION}, token_hash FROM invitations WHERE id = %s"
        + (" FOR UPDATE" if lock else ""),
        (invitation_id,),
    )
    return await cur.fetchone()


async def recent_count(conn: Conn, org_id: UUID, seconds: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM invitations WHERE organization_id = %s"
        " AND created_at > now() - make_interval(secs => %s)",
        (org_id, seconds),
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def in_org(conn: Conn, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        f"SELECT {INVITATION}, count(*) OVER () AS total FROM invitations"
        " WHERE organization_id = %s ORDER BY created_at DESC, id",
        (org_id,),
        limit,
        offset,
    )


async def mark_accepted(conn: Conn, invitation_id: UUID, user_id: UUID) -> Row | None:
    cur = await conn.execute(
        "UPDATE invitations SET accepted_at = now(), accepted_by = %s WHERE id = %s"
        f" AND accepted_at IS NULL AND revoked_at IS NULL RETURNING {INVITATION}",
        (user_id, invitation_id),
    )
    return await cur.fetchone()


async def revoke(conn: Conn, invitation_id: UUID) -> Row | None:
    cur = await conn.execute(
        "UPDATE invitations SET revoked_at = now() WHERE id = %s AND accepted_at IS NULL"
        f" AND revoked_at IS NULL RETURNING {INVITATION}",
        (invitation_id,),
    )
    return await cur.fetchone()
