"""Authorization checks, ACL entries and the denial log."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import CURSOR_PARAMS, PAGE_PARAMS, actor, by_id_page, cursor_of, page_of
from treadle.services import audit
from treadle.services.authz import Scope
from treadle.store import acl as acl_store
from treadle.web.envelope import Page
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route

Ident = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:*-]+(?!\n)$")
]
Subject = Annotated[str, msgspec.Meta(pattern=r"^(user|team|api_key):[A-Za-z0-9_-]{1,100}(?!\n)$")]
MAX_BATCH = 1000


class CheckItem(msgspec.Struct, forbid_unknown_fields=True):
    action: Ident
    resource_type: Ident = "organization"
    resource_id: Ident | None = None
    team_id: UUID | None = None
    subject: Subject | None = None


class Check(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: UUID
    action: Ident
    resource_type: Ident = "organization"
    resource_id: Ident | None = None
    team_id: UUID | None = None
    subject: Subject | None = None
    at_least_revision: Annotated[int, msgspec.Meta(ge=0)] | None = None


class CheckBatch(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: UUID
    items: Annotated[list[CheckItem], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
    at_least_revision: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Decision(msgspec.Struct):
    allowed: bool
    reason: str
    decided_by: str | None
    revision: int


class BatchDecision(msgspec.Struct):
    allowed: bool
    reason: str
    decided_by: str | None


class BatchResult(msgspec.Struct):
    revision: int
    results: list[BatchDecision]


class NewAclEntry(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: UUID
    resource_type: Ident
    resource_id: Ident
    action: Ident
    subject: Subject
    effect: Literal["allow", "deny"]


class AclEntry(msgspec.Struct):
    id: UUID
    organization_id: UUID
    resource_type: str
    resource_id: str
    action: str
    subject: str
    effect: str
    created_by: UUID | None
    created_at: datetime


class Denial(msgspec.Struct):
    id: int
    organization_id: UUID
    actor_id: str
    principal_type: str
    action: str
    resource: str
    reason: str
    method: str
    route: str
    request_id: str
    created_at: datetime


def _scopes(req: Request, subject: str | None = None) -> list[str] | None:
    """The caller's API-key scopes, when the subject checked is the caller itself."""
    principal = req.principal
    if principal.kind != "api_key" or subject not in (None, principal.subject):
        return None
    return list(principal.scopes)


def _subject(req: Request, given: str | None) -> str:
    """Checking someone else's access is an admin's business."""
    own: str = req.principal.subject
    if given is None or given == own:
        return own
    allowed = req.app.authz.check(req.scope, own, "authz.check_others", _scopes(req)).allowed
    if not allowed:
        raise ApiError.forbidden("checking another subject's access needs admin rights")
    return given


def _item_scope(org_id: UUID, item: CheckItem | Check) -> Scope:
    resource_id = item.resource_id or (str(org_id) if item.resource_type == "organization" else "")
    if not resource_id:
        raise ApiError.validation("resource_id is required for this resource_type", "$.resource_id")
    return Scope(org_id, item.resource_type, resource_id, item.team_id)


async def check(req: Request) -> Any:
    body: Check = req.data
    revision = await req.app.authz.ensure(body.organization_id, body.at_least_revision)
    subject = _subject(req, body.subject)
    decision = req.app.authz.check(
        _item_scope(body.organization_id, body), subject, body.action, _scopes(req, subject)
    )
    return {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "decided_by": decision.decided_by,
        "revision": revision,
    }


async def check_batch(req: Request) -> Any:
    """Per-item problems answer for that item alone: ``invalid_item`` (no resource_id for a
    resource type that needs one) or ``subject_not_allowed`` (another subject, without the
    right to ask about others)."""
    body: CheckBatch = req.data
    org = str(body.organization_id)
    revision = await req.app.authz.ensure(body.organization_id, body.at_least_revision)
    own = req.principal.subject
    may_ask_for_others: bool | None = None
    refused: dict[int, str] = {}
    items: list[tuple[str, str, str, str, str | None] | None] = []
    for index, item in enumerate(body.items):
        subject = own if item.subject is None else item.subject
        if subject != own:
            if may_ask_for_others is None:
                may_ask_for_others = req.app.authz.check(
                    req.scope, own, "authz.check_others", _scopes(req)
                ).allowed
            if not may_ask_for_others:
                refused[index] = "subject_not_allowed"
        resource_id = item.resource_id or (org if item.resource_type == "organization" else "")
        if not resource_id:
            refused[index] = "invalid_item"
        items.append(
            None
            if index in refused
            else (
                subject,
                item.action,
                item.resource_type,
                resource_id,
                None if item.team_id is None else str(item.team_id),
            )
        )
    # One scope list serves the batch: it applies to items whose subject is the calling key.
    decisions = req.app.authz.evaluator.check_batch(org, items, _scopes(req))
    return {
        "revision": revision,
        "results": [
            {"allowed": False, "reason": refused[i], "decided_by": None}
            if i in refused
            else {"allowed": d.allowed, "reason": d.reason, "decided_by": d.decided_by}
            for i, d in enumerate(decisions)
        ],
    }


