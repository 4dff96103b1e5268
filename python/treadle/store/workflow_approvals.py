"""Approval gates of workflow runs and the decisions made on them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn, after_cursor, cursor_args

Row = dict[str, Any]
AFTER_CURSOR_A = after_cursor("a")
STATUSES = ("pending", "approved", "rejected", "expired", "canceled")
# The gate's columns and its node's timer: when it expires (None while the run is paused).
_GATE = "a.*, n.fire_at AS expires_at"


async def open_gate(conn: Conn, run: Row, node: str, spec: Row) -> Row:
    approvers = spec["approvers"]
    cur = await conn.execute(
        "INSERT INTO workflow_approvals (id, run_id, node, organization_id, users, teams, roles,"
        " required, allow_submitter, submitted_by)"
        " VALUES (%s, %s, %s, %s, %s::uuid[], %s::uuid[], %s::text[], %s, %s, %s) RETURNING *",
        (
            uuid.uuid4(),
            run["id"],
            node,
            run["organization_id"],
            approvers["users"],
            approvers["teams"],
            approvers["roles"],
            spec["required"],
            spec["allow_submitter"],
            run["submitted_by"],
        ),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def gate(conn: Conn, run_id: UUID, node: str) -> Row | None:
    cur = await conn.execute(
        f"SELECT {_GATE} FROM workflow_approvals a JOIN workflow_nodes n USING (run_id, node)"
        " WHERE a.run_id = %s AND a.node = %s",
        (run_id, node),
    )
    return await cur.fetchone()


async def decide(
    conn: Conn, run_id: UUID, node: str, user_id: UUID, decision: str, comment: str
) -> Row | None:
    """The decision recorded, or None when this user has already decided this gate."""
    cur = await conn.execute(
        "INSERT INTO workflow_approval_decisions (run_id, node, user_id, decision, comment)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING *",
        (run_id, node, user_id, decision, comment),
    )
    return await cur.fetchone()


async def decisions_of(conn: Conn, run_ids: list[UUID]) -> dict[tuple[UUID, str], list[Row]]:
    """The decisions on the gates of ``run_ids``, oldest first, by (run, node)."""
    cur = await conn.execute(
        "SELECT * FROM workflow_approval_decisions WHERE run_id = ANY(%s::uuid[])"
        " ORDER BY decided_at, user_id",
        (run_ids,),
    )
    found: dict[tuple[UUID, str], list[Row]] = {}
    for row in await cur.fetchall():
        found.setdefault((row["run_id"], row["node"]), []).append(row)
    return found


async def close(conn: Conn, run_id: UUID, node: str, status: str) -> None:
    await conn.execute(
        "UPDATE workflow_approvals SET status = %s, closed_at = now()"
        " WHERE run_id = %s AND node = %s AND status = 'pending'",
        (status, run_id, node),
    )


async def cancel_open(conn: Conn, run_id: UUID) -> None:
    await conn.execute(
        "UPDATE workflow_approvals SET status = 'canceled', closed_at = now()"
        " WHERE run_id = %s AND status = 'pending'",
        (run_id,),
    )


async def for_approver(
    conn: Conn,
    org_id: UUID,
    approver: Row,
    limit: int,
    before: tuple[datetime, UUID] | None,
    statuses: list[str] | None,
    run_id: UUID | None,
) -> list[Row]:
    """The organization's gates that ``approver`` (user_id, subject, role, team_ids) may
    decide: named, or holding one of the roles, or in one of the teams, and not the run's
    submitter unless the gate allows it. Newest first."""
    cur = await conn.execute(
        f"SELECT {_GATE} FROM workflow_approvals a JOIN workflow_nodes n USING (run_id, node)"
        " WHERE a.organization_id = %s"
        " AND (%s = ANY(a.users) OR %s = ANY(a.roles) OR a.teams && %s::uuid[])"
        " AND (a.allow_submitter OR a.submitted_by <> %s)"
        " AND (%s::text[] IS NULL OR a.status = ANY(%s::text[]))"
        " AND (%s::uuid IS NULL OR a.run_id = %s::uuid)"
        f" AND {AFTER_CURSOR_A}"
        " ORDER BY a.created_at DESC, a.id DESC LIMIT %s",
        (
            org_id,
            approver["user_id"],
            approver["role"],
            approver["team_ids"],
            approver["subject"],
            statuses,
            statuses,
            run_id,
            run_id,
            *cursor_args(before),
            limit,
        ),
    )
    return await cur.fetchall()


async def user_teams(conn: Conn, org_id: UUID, user_id: UUID) -> list[UUID]:
    """The teams of ``org_id`` that ``user_id`` belongs to."""
    cur = await conn.execute(
        "SELECT tm.team_id FROM team_members tm JOIN teams t ON t.id = tm.team_id"
        " WHERE t.organization_id = %s AND tm.user_id = %s",
        (org_id, user_id),
    )
    return [row["team_id"] for row in await cur.fetchall()]
