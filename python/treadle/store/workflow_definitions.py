"""Workflow definitions: immutable versions of a named DAG, per organization."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from treadle.store.db import Conn, after_cursor, cursor_args

Row = dict[str, Any]
AFTER_CURSOR = after_cursor()


async def get(conn: Conn, definition_id: UUID) -> Row | None:
    cur = await conn.execute("SELECT * FROM workflow_definitions WHERE id = %s", (definition_id,))
    return await cur.fetchone()


async def latest(conn: Conn, org_id: UUID, name: str, version: int | None = None) -> Row | None:
    """The newest version of ``name`` in the organization, or ``version`` of it."""
    cur = await conn.execute(
        "SELECT * FROM workflow_definitions WHERE organization_id = %s AND name = %s"
        " AND (%s::integer IS NULL OR version = %s::integer) ORDER BY version DESC LIMIT 1",
        (org_id, name, version, version),
    )
    return await cur.fetchone()


async def insert_next(conn: Conn, row: Row) -> Row:
    """Store ``row`` as the next version of its name. Two posts of one name at once are
    serialised by a transaction lock on (organization, name), so each gets its own version."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s::text || '/' || %s, 7))",
        (row["organization_id"], row["name"]),
    )
    cur = await conn.execute(
        "INSERT INTO workflow_definitions"
        " (id, organization_id, name, version, description, spec, node_count, created_by)"
        " SELECT %s, %s, %s, coalesce(max(version), 0) + 1, %s, %s, %s, %s"
        " FROM workflow_definitions WHERE organization_id = %s AND name = %s RETURNING *",
        (
            row["id"],
            row["organization_id"],
            row["name"],
            row["description"],
            Jsonb(row["spec"]),
            row["node_count"],
            row["created_by"],
            row["organization_id"],
            row["name"],
        ),
    )
    created = await cur.fetchone()
    assert created is not None
    return created


async def in_org(
    conn: Conn,
    org_id: UUID,
    limit: int,
    before: tuple[datetime, UUID] | None,
    name: str | None,
) -> list[Row]:
    """A page of the organization's definitions (every version), newest first."""
    cur = await conn.execute(
        "SELECT * FROM workflow_definitions WHERE organization_id = %s"
        " AND (%s::text IS NULL OR name = %s::text)"
        f" AND {AFTER_CURSOR}"
        " ORDER BY created_at DESC, id DESC LIMIT %s",
        (
            org_id,
            name,
            name,
            *cursor_args(before),
            limit,
        ),
    )
    return await cur.fetchall()
