"""Teams and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import NO_NUL, PAGE_PARAMS, Name, actor, page_of, path_id
from treadle.web.envelope import Page
from treadle.web.request import Request
from treadle.web.routing import Route

TeamName = Name
Description = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)]
TeamRole = Literal["admin", "member", "viewer"]


class NewTeam(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: UUID
    name: TeamName
    description: Description = ""


class TeamPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: TeamName | None = None
    description: Description | None = None


class NewTeamMember(msgspec.Struct, forbid_unknown_fields=True):
    user_id: UUID
    role: TeamRole = "member"


class Team(msgspec.Struct):
    id: UUID
    organization_id: UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime


class TeamMember(msgspec.Struct):
    team_id: UUID
    user_id: UUID
    email: str
    display_name: str
    role: str
    joined_at: datetime


async def create(req: Request) -> Any:
    body: NewTeam = req.data
    return await req.app.teams.create(
        actor(req), body.organization_id, body.name.strip(), body.description
    )


async def get(req: Request) -> Any:
    return await req.app.teams.get(req.scope.team_id)


async def patch(req: Request) -> Any:
    body: TeamPatch = req.data
    name = body.name.strip() if body.name else None
    return await req.app.teams.update(actor(req), req.scope.team_id, name, body.description)


async def delete(req: Request) -> Any:
    return await req.app.teams.delete(actor(req), req.scope.team_id)


async def members(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.teams.members(req.scope.team_id, limit, offset)
    return Page(rows, limit, offset, total)


async def add_member(req: Request) -> Any:
    body: NewTeamMember = req.data
    return await req.app.teams.add_member(actor(req), req.scope.team_id, body.user_id, body.role)


async def remove_member(req: Request) -> Any:
    user_id = path_id(req, "user_id")
    await req.app.teams.remove_member(actor(req), req.scope.team_id, user_id)
    return {"team_id": req.scope.team_id, "user_id": user_id, "removed": True}


class Removed(msgspec.Struct):
    team_id: UUID
    user_id: UUID
    removed: bool


TEAM = "/v1/teams/{id}"

ROUTES = [
    Route(
        "POST",
        "/v1/teams",
        create,
        "Create a team in an organization",
        "teams",
        body=NewTeam,
        response=Team,
        status=201,
        permission="teams.manage",
        scope=scopes.organization_in_body,
        errors=(409,),
    ),
    Route(
        "GET",
        TEAM,
        get,
        "One team",
        "teams",
        auth="any",
        response=Team,
        permission="teams.read",
        scope=scopes.team,
    ),
    Route(
        "PATCH",
        TEAM,
        patch,
        "Rename or describe a team",
        "teams",
        body=TeamPatch,
        response=Team,
        permission="teams.update",
        scope=scopes.team,
        errors=(409,),
    ),
    Route(
        "DELETE",
        TEAM,
        delete,
        "Delete a team",
        "teams",
        response=Team,
        permission="teams.manage",
        scope=scopes.team,
    ),
    Route(
        "GET",
        TEAM + "/members",
        members,
        "Members of a team",
        "teams",
        auth="any",
        response=list[TeamMember],
        params=PAGE_PARAMS,
        permission="teams.read",
        scope=scopes.team,
    ),
    Route(
        "POST",
        TEAM + "/members",
        add_member,
        "Add or re-role a team member",
        "teams",
        body=NewTeamMember,
        response=TeamMember,
        status=201,
        permission="teams.members.manage",
        scope=scopes.team,
        errors=(409,),
    ),
    Route(
        "DELETE",
        TEAM + "/members/{user_id}",
        remove_member,
        "Remove a team member",
        "teams",
        response=Removed,
        permission="teams.members.manage",
        scope=scopes.team,
    ),
]
