"""Approval gates: the ones the signed-in caller may decide, pending and decided."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import (
    TIME_CURSOR_PARAMS,
    limit_of,
    statuses_param,
    time_cursor,
    time_page,
    uuid_param,
)
from treadle.store import workflow_approvals as approval_store
from treadle.web.request import Request
from treadle.web.routing import Param, Route

_ONE_STATUS = "|".join(approval_store.STATUSES)


class GateDecision(msgspec.Struct):
    user_id: UUID
    decision: str
    comment: str
    decided_at: datetime


class Approval(msgspec.Struct):
    id: UUID
    run_id: UUID
    node: str
    organization_id: UUID
    status: str
    # Who may decide: named users, members of these teams, holders of these roles.
    users: list[UUID]
    teams: list[UUID]
    roles: list[str]
    required: int
    approvals: int
    allow_submitter: bool
    submitted_by: str
    decisions: list[GateDecision]
    decided_by_me: bool
    created_at: datetime
    # When the gate expires (None without an expiry, or while the run is paused).
    expires_at: datetime | None
    closed_at: datetime | None


async def list_approvals(req: Request) -> Any:
    limit = limit_of(req)
    rows = await req.app.workflow_runs.approvals(
        req.principal,
        req.scope.organization_id,
        limit,
        before=time_cursor(req),
        statuses=statuses_param(req, approval_store.STATUSES),
        run_id=uuid_param(req, "run_id"),
    )
    return time_page(rows, limit)


ROUTES = [
    Route(
        "GET",
        "/v1/approvals",
        list_approvals,
        "Approval gates of the organization that you may decide (signed-in users), pending"
        " and decided, newest first",
        "workflows",
        auth="any",
        response=list[Approval],
        params=(
            *TIME_CURSOR_PARAMS,
            Param(
                "status",
                f"only these statuses, comma separated: {', '.join(approval_store.STATUSES)}",
                {"type": "string", "pattern": f"^({_ONE_STATUS})(,({_ONE_STATUS}))*$"},
            ),
            Param("run_id", "only the gates of this run", {"type": "string", "format": "uuid"}),
            Param("organization_id", "the organization"),
        ),
        permission="approvals.decide",
        scope=scopes.caller_organization,
    ),
]
