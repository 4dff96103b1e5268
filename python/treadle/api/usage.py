"""Usage of an organization: a summary with breakdowns, and the records themselves."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec

from treadle import clock
from treadle.api import scopes
from treadle.api.common import CURSOR_PARAMS, TIME_PARAMS, by_id_page, cursor_of, time_param
from treadle.api.jobs import UsageRecord
from treadle.store import usage as usage_store
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route

DEFAULT_DAYS = 30
MAX_DAYS = 366


class MetricTotal(msgspec.Struct):
    metric: str
    quantity: float
    cost: float
    records: int


class DayTotal(MetricTotal):
    day: date


class JobTypeTotal(MetricTotal):
    job_type: str | None


class ApiKeyTotal(MetricTotal):
    api_key_id: UUID | None


class TeamTotal(MetricTotal):
    team_id: UUID | None


class UsageSummary(msgspec.Struct):
    organization_id: UUID
    since: datetime
    until: datetime
    total_cost: float
    totals: list[MetricTotal]
    by_day: list[DayTotal]
    by_job_type: list[JobTypeTotal]
    by_api_key: list[ApiKeyTotal]
    by_team: list[TeamTotal]


def _range(req: Request) -> tuple[datetime, datetime]:
    until = time_param(req, "until") or clock.now()
    since = time_param(req, "since") or until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise ApiError.validation("since must be before until", "query.since")
    if until - since > timedelta(days=MAX_DAYS):
        raise ApiError.validation(
            f"the range may span at most {MAX_DAYS} days; narrow since/until", "query.since"
        )
    return since, until


async def summary(req: Request) -> Any:
    org_id = req.scope.organization_id
    since, until = _range(req)
    async with req.app.db.connection() as conn:
        groups = await usage_store.summary(conn, org_id, since, until)
    return {
        "organization_id": org_id,
        "since": since,
        "until": until,
        "total_cost": sum(float(t["cost"]) for t in groups["total"]),
        "totals": groups["total"],
        "by_day": groups["day"],
        "by_job_type": groups["job_type"],
        "by_api_key": groups["api_key_id"],
        "by_team": groups["team_id"],
    }


# An empty filter is no filter, as absent is.
_UUID_OR_EMPTY: dict[str, Any] = {"type": "string", "anyOf": [{"format": "uuid"}, {"maxLength": 0}]}


def _uuid(req: Request, name: str) -> UUID | None:
    raw = req.query_value(name)
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise ApiError.validation(f"{name} must be a UUID", f"query.{name}") from None


async def records(req: Request) -> Any:
    limit, before = cursor_of(req)
    filters: dict[str, Any] = {
        name: value
        for name in ("job_id", "api_key_id", "team_id")
        if (value := _uuid(req, name)) is not None
    }
    if metric := req.query_value("metric"):
        filters["metric"] = metric
    async with req.app.db.connection() as conn:
        rows = await usage_store.records(
            conn,
            req.scope.organization_id,
            limit,
            before,
            time_param(req, "since"),
            time_param(req, "until"),
            filters,
        )
    return by_id_page(rows, limit)


USAGE = "/v1/organizations/{id}/usage"

ROUTES = [
    Route(
        "GET",
        USAGE,
        summary,
        "Usage summary over a time range (default: the last 30 days), by day, metric,"
        " job type, API key and team",
        "usage",
        auth="any",
        response=UsageSummary,
        params=TIME_PARAMS,
        permission="usage.read",
        scope=scopes.organization,
    ),
    Route(
        "GET",
        USAGE + "/records",
        records,
        "Usage records, newest first",
        "usage",
        auth="any",
        response=list[UsageRecord],
        params=(
            *CURSOR_PARAMS,
            *TIME_PARAMS,
            Param("metric", "only this metric, e.g. jobs or api.requests"),
            Param("job_id", "only this job's records", _UUID_OR_EMPTY),
            Param(
                "api_key_id",
                "only records of requests or jobs of this API key",
                _UUID_OR_EMPTY,
            ),
            Param("team_id", "only this team's records", _UUID_OR_EMPTY),
        ),
        permission="usage.read",
        scope=scopes.organization,
    ),
]
