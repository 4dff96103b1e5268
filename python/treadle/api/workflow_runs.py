"""Workflow runs: started from a definition version, advanced as their nodes' jobs finish."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import (
    SINGLE_LINE,
    TIME_CURSOR_PARAMS,
    TIME_PARAMS,
    actor,
    limit_of,
    path_id,
    statuses_param,
    time_cursor,
    time_page,
    time_param,
    uuid_param,
)
from treadle.api.jobs import Labels
from treadle.api.workflow_definitions import NodeId
from treadle.store import workflow_runs as run_store
from treadle.web.request import Request
from treadle.web.routing import Param, Route

RUN = "/v1/workflow-runs/{id}"
SignalName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}(?!\n)$")]
_ONE_STATUS = "|".join(run_store.STATUSES)
OneLabel = Annotated[
    dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=SINGLE_LINE)],
        Annotated[str, msgspec.Meta(max_length=256, pattern=SINGLE_LINE)],
    ],
    msgspec.Meta(max_length=1),
]
RunStatus = Literal["created", "running", "paused", "succeeded", "failed", "canceled"]


class NewRun(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    definition_id: UUID
    input: dict[str, Any] = {}
    labels: Labels = {}
    # False: the run is created and waits for POST /v1/workflow-runs/{id}/start.
    start: bool = True
    # Required for a signed-in user; an API key runs in its own organization.
    organization_id: UUID | None = None


class Signal(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: SignalName
    # The output of each node it reaches.
    payload: Any = None


class RunFilter(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Which runs a bulk action takes (those whose state allows it, oldest first)."""

    definition_id: UUID | None = None
    status: Annotated[list[RunStatus], msgspec.Meta(min_length=1, max_length=6)] | None = None
    # One label the runs carry, as {"key": "value"}.
    label: OneLabel = {}
    # Required for a signed-in user; an API key acts in its own organization.
    organization_id: UUID | None = None


Comment = Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^[^\x00-\x09\x0b-\x1f\x7f]*$")]


