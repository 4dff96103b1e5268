"""Scope resolvers: which organization and resource a route acts on.

Each is named in the route table next to the permission it guards. An id that does not
exist, or belongs to an organization the caller is not in, ends as the same 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from treadle.api.common import path_id
from treadle.services.authz import Scope
from treadle.services.edge_agents import agent_of
from treadle.store import acl as acl_store
from treadle.store import api_keys as key_store
from treadle.store import edge_agents as agent_store
from treadle.store import invitations as invitation_store
from treadle.store import jobs as job_store
from treadle.store import teams as team_store
from treadle.store import webhooks as webhook_store
from treadle.store import workflow_definitions as definition_store
from treadle.store import workflow_runs as run_store
from treadle.store.db import Conn
from treadle.web.errors import ApiError
from treadle.web.request import Request

Loader = Callable[[Conn, UUID], Awaitable[dict[str, Any] | None]]


async def organization(req: Request) -> Scope:
    org_id = path_id(req)
    return Scope(org_id, "organization", str(org_id))


async def organization_in_body(req: Request) -> Scope:
    org_id: UUID = req.data.organization_id
    return Scope(org_id, "organization", str(org_id))


async def body_or_key(req: Request) -> Scope:
    """The organization named in the body, or the API key's own: routes that create
    something in an organization (jobs, workflow definitions)."""
    org_id = req.data.organization_id or req.principal.organization_id
    if org_id is None:
        raise ApiError.validation(
            "organization_id is required for a signed-in user (an API key acts in its own)",
            "$.organization_id",
        )
    return Scope(org_id, "organization", str(org_id))


async def organization_in_query(req: Request) -> Scope:
    raw = req.query_value("organization_id")
    if not raw:
        raise ApiError.validation(
            "organization_id query parameter is required", "query.organization_id"
        )
    return _named(raw)


def _named(raw: str) -> Scope:
    """The organization a caller names by id; one that cannot exist is not found."""
    try:
        org_id = UUID(raw)
    except ValueError:
        raise ApiError.not_found(f"no organization with id {raw!r}") from None
    return Scope(org_id, "organization", str(org_id))


async def _owned(req: Request, load: Loader, label: str) -> tuple[UUID, UUID]:
    """The path's id and the organization its row belongs to; 404 when there is no row."""
    ident = path_id(req)
    async with req.app.db.connection() as conn:
        row = await load(conn, ident)
    if row is None:
        raise ApiError.not_found(f"no {label} with id {ident}")
    return row["organization_id"], ident


async def team(req: Request) -> Scope:
    org_id, team_id = await _owned(req, team_store.get, "team")
    return Scope(org_id, "team", str(team_id), team_id)


async def acl_entry(req: Request) -> Scope:
    org_id, _ = await _owned(req, acl_store.get, "acl entry")
    return Scope(org_id, "organization", str(org_id))


async def invitation(req: Request) -> Scope:
    org_id, invitation_id = await _owned(req, invitation_store.get, "invitation")
    return Scope(org_id, "invitation", str(invitation_id))


async def api_key(req: Request) -> Scope:
    org_id, key_id = await _owned(req, key_store.get, "API key")
    return Scope(org_id, "api_key", str(key_id))


async def job(req: Request) -> Scope:
    org_id, job_id = await _owned(req, job_store.get, "job")
    return Scope(org_id, "job", str(job_id))


async def workflow_definition(req: Request) -> Scope:
    org_id, definition_id = await _owned(req, definition_store.get, "workflow definition")
    return Scope(org_id, "workflow_definition", str(definition_id))


async def workflow_run(req: Request) -> Scope:
    org_id, run_id = await _owned(req, run_store.get, "workflow run")
    return Scope(org_id, "workflow_run", str(run_id))


async def edge_agent(req: Request) -> Scope:
    org_id, agent_id = await _owned(req, agent_store.get, "edge agent")
    return Scope(org_id, "edge_agent", str(agent_id))


async def webhook(req: Request) -> Scope:
    org_id, endpoint_id = await _owned(req, webhook_store.get_endpoint, "webhook")
    return Scope(org_id, "webhook", str(endpoint_id))


async def edge_agent_organization(req: Request) -> Scope:
    """The organization of the calling edge agent's credential (routes for agents only:
    ingest, policy); 403 for any other caller, who has no organization to name here."""
    agent_of(req.principal)
    org_id = req.principal.organization_id
    assert org_id is not None
    return Scope(org_id, "organization", str(org_id))


async def caller_organization(req: Request) -> Scope:
    """The organization an API key belongs to, or the one a user names in
    ``?organization_id=`` (also what an ``organization_id`` in the body must match)."""
    raw = req.query_value("organization_id")
    if raw:
        return _named(raw)
    key_org = req.principal.organization_id
    if key_org is None:
        raise ApiError.validation(
            "organization_id query parameter is required for a signed-in user",
            "query.organization_id",
        )
    return Scope(key_org, "organization", str(key_org))
