"""The audit trail: one row per mutation, written in the mutation's own transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from treadle.store.db import Conn

Row = dict[str, Any]

COLUMNS = (
    "id, organization_id, actor_id, principal_type, action, target_type, target_id,"
    " before, after, request_id, ip, user_agent, created_at"
)


async def record(
    conn: Conn,
    *,
    organization_id: UUID | None,
    actor_id: str | None,
    principal_type: str,
    action: str,
    target_type: str,
    target_id: str,
    before: Any,
    after: Any,
    request_id: str,
    ip: str,
    user_agent: str,
) -> None:
    await conn.execute(
        "INSERT INTO audit_logs (organization_id, actor_id, principal_type, action, target_type,"
        " target_id, before, after, request_id, ip, user_agent)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            organization_id,
            actor_id,
            principal_type,
            action,
            target_type,
            target_id,
            None if before is None else Jsonb(before),
            None if after is None else Jsonb(after),
            request_id,
            ip[:64],
            user_agent[:512],
        ),
    )


async def page(
    conn: Conn,
    *,
    organization_id: UUID | None,
    actor_id: str | None,
    action: str | None,
    target_id: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[Row]:
    """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
    where: list[str] = ["TRUE"]
    args: list[Any] = []
    for column, value in (
        ("organization_id", organization_id),
        ("actor_id", actor_id),
        ("action", action),
        ("target_id", target_id),
    ):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    if since is not None:
        where.append("created_at >= %s")
        args.append(since)
    if until is not None:
        where.append("created_at < %s")
        args.append(until)
    if before_id is not None:
        where.append("id < %s")
        args.append(before_id)
    cur = await conn.execute(
        f"SELECT {COLUMNS} FROM audit_logs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
        (*args, limit),
    )
    return await cur.fetchall()
