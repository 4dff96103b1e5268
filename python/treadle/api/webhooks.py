"""Webhook endpoints, their deliveries, redrives and test sends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import (
    CURSOR_PARAMS,
    NO_NUL,
    TIME_CURSOR_PARAMS,
    actor,
    cursor_of,
    limit_of,
    path_id,
    statuses_param,
    time_cursor,
    time_page,
)
from treadle.api.events import MAX_TOPICS, ONE_TOPIC
from treadle.services.webhook_urls import MAX_URL_CHARS
from treadle.web.envelope import CursorPage
from treadle.web.request import Request
from treadle.web.routing import Param, Route

Url = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=MAX_URL_CHARS,
        pattern=r"^https?://[\x21-\x7e]+(?!\n)$",
        description="an http(s) URL with a public address (ASCII: international names as xn--)",
    ),
]
Topic = Annotated[str, msgspec.Meta(pattern=f"^{ONE_TOPIC}$")]
Topics = Annotated[
    list[Topic],
    msgspec.Meta(
        min_length=1,
        max_length=MAX_TOPICS,
        description="topics (job.completed), prefixes ending in .* (job.*), or *",
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=1000, pattern=NO_NUL)]
Overlap = Annotated[int, msgspec.Meta(ge=0, le=7 * 86400)]
DELIVERY_STATUSES = ("pending", "sending", "succeeded", "dead")


class NewWebhook(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Url
    topics: Topics = msgspec.field(default_factory=lambda: ["*"])
    description: Description = ""
    enabled: bool = True
    # Deliver in event order, one in flight at a time (a failing delivery holds the rest).
    ordered: bool = False
    # Required for a signed-in user; an API key acts in its own organization.
    organization_id: UUID | None = None


class WebhookPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Url | None = None
    topics: Topics | None = None
    description: Description | None = None
    enabled: bool | None = None
    ordered: bool | None = None


class SecretRotate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # How long deliveries are signed with the old secret too (0: it stops at once).
    overlap_seconds: Overlap = 86400


class Webhook(msgspec.Struct):
    id: UUID
    organization_id: UUID
    url: str
    description: str
    topics: list[str]
    enabled: bool
    ordered: bool
    # Why it is disabled (by a user, a 410 Gone, or failing for too long), if it is.
    disabled_reason: str | None
    # Since when every delivery has failed (None while the last one succeeded).
    failing_since: datetime | None
    # Until when deliveries are signed with the secret a rotation replaced too.
    previous_until: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(Webhook):
    # Shown once: verify each delivery's webhook-signature with it (Standard Webhooks).
    secret: str


class Delivery(msgspec.Struct):
    id: UUID
    endpoint_id: UUID
    organization_id: UUID
    # The event's id (as event streams give it); None for a test send.
    event_id: str | None
    topic: str
    status: str
    attempts: int
    # The next attempt (pending), or until when the current one is leased (sending).
    next_attempt_at: datetime
    created_at: datetime
    last_attempt_at: datetime | None
    finished_at: datetime | None
    # The last attempt's answer: its status, the first 1,024 bytes of its body, its time.
    response_status: int | None
    response_body: str | None
    latency_ms: float | None
    last_error: str | None
    redrives: int


async def create(req: Request) -> Any:
    body: NewWebhook = req.data
    fields = msgspec.structs.asdict(body)
    fields.pop("organization_id")
    return await req.app.webhooks.create(actor(req), req.scope.organization_id, fields)


async def list_webhooks(req: Request) -> Any:
    limit = limit_of(req)
    rows = await req.app.webhooks.in_org(req.scope.organization_id, limit, time_cursor(req))
    return time_page(rows, limit)


async def get(req: Request) -> Any:
    return await req.app.webhooks.get(path_id(req))


async def update(req: Request) -> Any:
    body: WebhookPatch = req.data
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    return await req.app.webhooks.update(actor(req), path_id(req), changes)


async def delete(req: Request) -> Any:
    return await req.app.webhooks.delete(actor(req), path_id(req))


async def rotate(req: Request) -> Any:
    body: SecretRotate = req.data
    return await req.app.webhooks.rotate(actor(req), path_id(req), body.overlap_seconds)


async def send_test(req: Request) -> Any:
    return await req.app.webhooks.send_test(actor(req), path_id(req))


async def deliveries(req: Request) -> Any:
    limit, before = cursor_of(req)
    rows = await req.app.webhooks.deliveries(
        path_id(req), limit, before, statuses_param(req, DELIVERY_STATUSES)
    )
    return CursorPage(rows, limit, str(rows[-1]["seq"]) if len(rows) == limit else None)


async def redrive(req: Request) -> Any:
    delivery = await req.app.webhooks.delivery(path_id(req), path_id(req, "delivery_id"))
    return await req.app.webhooks.redrive(actor(req), delivery["id"])


WEBHOOK = "/v1/webhooks/{id}"


def _route(method: str, path: str, handler: Any, summary: str, **kw: Any) -> Route:
    return Route(method, path, handler, summary, "webhooks", auth="any", **kw)


ROUTES = [
    _route(
        "POST",
        "/v1/webhooks",
        create,
        "Add a webhook endpoint; its signing secret is in the answer, once",
        body=NewWebhook,
        response=WebhookWithSecret,
        status=201,
        permission="webhooks.manage",
        scope=scopes.body_or_key,
        errors=(409,),
        # The answer holds the secret: never stored for a replay.
        idempotency="none",
    ),
    _route(
        "GET",
        "/v1/webhooks",
        list_webhooks,
        "The organization's webhook endpoints, newest first",
        response=list[Webhook],
        params=(
            *TIME_CURSOR_PARAMS,
            Param("organization_id", "the organization (signed-in users; an API key has its own)"),
        ),
        permission="webhooks.read",
        scope=scopes.caller_organization,
    ),
    _route(
        "GET",
        WEBHOOK,
        get,
        "A webhook endpoint",
        response=Webhook,
        permission="webhooks.read",
        scope=scopes.webhook,
    ),
    _route(
        "PATCH",
        WEBHOOK,
        update,
        "Change an endpoint's URL, topics, description, ordering, or enable/disable it"
        " (disabling gives up on what it had still to receive; retry those once enabled)",
        body=WebhookPatch,
        response=Webhook,
        permission="webhooks.manage",
        scope=scopes.webhook,
    ),
    _route(
        "DELETE",
        WEBHOOK,
        delete,
        "Delete an endpoint and its deliveries (the answer is the endpoint as it was)",
        response=Webhook,
        permission="webhooks.manage",
        scope=scopes.webhook,
    ),
    _route(
        "POST",
        WEBHOOK + "/rotate",
        rotate,
        "A new signing secret (shown once); the old one still signs for overlap_seconds",
        body=SecretRotate,
        response=WebhookWithSecret,
        permission="webhooks.manage",
        scope=scopes.webhook,
        idempotency="none",
    ),
    _route(
        "POST",
        WEBHOOK + "/test",
        send_test,
        "Send the endpoint a webhook.test event (whatever its topics)",
        response=Delivery,
        status=202,
        permission="webhooks.manage",
        scope=scopes.webhook,
        errors=(409,),
    ),
    _route(
        "GET",
        WEBHOOK + "/deliveries",
        deliveries,
        "The endpoint's deliveries, newest first, with each one's last answer",
        response=list[Delivery],
        params=(
            *CURSOR_PARAMS,
            Param("status", "only these statuses, comma-separated: " + ",".join(DELIVERY_STATUSES)),
        ),
        permission="webhooks.read",
        scope=scopes.webhook,
    ),
    _route(
        "POST",
        WEBHOOK + "/deliveries/{delivery_id}/retry",
        redrive,
        "Send a dead delivery again, with the whole retry schedule ahead of it",
        response=Delivery,
        status=202,
        permission="webhooks.manage",
        scope=scopes.webhook,
        errors=(409,),
    ),
]
