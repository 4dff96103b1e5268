"""The signed-in caller."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from treadle.api import organizations
from treadle.api.api_keys import ApiKey
from treadle.api.auth import User
from treadle.api.common import PAGE_PARAMS, page_of
from treadle.api.organizations import Organization
from treadle.api.teams import Team
from treadle.services.accounts import public_user
from treadle.services.api_keys import public_key
from treadle.web.envelope import Page
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Route


async def me(req: Request) -> Any:
    principal = req.principal
    if principal.kind == "api_key":
        # The record verified for this request: no second read.
        return {**public_key(principal.record), "principal_type": "api_key"}
    user = await req.app.sessions.user(principal.id)
    if user is None:
        raise ApiError.unauthenticated("the account no longer exists")
    return {**public_user(user), "principal_type": "user"}


class MeUser(User, tag_field="principal_type", tag="user"):
    pass


class MeApiKey(ApiKey, tag_field="principal_type", tag="api_key"):
    pass


async def teams(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.teams.mine(req.principal.account, limit, offset)
    return Page(rows, limit, offset, total)


async def permissions(req: Request) -> Any:
    return await req.app.authz.everywhere(req.principal.account)


class MyTeam(Team):
    role: str


class ScopePermissions(msgspec.Struct):
    organization_id: UUID
    resource_type: str
    resource_id: str
    team_id: UUID | None
    role: str
    actions: list[str]


ROUTES = [
    Route(
        "GET",
        "/v1/me",
        me,
        "The signed-in account, or the API key",
        "me",
        auth="any",
        response=MeUser | MeApiKey,
    ),
    Route(
        "GET",
        "/v1/me/organizations",
        organizations.list_mine,
        "Organizations you belong to",
        "me",
        response=list[Organization],
        params=PAGE_PARAMS,
    ),
    Route(
        "GET",
        "/v1/me/teams",
        teams,
        "Teams you belong to",
        "me",
        response=list[MyTeam],
        params=PAGE_PARAMS,
    ),
    Route(
        "GET",
        "/v1/me/permissions",
        permissions,
        "Every action you may take, per organization and team",
        "me",
        response=list[ScopePermissions],
    ),
]
