"""The audit trail: per organization for its admins, everything for platform admins."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import CURSOR_PARAMS, TIME_PARAMS, by_id_page, cursor_of, time_param
from treadle.store import audit as audit_store
from treadle.web.envelope import CursorPage
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route


class AuditEntry(msgspec.Struct):
    id: int
    organization_id: UUID | None
    actor_id: str | None
    principal_type: str
    action: str
    target_type: str
    target_id: str
    before: Any
    after: Any
    request_id: str
    ip: str
    user_agent: str
    created_at: datetime


async def _page(req: Request, organization_id: UUID | None) -> CursorPage:
    limit, before_id = cursor_of(req)
    async with req.app.db.connection() as conn:
        rows = await audit_store.page(
            conn,
            organization_id=organization_id,
            actor_id=req.query_value("actor_id"),
            action=req.query_value("action"),
            target_id=req.query_value("target_id"),
            since=time_param(req, "since"),
            until=time_param(req, "until"),
            before_id=before_id,
            limit=limit,
        )
    return by_id_page(rows, limit)


async def org_logs(req: Request) -> Any:
    return await _page(req, req.scope.organization_id)


async def all_logs(req: Request) -> Any:
    raw = req.query_value("organization_id")
    try:
        org = UUID(raw) if raw else None
    except ValueError:
        raise ApiError.validation(
            "organization_id must be a UUID", "query.organization_id"
        ) from None
    return await _page(req, org)


FILTERS = (
    *CURSOR_PARAMS,
    Param("actor_id", "only this actor"),
    Param("action", "only this action, e.g. member.add"),
    Param("target_id", "only this target"),
    *TIME_PARAMS,
)

ROUTES = [
    Route(
        "GET",
        "/v1/organizations/{id}/audit-logs",
        org_logs,
        "Audit trail of an organization",
        "audit",
        auth="any",
        response=list[AuditEntry],
        params=FILTERS,
        permission="audit.read",
        scope=scopes.organization,
    ),
    Route(
        "GET",
        "/v1/audit-logs",
        all_logs,
        "Every audit row (platform admins)",
        "audit",
        auth="admin",
        response=list[AuditEntry],
        params=(*FILTERS, Param("organization_id", "only this organization")),
    ),
]
