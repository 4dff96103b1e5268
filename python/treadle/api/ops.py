"""Operations views: what failed, the queues, and the health of each component.

One route serves an organization's admins (``?organization_id=``, or an API key's own)
and platform admins, who may leave the organization out to see every one: for them the
scope resolvers answer "platform-wide" (None), which the kernel grants platform admins
only; everyone else goes through the kernel's organization check like any route.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from treadle.api.common import (
    LIST_PARAMS,
    PAGE_PARAMS,
    actor,
    epoch_micros,
    from_epoch_micros,
    limit_of,
    page_of,
    uuid_param,
)
from treadle.services.authz import Scope
from treadle.services.ops import Reach
from treadle.services.principal import Principal
from treadle.store.ops import KINDS
from treadle.web.envelope import CursorPage, Page
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route


class Failure(msgspec.Struct):
    kind: str
    id: str
    # None for mail, which belongs to no organization.
    organization_id: UUID | None
    failed_at: datetime
    error_code: str | None
    error_message: str | None
    # None for events: the relay counts no attempts.
    attempts: int | None
    # The job's type, the delivery's or event's topic, the mail's subject.
    summary: str
    # POST here to retry it.
    retry_url: str


class Retried(msgspec.Struct):
    kind: str
    id: str
    organization_id: UUID | None
    # What it is now: queued (job), pending (delivery, event, mail).
    status: str
    # The job, delivery, outbox event or mail (without body or token) as it is now.
    resource: dict[str, Any]


class Queue(msgspec.Struct):
    organization_id: UUID
    type: str
    queued: int
    # Of the queued, those whose backoff is over: waiting for a worker.
    ready: int
    running: int
    oldest_queued_seconds: float | None
    # Attempts leased in the last 60 seconds (every claim, retries included).
    claims_last_minute: int


class Probe(msgspec.Struct):
    status: str
    latency_ms: float | None
    error: str | None


class RelayHealth(msgspec.Struct):
    status: str
    pending: int | None
    oldest_age_seconds: float | None
    error: str | None


class WebhookHealth(msgspec.Struct):
    status: str
    # Waiting for an attempt or being sent.
    pending: int | None
    # How long the oldest due delivery has waited past its time.
    overdue_seconds: float | None
    dead: int | None
    error: str | None


class MailerHealth(msgspec.Struct):
    status: str
    pending: int | None
    oldest_age_seconds: float | None
    overdue_seconds: float | None
    failed: int | None
    error: str | None


class Components(msgspec.Struct):
    postgres: Probe
    redis: Probe
    relay: RelayHealth
    webhooks: WebhookHealth
    # Platform admins only: mail belongs to no organization.
    mailer: MailerHealth | None


class Health(msgspec.Struct):
    # The worst of the components': ok, degraded or down.
    status: str
    organization_id: UUID | None
    checked_at: datetime
    components: Components


# -- who sees what ------------------------------------------------------------------------


def _platform(principal: Principal) -> bool:
    # An API key is never a platform admin, whoever made it.
    return principal.kind == "user" and principal.is_platform_admin


async def reach_scope(req: Request) -> Scope | None:
    """The organization named (or an API key's own); platform-wide (None) for a platform
    admin, who may name any organization or none to see every one."""
    principal = req.principal
    org_id = uuid_param(req, "organization_id")
    if _platform(principal):
        if org_id is not None:
            await req.app.authz.ensure(org_id)  # 404 for an organization that is not
        return None
    org_id = org_id or principal.organization_id
    if org_id is None:
        raise ApiError.validation(
            "organization_id query parameter is required (platform admins may leave it"
            " out to see every organization)",
            "query.organization_id",
        )
    return Scope(org_id, "organization", str(org_id))


def reach(req: Request) -> Reach:
    if req.scope is None:
        return Reach(uuid_param(req, "organization_id"), True)
    return Reach(req.scope.organization_id, False)


async def failure_scope(req: Request) -> Scope | None:
    """The organization of the failure the path names; platform-wide for a platform
    admin. Mail has no organization: only platform admins see it (404 for others)."""
    if _platform(req.principal):
        return None  # the handler finds the failure (or answers 404)
    kind, ident = _target(req)
    org_id = await req.app.ops.owner(kind, ident)
    if org_id is None:
        raise ApiError.not_found(f"no {kind} with id {ident}")
    return Scope(org_id, kind, str(ident))


# -- failures -----------------------------------------------------------------------------

_ONE_KIND = "|".join(KINDS)
# The last row's failure time (microseconds since the epoch), kind and sort id: a UUID's
# 32 hex digits, or an outbox id padded to 20 digits. Empty is the first page.
_CURSOR = re.compile(
    r"^(([0-9]{1,17})\.(job|webhook_delivery)\.([0-9a-f]{32})"
    r"|([0-9]{1,17})\.(event|mail)\.([0-9]{20}))?(?!\n)$"
)


def _kinds(req: Request) -> list[str]:
    raw = req.query_value("kind")
    if not raw:
        return list(KINDS)
    wanted = raw.split(",")
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise ApiError.validation(
            f"unknown kind {unknown[0][:64]!r}; use one or more of {', '.join(KINDS)},"
            " comma separated",
            "query.kind",
        )
    return [k for k in KINDS if k in wanted]


def _failure_cursor(req: Request) -> tuple[datetime, str, str] | None:
    raw = req.query_value("cursor")
    if not raw:
        return None
    match = _CURSOR.match(raw)
    try:
        if match is None:
            raise ValueError(raw)
        micros, kind, sort_id = raw.split(".")
        return from_epoch_micros(int(micros)), kind, sort_id
    except (ValueError, OverflowError):
        raise ApiError.validation(
            "cursor must be the next_cursor of a previous page", "query.cursor"
        ) from None


async def failures(req: Request) -> Any:
    seen = reach(req)
    limit, kinds, before = limit_of(req), _kinds(req), _failure_cursor(req)
    rows = await req.app.ops.failures(seen, kinds, limit, before)
    cursor = None
    if len(rows) == limit:
        last = rows[-1]
        cursor = f"{epoch_micros(last['failed_at'])}.{last['kind']}.{last['sort_id']}"
    for row in rows:
        del row["sort_id"]
    return CursorPage(rows, limit, cursor)


def _target(req: Request) -> tuple[str, UUID | int]:
    """The kind and id of the path; either one that cannot exist is not found."""
    kind, raw = req.params["kind"], req.params["id"]
    if kind not in KINDS:
        error = ApiError.not_found(f"no failure kind {kind[:64]!r}; kinds are {', '.join(KINDS)}")
        error.details = {"kinds": list(KINDS)}
        raise error
    try:
        if kind in ("event", "mail"):
            if not re.match(r"^[1-9][0-9]{0,17}(?!\n)$", raw):
                raise ValueError(raw)
            return kind, int(raw)
        return kind, UUID(raw)
    except ValueError:
        raise ApiError.not_found(f"no {kind} with id {raw[:64]!r}") from None


async def retry(req: Request) -> Any:
    kind, ident = _target(req)
    app = req.app
    # The scope resolver read the failure's organization already, except for platform admins.
    org_id = req.scope.organization_id if req.scope else await app.ops.owner(kind, ident)
    who = actor(req)
    if kind == "job":
        resource = await app.ops.retry_job(who, ident, app.jobs)
    elif kind == "webhook_delivery":
        resource = await app.webhooks.redrive(who, ident)
    elif kind == "event":
        resource = await app.ops.retry_event(who, ident)
    else:
        resource = await app.ops.retry_mail(who, ident)
        app.mailer.wake()  # after the commit
    return {
        "kind": kind,
        "id": str(ident),
        "organization_id": org_id,
        "status": resource["status"],
        "resource": resource,
    }


# -- queues and health --------------------------------------------------------------------


async def queues(req: Request) -> Any:
    seen = reach(req)
    limit, offset = page_of(req)
    rows, total = await req.app.ops.queues(seen, limit, offset)
    return Page(rows, limit, offset, total)


async def health(req: Request) -> Any:
    return await req.app.ops.health(reach(req), req.app.redis)


ORGANIZATION = Param(
    "organization_id",
    "the organization (an API key acts in its own; platform admins may leave it out to"
    " see every organization)",
    {"type": "string", "format": "uuid"},
)
FAILURE_PARAMS = (
    LIST_PARAMS[0],
    Param(
        "cursor",
        "next_cursor of the previous page",
        {"type": "string", "pattern": _CURSOR.pattern},
    ),
    Param(
        "kind",
        f"only these kinds, comma separated: {', '.join(KINDS)}",
        {"type": "string", "pattern": f"^({_ONE_KIND})(,({_ONE_KIND}))*$"},
    ),
    ORGANIZATION,
)

ROUTES = [
    Route(
        "GET",
        "/v1/ops/failures",
        failures,
        "What failed for good: dead jobs and webhook deliveries, events the relay has not"
        " moved for a minute, mail that could not be sent; newest first",
        "ops",
        auth="any",
        response=list[Failure],
        params=FAILURE_PARAMS,
        permission="ops.read",
        scope=reach_scope,
        errors=(403, 404),
    ),
    Route(
        "POST",
        "/v1/ops/failures/{kind}/{id}/retry",
        retry,
        "Retry a failure: queue the job again, redrive the delivery, wake the relay,"
        " send the mail again",
        "ops",
        auth="any",
        response=Retried,
        permission="ops.retry",
        scope=failure_scope,
        errors=(403, 404, 409),
    ),
    Route(
        "GET",
        "/v1/ops/queues",
        queues,
        "Job queues per organization and type: depth, oldest wait, claims in the last minute",
        "ops",
        auth="any",
        response=list[Queue],
        params=(*PAGE_PARAMS, ORGANIZATION),
        permission="ops.read",
        scope=reach_scope,
        errors=(403, 404),
    ),
    Route(
        "GET",
        "/v1/ops/health",
        health,
        "Each component's status (ok, degraded, down) and backlog; 200 whatever they are",
        "ops",
        auth="any",
        response=Health,
        params=(ORGANIZATION,),
        permission="ops.read",
        scope=reach_scope,
        errors=(403, 404),
    ),
]
