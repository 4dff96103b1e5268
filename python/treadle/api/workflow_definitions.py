"""Workflow definitions: named DAGs of typed nodes, versioned on every post of a name.

The body (JSON, YAML or TOML) is decoded into the node types below in one pass, which
refuses wrong field types and unknown fields with the path of the field; what needs the
whole graph (cycles, edges, references to upstream outputs, job types, child definitions)
is checked by ``treadle.services.workflow_definitions`` before anything is stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
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
from treadle.api.jobs import LeaseSeconds, TypeName
from treadle.web.request import Request
from treadle.web.routing import Param, Route

Name = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}(?!\n)$")]
NodeId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,62}(?!\n)$")]
Outcome = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_]{0,31}(?!\n)$")]
# A reference into the run's data: input.<path>, nodes.<id>.output.<path>, item.<path>.
RefPath = Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=SINGLE_LINE)]
Seconds = Annotated[int, msgspec.Meta(ge=1, le=366 * 86400)]
# A template: any JSON value, in which an object {"$ref": "<path>"} stands for the value
# the path names when the node runs.
Template = Any
# The hard bound on nodes, whatever the settings say (they set a lower one): a body past it
# is refused while it is decoded.
MAX_NODES = 1000


class Edge(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """An upstream node and, for a node that branches, the outcome that leads here."""

    node: NodeId
    when: Outcome | None = None


After = Annotated[list[NodeId | Edge], msgspec.Meta(max_length=64)]


class Test(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A comparison (``field``, ``op``, ``value``), or ``all`` / ``any`` / ``not`` of tests."""

    field: RefPath | None = None
    op: Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "exists", "missing"] | None = (
        None
    )
    value: Any = None
    all: Annotated[list[Test], msgspec.Meta(min_length=1, max_length=20)] | None = None
    any: Annotated[list[Test], msgspec.Meta(min_length=1, max_length=20)] | None = None
    not_: Test | None = msgspec.field(default=None, name="not")


class Case(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    outcome: Outcome
    when: Test


class Approvers(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Who may decide: named users, members of teams, holders of an organization role."""

    users: Annotated[list[UUID], msgspec.Meta(max_length=100)] = []
    teams: Annotated[list[UUID], msgspec.Meta(max_length=20)] = []
    roles: Annotated[
        list[Literal["owner", "admin", "member", "viewer"]], msgspec.Meta(max_length=4)
    ] = []


Description = Annotated[str, msgspec.Meta(max_length=1000, pattern=SINGLE_LINE)]


class Node(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    id: NodeId
    after: After = []
    description: Description = ""


class JobNode(Node, tag="job", forbid_unknown_fields=True, kw_only=True):
    """Enqueue a job of ``job_type`` with ``input`` built from the run's data; wait for it."""

    job_type: TypeName
    input: Template = {}
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=25)] | None = None
    lease_seconds: LeaseSeconds | None = None


class DelayNode(Node, tag="delay", forbid_unknown_fields=True, kw_only=True):
    """A durable timer."""

    seconds: Seconds


class ApprovalNode(Node, tag="approval", forbid_unknown_fields=True, kw_only=True):
    """A human gate: ``required`` approvals from ``approvers``; ``expires_in_seconds``
    later it closes with ``on_expiry``. Outcomes: approved, rejected, expired."""

    approvers: Approvers
    required: Annotated[int, msgspec.Meta(ge=1, le=100)] = 1
    allow_submitter: bool = False
    expires_in_seconds: Seconds | None = None
    on_expiry: Literal["approved", "rejected", "expired"] = "expired"


class SignalNode(Node, tag="signal", forbid_unknown_fields=True, kw_only=True):
    """Wait for the signal ``signal`` (its payload is the output). Outcomes: received, and
    timed_out when ``timeout_seconds`` pass first."""

    signal: Name
    timeout_seconds: Seconds | None = None


class ConditionNode(Node, tag="condition", forbid_unknown_fields=True, kw_only=True):
    """The outcome of the first case whose test holds, else ``default``."""

    cases: Annotated[list[Case], msgspec.Meta(min_length=1, max_length=20)]
    default: Outcome = "default"


class MapNode(Node, tag="map", forbid_unknown_fields=True, kw_only=True):
    """A job of ``job_type`` per item of the list at ``over`` (``item`` in the input
    template is the item), at most ``concurrency`` at once; the output is their results."""

    over: RefPath
    job_type: TypeName
    input: Template = msgspec.field(default_factory=lambda: {"$ref": "item"})
    concurrency: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=25)] | None = None


class WorkflowNode(Node, tag="workflow", forbid_unknown_fields=True, kw_only=True):
    """Start a run of another definition (its newest version now, or ``version``) and
    wait for it; its output is the child run's."""

    definition: Name
    version: Annotated[int, msgspec.Meta(ge=1)] | None = None
    input: Template = {}


AnyNode = JobNode | DelayNode | ApprovalNode | SignalNode | ConditionNode | MapNode | WorkflowNode


class NewDefinition(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    nodes: Annotated[list[AnyNode], msgspec.Meta(min_length=1, max_length=MAX_NODES)]
    description: Description = ""
    # Required for a signed-in user; an API key defines in its own organization.
    organization_id: UUID | None = None


class Definition(msgspec.Struct):
    id: UUID
    organization_id: UUID
    name: str
    version: int
    description: str
    nodes: list[dict[str, Any]]
    node_count: int
    created_by: str
    created_at: datetime


async def create(req: Request) -> Any:
    body: NewDefinition = req.data
    return await req.app.workflow_definitions.create(
        actor(req), req.scope.organization_id, body.name, body.description, body.nodes
    )


async def list_definitions(req: Request) -> Any:
    limit = limit_of(req)
    rows = await req.app.workflow_definitions.in_org(
        req.scope.organization_id, limit, time_cursor(req), req.query_value("name") or None
    )
    return time_page(rows, limit)


async def get(req: Request) -> Any:
    return await req.app.workflow_definitions.get(path_id(req))


ROUTES = [
    Route(
        "POST",
        "/v1/workflow-definitions",
        create,
        "Define a workflow (JSON, YAML or TOML); an existing name gets its next version",
        "workflows",
        auth="any",
        body=NewDefinition,
        response=Definition,
        status=201,
        idempotency="optional",
        permission="workflows.manage",
        scope=scopes.body_or_key,
    ),
    Route(
        "GET",
        "/v1/workflow-definitions",
        list_definitions,
        "Workflow definitions of the organization (every version), newest first",
        "workflows",
        auth="any",
        response=list[Definition],
        params=(
            *TIME_CURSOR_PARAMS,
            Param("name", "only the versions of this name"),
            Param("organization_id", "the organization (signed-in users; an API key has its own)"),
        ),
        permission="workflows.read",
        scope=scopes.caller_organization,
    ),
    Route(
        "GET",
        "/v1/workflow-definitions/{id}",
        get,
        "One version of a workflow definition",
        "workflows",
        auth="any",
        response=Definition,
        permission="workflows.read",
        scope=scopes.workflow_definition,
    ),
]
