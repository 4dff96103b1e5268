"""API keys of an organization: the raw key is shown once, at creation, rotation or roll."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from treadle import clock
from treadle.api import scopes
from treadle.api.common import PAGE_PARAMS, Name, actor, int_param, page_of, path_id
from treadle.services.api_keys import DEFAULT_GRACE_SECONDS
from treadle.web.envelope import Page
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route

KeyName = Name
# An action the key may take ("jobs.read", "jobs:work") or "*" for all of them.
Scope = Annotated[str, msgspec.Meta(pattern=r"^(\*|[a-z_]+([.:][a-z_]+)*)(?!\n)$", max_length=100)]
PolicyName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,64}(?!\n)$")]


class NewApiKey(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: UUID
    name: KeyName
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=100)]
    environment: Literal["live", "test"] = "live"
    expires_at: datetime | None = None
    rate_limit_policy: PolicyName | None = None


class ApiKeyPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: KeyName | None = None
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1, max_length=100)] | None = None
    expires_at: datetime | None = None
    rate_limit_policy: PolicyName | None = None


class Rotate(msgspec.Struct, forbid_unknown_fields=True):
    grace_seconds: Annotated[int, msgspec.Meta(ge=1, le=30 * 86400)] = DEFAULT_GRACE_SECONDS


class ApiKey(msgspec.Struct):
    id: UUID
    organization_id: UUID
    name: str
    environment: str
    display_prefix: str
    scopes: list[str]
    status: str
    expires_at: datetime | None
    rate_limit_policy: str | None
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None


class IssuedApiKey(ApiKey):
    key: str


class RotatedApiKey(IssuedApiKey):
    previous_key_valid_until: datetime


class DayCount(msgspec.Struct):
    day: date
    requests: int


class RouteCount(msgspec.Struct):
    route: str
    requests: int


class Usage(msgspec.Struct):
    key_id: UUID
    since: date
    total: int
    by_day: list[DayCount]
    by_route: list[RouteCount]


def _future(when: datetime | None, path: str) -> None:
    if when is not None and (when.tzinfo is None or when <= clock.now()):
        raise ApiError.validation("expires_at must be a future time with a UTC offset", path)


async def create(req: Request) -> Any:
    body: NewApiKey = req.data
    _future(body.expires_at, "$.expires_at")
    fields = msgspec.structs.asdict(body)
    del fields["organization_id"]
    fields["scopes"] = sorted(set(body.scopes))
    return await req.app.api_keys.create(actor(req), body.organization_id, fields)


async def list_keys(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.api_keys.in_org(req.scope.organization_id, limit, offset)
    return Page(rows, limit, offset, total)


async def get(req: Request) -> Any:
    return await req.app.api_keys.get(path_id(req))


async def patch(req: Request) -> Any:
    body: ApiKeyPatch = req.data
    _future(body.expires_at, "$.expires_at")
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    if "scopes" in changes:
        changes["scopes"] = sorted(set(changes["scopes"]))
    return await req.app.api_keys.change(actor(req), path_id(req), "update", changes)


async def revoke(req: Request) -> Any:
    return await req.app.api_keys.change(
        actor(req), path_id(req), "revoke", {"revoked_at": clock.now()}
    )


async def disable(req: Request) -> Any:
    return await req.app.api_keys.change(
        actor(req), path_id(req), "disable", {"disabled_at": clock.now()}
    )


async def enable(req: Request) -> Any:
    return await req.app.api_keys.change(actor(req), path_id(req), "enable", {"disabled_at": None})


async def rotate(req: Request) -> Any:
    body: Rotate = req.data
    return await req.app.api_keys.replace_secret(actor(req), path_id(req), body.grace_seconds)


async def roll(req: Request) -> Any:
    return await req.app.api_keys.replace_secret(actor(req), path_id(req), 0)


async def usage(req: Request) -> Any:
    days = int_param(req, "days", 30, 1, 90)
    return await req.app.api_keys.usage(path_id(req), days)


KEY = "/v1/api-keys/{id}"

ROUTES = [
    Route(
        "POST",
        "/v1/api-keys",
        create,
        "Create a key; the raw key is in this answer only",
        "api_keys",
        body=NewApiKey,
        response=IssuedApiKey,
        status=201,
        permission="api_keys.manage",
        scope=scopes.organization_in_body,
        idempotency="none",
    ),
    Route(
        "GET",
        "/v1/api-keys",
        list_keys,
        "Keys of an organization",
        "api_keys",
        response=list[ApiKey],
        params=(Param("organization_id", "the organization", required=True), *PAGE_PARAMS),
        permission="api_keys.manage",
        scope=scopes.organization_in_query,
    ),
    Route(
        "GET",
        KEY,
        get,
        "One key",
        "api_keys",
        response=ApiKey,
        scope=scopes.api_key,
        permission="api_keys.manage",
    ),
    Route(
        "PATCH",
        KEY,
        patch,
        "Change name, scopes, expiry or rate-limit policy",
        "api_keys",
        body=ApiKeyPatch,
        response=ApiKey,
        scope=scopes.api_key,
        permission="api_keys.manage",
        errors=(409,),
    ),
    Route(
        "DELETE",
        KEY,
        revoke,
        "Revoke for good",
        "api_keys",
        response=ApiKey,
        scope=scopes.api_key,
        permission="api_keys.manage",
        errors=(409,),
    ),
    Route(
        "POST",
        KEY + "/disable",
        disable,
        "Stop a key until enabled",
        "api_keys",
        response=ApiKey,
        scope=scopes.api_key,
        permission="api_keys.manage",
        errors=(409,),
    ),
    Route(
        "POST",
        KEY + "/enable",
        enable,
        "Enable a disabled key",
        "api_keys",
        response=ApiKey,
        scope=scopes.api_key,
        permission="api_keys.manage",
        errors=(409,),
    ),
    Route(
        "POST",
        KEY + "/rotate",
        rotate,
        "New secret; the old one works for the grace period (default 24 h)",
        "api_keys",
        body=Rotate,
        response=RotatedApiKey,
        scope=scopes.api_key,
        permission="api_keys.manage",
        idempotency="none",
        errors=(409,),
    ),
    Route(
        "POST",
        KEY + "/roll",
        roll,
        "New secret; the old one dies at once",
        "api_keys",
        response=RotatedApiKey,
        scope=scopes.api_key,
        permission="api_keys.manage",
        idempotency="none",
        errors=(409,),
    ),
    Route(
        "GET",
        KEY + "/usage",
        usage,
        "Requests per day and per route",
        "api_keys",
        response=Usage,
        params=(
            Param(
                "days",
                "how many days back (1-90, default 30)",
                {"type": "integer", "minimum": 1, "maximum": 90},
            ),
        ),
        scope=scopes.api_key,
        permission="api_keys.manage",
    ),
]
