"""Scope resolvers: which organization and resource a route acts on.

Each is named in the route table next to the permission it guards. An id that does not
exist, or belongs to an organization the caller is not in, ends as the same 404.
"""

from __future__ import annotations

from uuid import UUID

from treadle.api.common import path_id
from treadle.services.authz import Scope
from treadle.store import acl as acl_store
from treadle.store import api_keys as key_store
from treadle.store import invitations as invitation_store
from treadle.store import teams as team_store
from treadle.web.errors import ApiError
from treadle.web.request import Request


async def organization(req: Request) -> Scope:
    org_id = path_id(req)
    return Scope(org_id, "organization", str(org_id))


async def organization_in_body(req: Request) -> Scope:
    org_id: UUID = req.data.organization_id
    return Scope(org_id, "organization", str(org_id))


async def organization_in_query(req: Request) -> Scope:
    raw = req.query_value("organization_id")
    if not raw:
        raise ApiError.validation(
            "organization_id query parameter is required", "query.organization_id"
        )
    try:
        org_id = UUID(raw)
    except ValueError:
        raise ApiError.not_found(f"no organization with id {raw!r}") from None
    return Scope(org_id, "organization", str(org_id))


async def team(req: Request) -> Scope:
    team_id = path_id(req)
    async with req.app.db.connection() as conn:
        org_id = await team_store.org_of(conn, team_id)
    if org_id is None:
        raise ApiError.not_found(f"no team with id {team_id}")
    return Scope(org_id, "team", str(team_id), team_id)


async def acl_entry(req: Request) -> Scope:
    entry_id = path_id(req)
    async with req.app.db.connection() as conn:
        entry = await acl_store.get(conn, entry_id)
    if entry is None:
        raise ApiError.not_found(f"no acl entry with id {entry_id}")
    org_id = entry["organization_id"]
    return Scope(org_id, "organization", str(org_id))


async def invitation(req: Request) -> Scope:
    invitation_id = path_id(req)
    async with req.app.db.connection() as conn:
        row = await invitation_store.get(conn, invitation_id)
    if row is None:
        raise ApiError.not_found(f"no invitation with id {invitation_id}")
    org_id = row["organization_id"]
    return Scope(org_id, "invitation", str(invitation_id))


async def api_key(req: Request) -> Scope:
    key_id = path_id(req)
    async with req.app.db.connection() as conn:
        row = await key_store.get(conn, key_id)
    if row is None:
        raise ApiError.not_found(f"no API key with id {key_id}")
    org_id = row["organization_id"]
    return Scope(org_id, "api_key", str(key_id))
