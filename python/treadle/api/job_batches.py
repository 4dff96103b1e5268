"""Jobs in batches: submit up to 1,000 under one Idempotency-Key, and the worker protocol
for up to 1,000 leased jobs per call (complete, fail, heartbeat), answered per item."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import actor
from treadle.api.jobs import (
    BatchJob,
    Completion,
    Failure,
    Heartbeat,
    Job,
    worker_of,
)
from treadle.web import errors
from treadle.web.bodies import convert
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route

MAX_ITEMS = 1000


class JobBatch(msgspec.Struct, forbid_unknown_fields=True):
    jobs: Annotated[list[BatchJob], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]
    # Required for a signed-in user; an API key submits to its own organization.
    organization_id: UUID | None = None


class QueuedJob(msgspec.Struct):
    """A job of a batch as submitted: the rest is at ``GET /v1/jobs/{id}``."""

    id: UUID
    type: str
    status: str
    priority: int
    team_id: UUID | None
    labels: dict[str, str]
    cost_estimate: float
    queued_at: datetime


class BatchSubmitted(msgspec.Struct):
    jobs: list[QueuedJob]
    count: int
    cost_estimate: float


class CompleteItem(Completion, kw_only=True):
    id: UUID


class FailItem(Failure, kw_only=True):
    id: UUID


class HeartbeatItem(Heartbeat, kw_only=True):
    id: UUID


class Items(msgspec.Struct, forbid_unknown_fields=True):
    """What the kernel decodes of a worker batch: each item is decoded on its own, so that
    one invalid item fails alone."""

    items: Annotated[list[Any], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)]


class ItemError(msgspec.Struct):
    code: str
    message: str
    details: dict[str, Any]


class JobOutcome(msgspec.Struct):
    """One item's answer, at its place in the request: the job as it is now, or the error
    this item alone would have been answered with (``status``)."""

    index: int
    id: UUID | None
    ok: bool
    status: int
    job: Job | None = None
    error: ItemError | None = None


async def submit(req: Request) -> Any:
    body: JobBatch = req.data
    items = [msgspec.structs.asdict(job) for job in body.jobs]
    jobs = await req.app.job_batches.submit(actor(req), req.scope.organization_id, items)
    return {
        "jobs": [{k: job[k] for k in QueuedJob.__struct_fields__} for job in jobs],
        "count": len(jobs),
        "cost_estimate": sum(job["cost_estimate"] for job in jobs),
    }


def _decoded(req: Request, kind: type) -> list[dict[str, Any] | ApiError]:
    decoded: list[dict[str, Any] | ApiError] = []
    for index, item in enumerate(req.data.items):
        try:
            value = convert(item, kind, f"$.items[{index}]")
        except ApiError as exc:
            decoded.append(exc)
            continue
        fields = msgspec.structs.asdict(value)
        if "usage" in fields:
            fields["usage"] = [msgspec.structs.asdict(u) for u in fields["usage"]]
        decoded.append(fields)
    return decoded


def _outcomes(req: Request, outcomes: list[Any]) -> list[dict[str, Any]]:
    answer = []
    for index, (item, outcome) in enumerate(zip(req.data.items, outcomes, strict=True)):
        if isinstance(outcome, ApiError):
            raw_id = item.get("id") if isinstance(item, dict) else None
            answer.append(
                {
                    "index": index,
                    "id": _uuid(raw_id),
                    "ok": False,
                    "status": errors.status(outcome),
                    "job": None,
                    "error": {
                        "code": outcome.code,
                        "message": outcome.message,
                        "details": outcome.details,
                    },
                }
            )
        else:
            answer.append(
                {
                    "index": index,
                    "id": outcome["id"],
                    "ok": True,
                    "status": 200,
                    "job": outcome,
                    "error": None,
                }
            )
    return answer


def _uuid(raw: Any) -> UUID | None:
    try:
        return UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


async def complete(req: Request) -> Any:
    outcomes = await req.app.job_batches.complete(*worker_of(req), _decoded(req, CompleteItem))
    return _outcomes(req, outcomes)


async def fail(req: Request) -> Any:
    outcomes = await req.app.job_batches.fail(*worker_of(req), _decoded(req, FailItem))
    return _outcomes(req, outcomes)


async def heartbeat(req: Request) -> Any:
    outcomes = await req.app.job_batches.heartbeat(*worker_of(req), _decoded(req, HeartbeatItem))
    return _outcomes(req, outcomes)


ORGANIZATION = Param(
    "organization_id", "the organization (signed-in users; an API key has its own)"
)


def _worker_route(path: str, handler: Any, summary: str, item: type) -> Route:
    return Route(
        "POST",
        path,
        handler,
        summary + "; answered per item in request order (an item that fails fails alone)",
        "jobs",
        auth="any",
        body=Items,
        item=item,
        response=list[JobOutcome],
        params=(ORGANIZATION,),
        permission="jobs:work",
        scope=scopes.caller_organization,
        batch=True,
    )


ROUTES = [
    Route(
        "POST",
        "/v1/jobs/batch",
        submit,
        "Submit up to 1,000 jobs under one Idempotency-Key (all or none)",
        "jobs",
        auth="any",
        body=JobBatch,
        response=BatchSubmitted,
        status=201,
        idempotency="required",
        permission="jobs.submit",
        scope=scopes.body_or_key,
        batch=True,
    ),
    _worker_route(
        "/v1/jobs/complete",
        complete,
        "Workers: finish up to 1,000 leased jobs with their results and usage",
        CompleteItem,
    ),
    _worker_route(
        "/v1/jobs/fail",
        fail,
        "Workers: report up to 1,000 failed attempts (retried with backoff, then dead)",
        FailItem,
    ),
    _worker_route(
        "/v1/jobs/heartbeat",
        heartbeat,
        "Workers: extend the leases on up to 1,000 jobs you hold",
        HeartbeatItem,
    ),
]
