"""Jobs: submission and management by API consumers, and the protocol external workers
speak (claim, heartbeat, complete, fail)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import (
    NO_NUL,
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
)
from treadle.services.api_keys import ANY_ORGANIZATION
from treadle.services.authz import Scope
from treadle.store.jobs import STATUSES
from treadle.web.request import Request
from treadle.web.routing import Param, Route

TypeName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}(?!\n)$")]
Metric = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}(?!\n)$")]
LeaseSeconds = Annotated[int, msgspec.Meta(ge=1, le=3600)]
# What the claim handed this attempt; heartbeat, complete and fail present it.
ARTIFACT_URL = r"^(https?|s3|gs)://[^\s]+(?!\n)$"
LeaseToken = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,128}(?!\n)$")]
Labels = Annotated[
    dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=SINGLE_LINE)],
        Annotated[str, msgspec.Meta(max_length=256, pattern=SINGLE_LINE)],
    ],
    msgspec.Meta(max_length=50),
]


class BatchJob(msgspec.Struct, forbid_unknown_fields=True):
    """A job of a batch (``POST /v1/jobs/batch``: the organization is the batch's)."""

    type: TypeName
    input: dict[str, Any] = {}
    team_id: UUID | None = None
    priority: Annotated[int, msgspec.Meta(ge=-100, le=100)] = 0
    # How much of the type's priced unit the job is expected to use: the estimate's base.
    estimated_units: Annotated[float, msgspec.Meta(ge=0, le=1e12)] = 1.0
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=25)] | None = None
    lease_seconds: LeaseSeconds | None = None
    labels: Labels = {}


class NewJob(BatchJob, forbid_unknown_fields=True):
    # Required for a signed-in user; an API key submits to its own organization.
    organization_id: UUID | None = None


class Claim(msgspec.Struct, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 1
    types: Annotated[list[TypeName], msgspec.Meta(min_length=1, max_length=50)] | None = None
    lease_seconds: LeaseSeconds | None = None


class Heartbeat(msgspec.Struct, forbid_unknown_fields=True):
    lease_token: LeaseToken
    lease_seconds: LeaseSeconds | None = None


class UsageItem(msgspec.Struct, forbid_unknown_fields=True):
    metric: Metric
    quantity: Annotated[float, msgspec.Meta(ge=0, le=1e15)]


class Completion(msgspec.Struct, forbid_unknown_fields=True):
    lease_token: LeaseToken
    result: Any = None
    usage: Annotated[list[UsageItem], msgspec.Meta(max_length=100)] = []
    artifact_url: Annotated[str, msgspec.Meta(max_length=2048, pattern=ARTIFACT_URL)] | None = None


class Failure(msgspec.Struct, forbid_unknown_fields=True):
    lease_token: LeaseToken
    error_code: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.]{0,63}(?!\n)$")]
    error_message: Annotated[str, msgspec.Meta(max_length=4000, pattern=NO_NUL)] = ""
    # False: the failure will not go away by retrying, so the job is dead at once.
    retryable: bool = True


class Pricing(msgspec.Struct):
    base_cost: float
    unit_cost: float
    unit: str


class Job(msgspec.Struct):
    id: UUID
    organization_id: UUID
    team_id: UUID | None
    type: str
    status: str
    priority: int
    input: dict[str, Any]
    labels: dict[str, str]
    estimated_units: float
    pricing: Pricing
    cost_estimate: float
    cost: float | None
    attempts: int
    max_attempts: int
    lease_seconds: int
    next_attempt_at: datetime | None
    lease_expires_at: datetime | None
    worker: str | None
    result: Any
    artifact_url: str | None
    error_code: str | None
    error_message: str | None
    submitted_by: str
    api_key_id: UUID | None
    # The workflow run and node this job executes, if any, and for a map node the index
    # of the item.
    workflow_run_id: UUID | None
    workflow_node: str | None
    workflow_item: int | None
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    canceled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ClaimedJob(Job):
    # Present it to heartbeat, complete and fail; only this claim's answer carries it.
    lease_token: str


class UsageRecord(msgspec.Struct):
    id: int
    organization_id: UUID
    team_id: UUID | None
    principal_id: str | None
    api_key_id: UUID | None
    job_id: UUID | None
    job_type: str | None
    metric: str
    quantity: float
    cost: float
    recorded_at: datetime


class JobUsage(msgspec.Struct):
    job_id: UUID
    cost_estimate: float
    cost: float | None
    records: list[UsageRecord]


async def worker_job(req: Request) -> Scope:
    """A worker acting on a job it leased: a cross-organization worker is checked in its
    own organization (the lease, checked next, ties it to the job)."""
    if ANY_ORGANIZATION in req.principal.scopes:
        org_id = req.principal.organization_id
        return Scope(org_id, "organization", str(org_id))
    return await scopes.job(req)


async def submit(req: Request) -> Any:
    body: NewJob = req.data
    fields = msgspec.structs.asdict(body)
    del fields["organization_id"]
    job, existed = await req.app.jobs.submit(
        actor(req), req.scope.organization_id, fields, req.idempotency
    )
    if existed:
        req.response_headers.append(("idempotent-replayed", "true"))
    return job