async def list_acl(req: Request) -> Any:
    limit, offset = page_of(req)
    async with req.app.db.connection() as conn:
        rows, total = await acl_store.in_org(conn, req.scope.organization_id, limit, offset)
    return Page(rows, limit, offset, total)


async def create_acl(req: Request) -> Any:
    body: NewAclEntry = req.data
    authz = req.app.authz
    org_id = body.organization_id
    fields = {
        "id": uuid.uuid4(),
        "organization_id": org_id,
        "resource_type": body.resource_type,
        "resource_id": body.resource_id,
        "action": body.action,
        "subject": body.subject,
        "effect": body.effect,
        "created_by": req.principal.account,
    }
    async with req.app.db.transaction() as conn:
        await authz.may_grant(conn, org_id, req.principal.account, fields, None)
        entry = await acl_store.insert(conn, fields)
        revision = await authz.changed(conn, org_id)
        await audit.record(
            conn, actor(req), org_id, "acl.create", "acl_entry", entry["id"], None, entry
        )
    await authz.announce(org_id, revision)
    return {**entry, "revision": revision}


async def delete_acl(req: Request) -> Any:
    authz = req.app.authz
    org_id = req.scope.organization_id
    entry_id = uuid.UUID(req.params["id"])
    async with req.app.db.transaction() as conn:
        held = await acl_store.get(conn, entry_id)
        if held is None:
            raise ApiError.not_found("no such acl entry")
        await authz.may_grant(conn, org_id, req.principal.account, held, str(entry_id))
        entry = await acl_store.delete(conn, entry_id)
        if entry is None:
            raise ApiError.not_found("no such acl entry")
        revision = await authz.changed(conn, org_id)
        await audit.record(
            conn, actor(req), org_id, "acl.delete", "acl_entry", entry["id"], entry, None
        )
    await authz.announce(org_id, revision)
    return {**entry, "revision": revision}


async def denials(req: Request) -> Any:
    limit, before = cursor_of(req)
    async with req.app.db.connection() as conn:
        rows = await acl_store.denials(conn, req.scope.organization_id, before, limit)
    return by_id_page(rows, limit)


class AclEntryWithRevision(AclEntry):
    revision: int


_ORG_QUERY = Param(
    "organization_id", "the organization", {"type": "string", "format": "uuid"}, required=True
)

ROUTES = [
    Route(
        "POST",
        "/v1/authz/check",
        check,
        "Is an action allowed? (with reason and rule)",
        "authz",
        auth="any",
        body=Check,
        response=Decision,
        permission="org.read",
        scope=scopes.organization_in_body,
        errors=(409,),
    ),
    Route(
        "POST",
        "/v1/authz/check-batch",
        check_batch,
        "Up to 1,000 checks against one snapshot, answers in request order",
        "authz",
        auth="any",
        cost=10,
        body=CheckBatch,
        response=BatchResult,
        permission="org.read",
        scope=scopes.organization_in_body,
        errors=(409,),
    ),
    Route(
        "GET",
        "/v1/acl",
        list_acl,
        "ACL entries of an organization",
        "authz",
        auth="any",
        response=list[AclEntry],
        params=(_ORG_QUERY, *PAGE_PARAMS),
        permission="acl.read",
        scope=scopes.organization_in_query,
    ),
    Route(
        "POST",
        "/v1/acl",
        create_acl,
        "Allow or deny an action on a resource",
        "authz",
        body=NewAclEntry,
        response=AclEntryWithRevision,
        status=201,
        permission="acl.manage",
        scope=scopes.organization_in_body,
    ),
    Route(
        "DELETE",
        "/v1/acl/{id}",
        delete_acl,
        "Remove an ACL entry",
        "authz",
        response=AclEntryWithRevision,
        permission="acl.manage",
        scope=scopes.acl_entry,
    ),
    Route(
        "GET",
        "/v1/authz/denials",
        denials,
        "Denied decisions on routes (admins)",
        "authz",
        response=list[Denial],
        params=(_ORG_QUERY, *CURSOR_PARAMS),
        permission="denials.read",
        scope=scopes.organization_in_query,
    ),
]
