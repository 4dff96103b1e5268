"""Telemetry: batch ingest by edge agents, and the organization's events, batches and
per-agent status."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import (
    LIST_PARAMS,
    TIME_CURSOR_PARAMS,
    TIME_PARAMS,
    epoch_micros,
    from_epoch_micros,
    limit_of,
    time_cursor,
    time_page,
    time_param,
    uuid_param,
)
from treadle.web.envelope import CursorPage
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route

# An event's place in the listing: its arrival in microseconds, its batch, its index.
_EVENT_CURSOR = re.compile(r"^([0-9]{1,17})\.([0-9a-f]{32})\.([0-9]{1,5})(?!\n)$")
_EVENT = {
    "type": "object",
    "required": ["type", "timestamp"],
    "properties": {
        "type": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]{0,63}$"},
        "timestamp": {
            "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "RFC 3339 with an offset, or seconds since the Unix epoch",
        },
        "attributes": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
        "id": {"type": "string", "minLength": 1, "maxLength": 128},
    },
    "additionalProperties": False,
}


class Rejection(msgspec.Struct):
    index: int
    code: str
    message: str


class IngestResult(msgspec.Struct):
    batch_id: UUID
    accepted: int
    # Each refused event: its index in the batch and why (the others were taken).
    rejected: list[Rejection]
    received_at: datetime


class TelemetryEvent(msgspec.Struct):
    organization_id: UUID
    agent_id: UUID
    batch_id: UUID
    seq: int
    event_id: str | None
    type: str
    ts: datetime
    attributes: dict[str, Any]
    received_at: datetime


class Batch(msgspec.Struct):
    id: UUID
    organization_id: UUID
    agent_id: UUID
    accepted: int
    rejected: int
    rejections: list[Rejection]
    bytes: int
    created_at: datetime


class AgentStatus(msgspec.Struct):
    agent_id: UUID
    name: str
    agent_status: str
    last_seen_at: datetime | None
    last_batch_id: UUID | None
    last_batch_at: datetime | None
    batches: int
    accepted: int
    rejected: int
    last_error: str | None
    last_error_at: datetime | None


async def ingest(req: Request) -> Any:
    media = (req.headers.get("content-type") or "application/json").split(";")[0].strip()
    encoding = (req.headers.get("content-encoding") or "identity").strip().lower()
    return await req.app.telemetry.ingest(req.principal, req.data, media.lower(), encoding)


async def list_events(req: Request) -> Any:
    limit = limit_of(req)
    raw_types = req.query_value("type")
    rows = await req.app.telemetry.events(
        req.scope.organization_id,
        limit,
        before=_event_cursor(req),
        agent_id=uuid_param(req, "agent_id"),
        types=raw_types.split(",") if raw_types else None,
        since=time_param(req, "since"),
        until=time_param(req, "until"),
    )
    last = rows[-1] if len(rows) == limit else None
    return CursorPage(rows, limit, _event_cursor_of(last) if last else None)


async def list_batches(req: Request) -> Any:
    limit = limit_of(req)
    rows = await req.app.telemetry.batches(
        req.scope.organization_id,
        limit,
        before=time_cursor(req),
        agent_id=uuid_param(req, "agent_id"),
    )
    return time_page(rows, limit)


async def status(req: Request) -> Any:
    return await req.app.telemetry.status(req.scope.organization_id)


def _event_cursor_of(row: dict[str, Any]) -> str:
    return f"{epoch_micros(row['received_at'])}.{row['batch_id'].hex}.{row['seq']}"


def _event_cursor(req: Request) -> tuple[datetime, UUID, int] | None:
    raw = req.query_value("cursor")
    if not raw:
        return None
    match = _EVENT_CURSOR.match(raw)
    if match is None:
        raise ApiError.validation(
            "cursor must be the next_cursor of a previous page", "query.cursor"
        )
    micros, batch, seq = match.groups()
    return from_epoch_micros(int(micros)), UUID(hex=batch), int(seq)


AGENT_PARAM = Param("agent_id", "only this agent's", {"type": "string", "format": "uuid"})
ORG_PARAM = Param("organization_id", "the organization (signed-in users; an API key has its own)")

ROUTES = [
    Route(
        "POST",
        "/v1/telemetry/ingest",
        ingest,
        "Edge agents: a batch of events (JSON array or NDJSON, optionally gzip or zstd;"
        " Idempotency-Key required); bad events are refused one by one, the rest taken",
        "telemetry",
        auth="any",
        raw_body={
            "application/json": {"type": "array", "items": _EVENT},
            "application/x-ndjson": {"type": "string", "description": "one event per line"},
        },
        response=IngestResult,
        status=201,
        idempotency="required",
        # As large a body as a batch route takes (TREADLE_MAX_BATCH_BODY_BYTES); the
        # policy's max_batch_bytes bounds it once decompressed.
        batch=True,
        permission="telemetry.ingest",
        scope=scopes.edge_agent_organization,
    ),
    Route(
        "GET",
        "/v1/telemetry/events",
        list_events,
        "The organization's telemetry events, newest arrival first (since/until bound the"
        " events' own timestamps)",
        "telemetry",
        auth="any",
        response=list[TelemetryEvent],
        params=(
            LIST_PARAMS[0],
            Param(
                "cursor",
                "next_cursor of the previous page",
                {"type": "string", "pattern": _EVENT_CURSOR.pattern},
            ),
            *TIME_PARAMS,
            AGENT_PARAM,
            Param("type", "only these event types, comma separated"),
            ORG_PARAM,
        ),
        permission="telemetry.read",
        scope=scopes.caller_organization,
    ),
    Route(
        "GET",
        "/v1/telemetry/batches",
        list_batches,
        "The organization's ingested batches, newest first, with their rejections",
        "telemetry",
        auth="any",
        response=list[Batch],
        params=(*TIME_CURSOR_PARAMS, AGENT_PARAM, ORG_PARAM),
        permission="telemetry.read",
        scope=scopes.caller_organization,
    ),
    Route(
        "GET",
        "/v1/telemetry/status",
        status,
        "Per edge agent: its last batch, events accepted and rejected, its last error",
        "telemetry",
        auth="any",
        response=list[AgentStatus],
        params=(ORG_PARAM,),
        permission="telemetry.read",
        scope=scopes.caller_organization,
    ),
]
