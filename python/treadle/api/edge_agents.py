"""Edge agents: enrollment tokens, enrolling, listing, rotating, disabling, and policy."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import (
    SINGLE_LINE,
    TIME_CURSOR_PARAMS,
    actor,
    limit_of,
    path_id,
    time_cursor,
    time_page,
)
from treadle.api.organizations import TelemetryPolicy
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Param, Route

AgentName = Annotated[str, msgspec.Meta(max_length=200, pattern=SINGLE_LINE)]
Version = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[A-Za-z0-9._+-]*(?!\n)$")]
Overlap = Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)]


class NewEnrollment(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # The name the agent gets unless it gives its own when it enrolls.
    name: AgentName = ""
    expires_in_seconds: Annotated[int, msgspec.Meta(ge=60, le=7 * 86400)] = 3600
    # Required for a signed-in user; an API key enrolls into its own organization.
    organization_id: UUID | None = None


class Enrollment(msgspec.Struct):
    id: UUID
    organization_id: UUID
    name: str
    created_by: UUID
    created_at: datetime
    expires_at: datetime
    # Shown once: the agent trades it for its credential at POST /v1/edge-agents/enroll.
    token: str


class Enroll(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=SINGLE_LINE)]
    name: AgentName = ""
    version: Version = ""


class AgentRotate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # How long the credential being replaced keeps working.
    overlap_seconds: Overlap = 3600


class EdgeAgent(msgspec.Struct):
    id: UUID
    organization_id: UUID
    name: str
    version: str
    status: str
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None
    # The agent's live credential (None once it is disabled).
    api_key_id: UUID | None
    display_prefix: str | None


class Credential(msgspec.Struct):
    id: UUID
    display_prefix: str
    scopes: list[str]
    # Shown once: the agent's API key.
    key: str
    # After a rotation: until when the previous key still works.
    previous_key_valid_until: datetime | None = None


class Enrolled(msgspec.Struct):
    agent: EdgeAgent
    credential: Credential


async def create_enrollment(req: Request) -> Any:
    body: NewEnrollment = req.data
    return await req.app.edge_agents.create_enrollment(
        actor(req), req.scope.organization_id, body.name, body.expires_in_seconds
    )


async def enroll(req: Request) -> Any:
    body: Enroll = req.data
    return await req.app.edge_agents.enroll(actor(req), body.token, body.name, body.version)


async def list_agents(req: Request) -> Any:
    limit = limit_of(req)
    rows = await req.app.edge_agents.in_org(req.scope.organization_id, limit, time_cursor(req))
    return time_page(rows, limit)


async def rotate(req: Request) -> Any:
    body: AgentRotate = req.data
    return await req.app.edge_agents.rotate(actor(req), path_id(req), body.overlap_seconds)


async def disable(req: Request) -> Any:
    return await req.app.edge_agents.disable(actor(req), path_id(req))


async def policy(req: Request) -> Any:
    data, etag = await req.app.edge_agents.policy(req.principal)
    if req.headers.get("if-none-match") == etag:
        return Response(304, headers=[("etag", etag)])
    req.response_headers = [*(req.response_headers or []), ("etag", etag)]
    return data


AGENT = "/v1/edge-agents/{id}"

ROUTES = [
    Route(
        "POST",
        "/v1/edge-agents/enrollments",
        create_enrollment,
        "Make a single-use, expiring enrollment token for an edge agent (shown once)",
        "telemetry",
        auth="any",
        body=NewEnrollment,
        response=Enrollment,
        status=201,
        permission="edge_agents.manage",
        scope=scopes.body_or_key,
        # These three answer with a secret (a token, a credential): never stored for a replay.
        idempotency="none",
    ),
    Route(
        "POST",
        "/v1/edge-agents/enroll",
        enroll,
        "An edge agent trades its enrollment token for its credential (no other auth;"
        " rate limited per client address)",
        "telemetry",
        auth="none",
        body=Enroll,
        response=Enrolled,
        status=201,
        errors=(401,),
        idempotency="none",
    ),
    Route(
        "GET",
        "/v1/edge-agents",
        list_agents,
        "The organization's edge agents, newest first, with status, version and last seen",
        "telemetry",
        auth="any",
        response=list[EdgeAgent],
        params=(
            *TIME_CURSOR_PARAMS,
            Param("organization_id", "the organization (signed-in users; an API key has its own)"),
        ),
        permission="telemetry.read",
        scope=scopes.caller_organization,
    ),
    Route(
        "GET",
        "/v1/edge-agents/policy",
        policy,
        "The calling edge agent's policy, with an ETag (If-None-Match: 304 when unchanged)",
        "telemetry",
        auth="any",
        response=TelemetryPolicy,
        permission="edge_agents.policy",
        scope=scopes.edge_agent_organization,
    ),
    Route(
        "POST",
        AGENT + "/rotate",
        rotate,
        "A new credential for the agent; the old one keeps working for overlap_seconds",
        "telemetry",
        auth="any",
        body=AgentRotate,
        response=Enrolled,
        permission="edge_agents.manage",
        scope=scopes.edge_agent,
        errors=(409,),
        idempotency="none",
    ),
    Route(
        "POST",
        AGENT + "/disable",
        disable,
        "Disable the agent: its credential is revoked and nothing it sends is taken",
        "telemetry",
        auth="any",
        response=EdgeAgent,
        permission="edge_agents.manage",
        scope=scopes.edge_agent,
        errors=(409,),
    ),
]