async def list_jobs(req: Request) -> Any:
    limit = limit_of(req)
    statuses = statuses_param(req, STATUSES)
    rows = await req.app.jobs.in_org(
        req.scope.organization_id,
        limit,
        before=time_cursor(req),
        statuses=statuses,
        job_type=req.query_value("type") or None,
        created_after=time_param(req, "since"),
        created_before=time_param(req, "until"),
    )
    return time_page(rows, limit)


async def get(req: Request) -> Any:
    return await req.app.jobs.get(path_id(req))


async def cancel(req: Request) -> Any:
    return await req.app.jobs.cancel(actor(req), path_id(req))


async def retry(req: Request) -> Any:
    return await req.app.jobs.retry(actor(req), path_id(req))


async def usage(req: Request) -> Any:
    return await req.app.jobs.usage(path_id(req))


def worker_of(req: Request) -> tuple[str, UUID | None]:
    """The worker's name, and the one organization whose jobs it may touch (None: every
    organization, for a key with that scope)."""
    principal = req.principal
    everywhere = ANY_ORGANIZATION in principal.scopes
    return principal.subject, None if everywhere else req.scope.organization_id


async def claim(req: Request) -> Any:
    body: Claim = req.data
    worker, org_id = worker_of(req)
    return await req.app.jobs.claim(
        worker,
        body.limit,
        org_id,
        body.types,
        body.lease_seconds,
    )


async def heartbeat(req: Request) -> Any:
    body: Heartbeat = req.data
    return await req.app.jobs.heartbeat(
        req.principal.subject, path_id(req), body.lease_token, body.lease_seconds
    )


async def complete(req: Request) -> Any:
    body: Completion = req.data
    return await req.app.jobs.complete(
        req.principal.subject,
        path_id(req),
        body.lease_token,
        body.result,
        [msgspec.structs.asdict(u) for u in body.usage],
        body.artifact_url,
    )


async def fail(req: Request) -> Any:
    body: Failure = req.data
    return await req.app.jobs.fail(
        req.principal.subject,
        path_id(req),
        body.lease_token,
        body.error_code,
        body.error_message,
        body.retryable,
    )


JOB = "/v1/jobs/{id}"
_ONE_STATUS = "|".join(STATUSES)
LIST_FILTERS = (
    *TIME_CURSOR_PARAMS,
    Param(
        "status",
        f"only these statuses, comma separated: {', '.join(STATUSES)}",
        {"type": "string", "pattern": f"^({_ONE_STATUS})(,({_ONE_STATUS}))*$"},
    ),
    Param("type", "only this job type"),
    *TIME_PARAMS,
    Param("organization_id", "the organization (signed-in users; an API key has its own)"),
)


def _job_route(method: str, suffix: str, handler: Any, summary: str, **kw: Any) -> Route:
    return Route(method, JOB + suffix, handler, summary, "jobs", auth="any", response=Job, **kw)


ROUTES = [
    Route(
        "POST",
        "/v1/jobs",
        submit,
        "Submit a job (Idempotency-Key required); answers with its cost estimate",
        "jobs",
        auth="any",
        body=NewJob,
        response=Job,
        status=201,
        idempotency="required",
        permission="jobs.submit",
        scope=scopes.body_or_key,
    ),
    Route(
        "GET",
        "/v1/jobs",
        list_jobs,
        "Jobs of the organization, newest first",
        "jobs",
        auth="any",
        response=list[Job],
        params=LIST_FILTERS,
        permission="jobs.read",
        scope=scopes.caller_organization,
    ),
    Route(
        "POST",
        "/v1/jobs/claim",
        claim,
        "Workers: lease up to `limit` ready jobs, fairly across organizations",
        "jobs",
        auth="any",
        body=Claim,
        response=list[ClaimedJob],
        # The answer carries lease tokens, which are kept only as keyed hashes: it is never
        # stored for a replay (a retried claim leases other jobs; the reaper frees these).
        idempotency="none",
        permission="jobs:work",
        scope=scopes.caller_organization,
    ),
    _job_route("GET", "", get, "One job", permission="jobs.read", scope=scopes.job),
    _job_route(
        "POST",
        "/cancel",
        cancel,
        "Cancel a queued or running job",
        permission="jobs.manage",
        scope=scopes.job,
        errors=(409,),
    ),
    _job_route(
        "POST",
        "/retry",
        retry,
        "Queue a dead or canceled job again",
        permission="jobs.manage",
        scope=scopes.job,
        errors=(409,),
    ),
    Route(
        "GET",
        JOB + "/usage",
        usage,
        "What the job used and cost",
        "jobs",
        auth="any",
        response=JobUsage,
        permission="jobs.read",
        scope=scopes.job,
    ),
    _job_route(
        "POST",
        "/heartbeat",
        heartbeat,
        "Workers: extend the lease on a job you hold",
        body=Heartbeat,
        permission="jobs:work",
        scope=worker_job,
        errors=(409,),
    ),
    _job_route(
        "POST",
        "/complete",
        complete,
        "Workers: finish a job with its result and usage",
        body=Completion,
        permission="jobs:work",
        scope=worker_job,
        errors=(409,),
    ),
    _job_route(
        "POST",
        "/fail",
        fail,
        "Workers: report a failed attempt (retried with backoff until max_attempts, then dead)",
        body=Failure,
        permission="jobs:work",
        scope=worker_job,
        errors=(409,),
    ),
]
