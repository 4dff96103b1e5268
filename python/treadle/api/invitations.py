"""Invitations to join an organization."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import PAGE_PARAMS, Email, Token, actor, normalize_email, page_of, path_id
from treadle.web.envelope import Page
from treadle.web.request import Request
from treadle.web.routing import Param, Route


class NewInvitation(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: UUID
    email: Email
    role: Literal["admin", "member", "viewer"] = "member"


class Accept(msgspec.Struct, forbid_unknown_fields=True):
    token: Token


class Invitation(msgspec.Struct):
    id: UUID
    organization_id: UUID
    email: str
    role: str
    status: str
    invited_by: UUID
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: UUID | None
    revoked_at: datetime | None


async def create(req: Request) -> Any:
    body: NewInvitation = req.data
    return await req.app.invitations.invite(
        actor(req), body.organization_id, normalize_email(body.email), body.role
    )


async def list_for_org(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.invitations.in_org(req.scope.organization_id, limit, offset)
    return Page(rows, limit, offset, total)


async def get(req: Request) -> Any:
    return await req.app.invitations.get(path_id(req))


async def accept(req: Request) -> Any:
    body: Accept = req.data
    return await req.app.invitations.accept(actor(req), path_id(req), body.token)


async def revoke(req: Request) -> Any:
    return await req.app.invitations.revoke(actor(req), path_id(req))


ROUTES = [
    Route(
        "POST",
        "/v1/invitations",
        create,
        "Invite an email address (admins)",
        "invitations",
        body=NewInvitation,
        response=Invitation,
        status=201,
        scope=scopes.organization_in_body,
        permission="invitations.manage",
        errors=(409,),
    ),
    Route(
        "GET",
        "/v1/invitations",
        list_for_org,
        "Invitations of an organization",
        "invitations",
        response=list[Invitation],
        params=(Param("organization_id", "the organization", required=True), *PAGE_PARAMS),
        scope=scopes.organization_in_query,
        permission="invitations.manage",
    ),
    Route(
        "GET",
        "/v1/invitations/{id}",
        get,
        "One invitation",
        "invitations",
        response=Invitation,
        scope=scopes.invitation,
        permission="invitations.manage",
    ),
    Route(
        "POST",
        "/v1/invitations/{id}/accept",
        accept,
        "Accept with the mailed token (signed in as the invited address)",
        "invitations",
        body=Accept,
        response=Invitation,
        errors=(409,),
    ),
    Route(
        "POST",
        "/v1/invitations/{id}/revoke",
        revoke,
        "Revoke a pending invitation",
        "invitations",
        response=Invitation,
        scope=scopes.invitation,
        permission="invitations.manage",
        errors=(409,),
    ),
]