class ApprovalDecision(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A decision on one of the run's approval gates, named by its node."""

    node: NodeId
    decision: Literal["approve", "reject"]
    # Lines of text; kept with the decision and in the gate's output.
    comment: Comment = ""


class BulkResult(msgspec.Struct):
    action: str
    changed: int
    # More runs matched than one call changes (1,000): call again.
    more: bool


class NodeState(msgspec.Struct):
    node: str
    type: str
    status: str
    outcome: str | None
    output: Any
    # A job node's job and its attempts so far.
    job_id: UUID | None
    attempts: int | None
    # A map node: its items, how many were queued and how many have succeeded.
    items: int | None
    dispatched: int | None
    finished: int | None
    # A workflow node's child run.
    child_run_id: UUID | None
    # When a delay, a signal's timeout or an approval's expiry fires.
    fire_at: datetime | None
    # A paused run's timer: the seconds it had left, counted again from resume.
    remaining: float | None
    error_code: str | None
    error_message: str | None
    started_at: datetime | None
    completed_at: datetime | None


class DefinitionRef(msgspec.Struct):
    name: str
    version: int


class WorkflowRun(msgspec.Struct):
    id: UUID
    organization_id: UUID
    definition_id: UUID
    status: str
    input: dict[str, Any]
    output: Any
    labels: dict[str, str]
    error_code: str | None
    error_message: str | None
    submitted_by: str
    api_key_id: UUID | None
    # A child run: the run and its workflow node that started it.
    parent_run_id: UUID | None
    parent_node: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    updated_at: datetime


class WorkflowRunDetail(WorkflowRun):
    definition: DefinitionRef
    nodes: list[NodeState]


async def create(req: Request) -> Any:
    body: NewRun = req.data
    fields = {"input": body.input, "labels": body.labels}
    return await req.app.workflow_runs.create(
        actor(req), req.scope.organization_id, body.definition_id, fields, body.start
    )


async def list_runs(req: Request) -> Any:
    limit = limit_of(req)
    rows = await req.app.workflow_runs.in_org(
        req.scope.organization_id,
        limit,
        before=time_cursor(req),
        statuses=statuses_param(req, run_store.STATUSES),
        definition_id=uuid_param(req, "definition_id"),
        created_after=time_param(req, "since"),
        created_before=time_param(req, "until"),
    )
    return time_page(rows, limit)


async def get(req: Request) -> Any:
    return await req.app.workflow_runs.get(path_id(req))


async def start(req: Request) -> Any:
    return await req.app.workflow_runs.start(actor(req), path_id(req))


async def signal(req: Request) -> Any:
    body: Signal = req.data
    return await req.app.workflow_runs.signal(actor(req), path_id(req), body.name, body.payload)


async def approve(req: Request) -> Any:
    body: ApprovalDecision = req.data
    return await req.app.workflow_runs.approve(
        actor(req), path_id(req), body.node, body.decision, body.comment
    )


def _one(action: str) -> Any:
    async def handler(req: Request) -> Any:
        return await req.app.workflow_runs.act(actor(req), path_id(req), action)

    return handler


def _many(action: str) -> Any:
    async def handler(req: Request) -> Any:
        body: RunFilter = req.data
        filters = {
            "definition_id": body.definition_id,
            "label": next(iter(body.label.items()), None),
            "statuses": body.status,
        }
        return await req.app.workflow_runs.act_many(
            actor(req), req.scope.organization_id, action, filters
        )

    return handler


def _run_route(suffix: str, handler: Any, summary: str, **kw: Any) -> Route:
    return Route(
        "POST",
        RUN + suffix,
        handler,
        summary,
        "workflows",
        auth="any",
        response=WorkflowRunDetail,
        scope=scopes.workflow_run,
        errors=(409,),
        **{"permission": "workflows.run", **kw},
    )


ROUTES = [
    Route(
        "POST",
        "/v1/workflow-runs",
        create,
        "Run a workflow definition version (Idempotency-Key required); started unless"
        " `start` is false",
        "workflows",
        auth="any",
        body=NewRun,
        response=WorkflowRunDetail,
        status=201,
        idempotency="required",
        permission="workflows.run",
        scope=scopes.body_or_key,
    ),
    Route(
        "GET",
        "/v1/workflow-runs",
        list_runs,
        "Workflow runs of the organization, newest first (created from `since`, before `until`)",
        "workflows",
        auth="any",
        response=list[WorkflowRun],
        params=(
            *TIME_CURSOR_PARAMS,
            *TIME_PARAMS,
            Param(
                "status",
                f"only these statuses, comma separated: {', '.join(run_store.STATUSES)}",
                {"type": "string", "pattern": f"^({_ONE_STATUS})(,({_ONE_STATUS}))*$"},
            ),
            Param(
                "definition_id",
                "only runs of this definition version",
                {"type": "string", "format": "uuid"},
            ),
            Param("organization_id", "the organization (signed-in users; an API key has its own)"),
        ),
        permission="workflows.read",
        scope=scopes.caller_organization,
    ),
    Route(
        "GET",
        RUN,
        get,
        "One workflow run with every node's state",
        "workflows",
        auth="any",
        response=WorkflowRunDetail,
        permission="workflows.read",
        scope=scopes.workflow_run,
    ),
    _run_route("/start", start, "Start a run created with `start: false`"),
    _run_route("/cancel", _one("cancel"), "Cancel a run: its queued and running jobs are canceled"),
    _run_route(
        "/pause",
        _one("pause"),
        "Pause a run: nothing new is dispatched, running jobs finish, timers stop with what"
        " they had left, signals are kept; all of it takes effect on resume",
    ),
    _run_route("/resume", _one("resume"), "Resume a paused run"),
    *(
        Route(
            "POST",
            f"/v1/workflow-runs/{action}",
            _many(action),
            f"{action.capitalize()} every run of the organization that matches the filter"
            " and whose state allows it (at most 1,000 a call); answers how many changed",
            "workflows",
            auth="any",
            body=RunFilter,
            response=BulkResult,
            permission="workflows.run",
            scope=scopes.body_or_key,
        )
        for action in ("cancel", "pause", "resume")
    ),
    _run_route(
        "/approve",
        approve,
        "Approve or reject one of the run's open approval gates (signed-in approvers only;"
        " 409 when the gate is not open or you have decided it)",
        body=ApprovalDecision,
        permission="approvals.decide",
    ),
    _run_route(
        "/signal",
        signal,
        "Send a named signal with a payload to the run's nodes waiting for it (409 when none is)",
        body=Signal,
    ),
]
