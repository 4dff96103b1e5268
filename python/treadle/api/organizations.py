"""Organizations, their members and settings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import PAGE_PARAMS, SINGLE_LINE, Email, Name, actor, page_of, path_id
from treadle.api.invitations import Invitation
from treadle.api.teams import Team
from treadle.web.envelope import Page
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Route

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?!\n)$")]
OrgRole = Literal["owner", "admin", "member", "viewer"]


class NewOrganization(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    slug: Slug | None = None


class OrganizationPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    slug: Slug | None = None


class NewMember(msgspec.Struct, forbid_unknown_fields=True):
    # Nobody joins as owner: they join, then an owner promotes them.
    role: Literal["admin", "member", "viewer"]
    user_id: UUID | None = None
    email: Email | None = None


# Exactly one of user_id and email, as add_member checks, stated where clients read it.
NewMemberBody = Annotated[
    NewMember,
    msgspec.Meta(
        extra_json_schema={
            "oneOf": [
                {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
                {"required": ["email"], "properties": {"email": {"type": "string"}}},
            ]
        }
    ),
]


class MemberPatch(msgspec.Struct, forbid_unknown_fields=True):
    role: OrgRole


class Branding(msgspec.Struct, forbid_unknown_fields=True):
    display_name: Annotated[str, msgspec.Meta(max_length=200, pattern=SINGLE_LINE)] | None = None
    logo_url: Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https://")] | None = None
    primary_color: Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}(?!\n)$")] | None = None


class RateLimitPolicy(msgspec.Struct, forbid_unknown_fields=True):
    """``limit`` requests per ``period_seconds``; API keys name one in their settings, and
    the one named ``organization`` bounds the whole organization."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_-]{1,64}(?!\n)$")]
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    period_seconds: Annotated[int, msgspec.Meta(ge=1, le=86_400)]


class Retention(msgspec.Struct, forbid_unknown_fields=True):
    """How long the organization's records are kept before the sweeper deletes them."""

    audit_log_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 365
    authz_denial_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 90
    # Telemetry events are kept by whole days of arrival.
    telemetry_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30
    # Webhook deliveries that succeeded or are dead, by when they finished.
    webhook_delivery_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 30


EventType = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}(?!\n)$")]


class TelemetryPolicy(msgspec.Struct, forbid_unknown_fields=True):
    """What the organization's edge agents are told (``GET /v1/edge-agents/policy``) and
    held to when they ingest: batch sizes (413 past them) and event types (others are
    rejected one by one; none listed: any)."""

    sampling_rate: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    max_batch_events: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1000
    max_batch_bytes: Annotated[int, msgspec.Meta(ge=1024, le=16 * 1024 * 1024)] = 1_048_576
    allowed_types: Annotated[list[EventType], msgspec.Meta(max_length=500)] = []
    flush_interval_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 10


class JobType(msgspec.Struct, forbid_unknown_fields=True):
    """A kind of job the organization runs: a job costs ``base_cost`` plus ``unit_cost``
    per unit of its ``unit`` metric (estimated at submission from ``estimated_units``,
    charged at completion from the usage its worker reports)."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}(?!\n)$")]
    base_cost: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 0.0
    unit_cost: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] = 0.0
    unit: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}(?!\n)$")] = "units"
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=25)] = 3
    lease_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] = 60


class OrgSettings(msgspec.Struct, forbid_unknown_fields=True):
    branding: Branding = msgspec.field(default_factory=Branding)
    rate_limit_policies: list[RateLimitPolicy] = []
    retention: Retention = msgspec.field(default_factory=Retention)
    job_types: Annotated[list[JobType], msgspec.Meta(min_length=1, max_length=200)] = msgspec.field(
        default_factory=lambda: [JobType(name="default")]
    )
    telemetry: TelemetryPolicy = msgspec.field(default_factory=TelemetryPolicy)
    # The most model-provider calls may cost in a calendar month (UTC), in the prices'
    # currency; a call whose estimate would pass it is refused (402) before it is made.
    monthly_budget: Annotated[float, msgspec.Meta(ge=0, le=1e12)] | None = None


class Organization(msgspec.Struct):
    id: UUID
    name: str
    slug: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    archived: bool
    role: str | None = None


class Member(msgspec.Struct):
    user_id: UUID
    email: str
    display_name: str
    role: str
    joined_at: datetime


class MemberAddition(msgspec.Struct):
    """``invited``: the account was sent ``invitation`` and joins when it accepts;
    ``added``: a platform admin's add, ``member`` is in already."""

    status: Literal["invited", "added"]
    invitation: Invitation | None
    member: Member | None


async def create(req: Request) -> Any:
    body: NewOrganization = req.data
    return await req.app.orgs.create(actor(req), body.name.strip(), body.slug)


async def list_mine(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.orgs.mine(req.principal.account, limit, offset)
    return Page(rows, limit, offset, total)


async def get(req: Request) -> Any:
    return await req.app.orgs.get(req.scope.organization_id)


async def patch(req: Request) -> Any:
    body: OrganizationPatch = req.data
    name = body.name.strip() if body.name else None
    return await req.app.orgs.update(actor(req), req.scope.organization_id, name, body.slug)


async def archive(req: Request) -> Any:
    return await req.app.orgs.archive(actor(req), req.scope.organization_id)


async def teams(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.teams.in_org(req.scope.organization_id, limit, offset)
    return Page(rows, limit, offset, total)


async def members(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.orgs.members(req.scope.organization_id, limit, offset)
    return Page(rows, limit, offset, total)


async def add_member(req: Request) -> Any:
    body: NewMember = req.data
    if (body.user_id is None) == (body.email is None):
        raise ApiError.validation("give exactly one of user_id or email", "$")
    email = body.email.strip().lower() if body.email else None
    return await req.app.orgs.add_member(
        actor(req), req.scope.organization_id, body.user_id, email, body.role
    )


async def patch_member(req: Request) -> Any:
    body: MemberPatch = req.data
    return await req.app.orgs.set_role(
        actor(req), req.scope.organization_id, path_id(req, "user_id"), body.role
    )


async def remove_member(req: Request) -> Any:
    return await req.app.orgs.remove(actor(req), req.scope.organization_id, path_id(req, "user_id"))


async def get_settings(req: Request) -> Any:
    stored = await req.app.orgs.settings(req.scope.organization_id)
    return msgspec.to_builtins(msgspec.convert(stored, OrgSettings))


async def put_settings(req: Request) -> Any:
    body: OrgSettings = req.data
    for field, items in (
        ("rate_limit_policies", body.rate_limit_policies),
        ("job_types", body.job_types),
    ):
        names = [item.name for item in items]
        if len(names) != len(set(names)):
            raise ApiError.validation(f"{field} names must be unique", f"$.{field}")
    req.app.rate_limits.check_policies(
        msgspec.to_builtins(body.rate_limit_policies), "$.rate_limit_policies"
    )
    return await req.app.orgs.put_settings(
        actor(req), req.scope.organization_id, msgspec.to_builtins(body)
    )


ORG = "/v1/organizations/{id}"

ROUTES = [
    Route(
        "POST",
        "/v1/organizations",
        create,
        "Create an organization (you become owner)",
        "organizations",
        body=NewOrganization,
        response=Organization,
        status=201,
        errors=(409,),
    ),
    Route(
        "GET",
        "/v1/organizations",
        list_mine,
        "Organizations you belong to",
        "organizations",
        response=list[Organization],
        params=PAGE_PARAMS,
    ),
    Route(
        "GET",
        ORG,
        get,
        "One organization",
        "organizations",
        auth="any",
        response=Organization,
        permission="org.read",
        scope=scopes.organization,
    ),
    Route(
        "PATCH",
        ORG,
        patch,
        "Rename or re-slug",
        "organizations",
        body=OrganizationPatch,
        response=Organization,
        permission="org.update",
        scope=scopes.organization,
        errors=(409,),
    ),
    Route(
        "DELETE",
        ORG,
        archive,
        "Archive (owners only)",
        "organizations",
        response=Organization,
        permission="org.archive",
        scope=scopes.organization,
    ),
    Route(
        "GET",
        ORG + "/teams",
        teams,
        "Teams of the organization",
        "organizations",
        auth="any",
        response=list[Team],
        params=PAGE_PARAMS,
        permission="teams.read",
        scope=scopes.organization,
    ),
    Route(
        "GET",
        ORG + "/members",
        members,
        "Members and their roles",
        "organizations",
        auth="any",
        response=list[Member],
        params=PAGE_PARAMS,
        permission="members.read",
        scope=scopes.organization,
    ),
    Route(
        "POST",
        ORG + "/members",
        add_member,
        "Invite an account to join (202: it joins on accepting; platform admins add at once)",
        "organizations",
        body=NewMemberBody,
        response=MemberAddition,
        status=202,
        permission="members.manage",
        scope=scopes.organization,
        errors=(409, 429),
    ),
    Route(
        "PATCH",
        ORG + "/members/{user_id}",
        patch_member,
        "Change a member's role",
        "organizations",
        body=MemberPatch,
        response=Member,
        permission="members.manage",
        scope=scopes.organization,
        errors=(409,),
    ),
    Route(
        "DELETE",
        ORG + "/members/{user_id}",
        remove_member,
        "Remove a member (the last owner stays)",
        "organizations",
        response=Member,
        permission="members.manage",
        scope=scopes.organization,
        errors=(409,),
    ),
    Route(
        "GET",
        ORG + "/settings",
        get_settings,
        "Organization settings: branding, rate-limit policies, retention",
        "organizations",
        auth="any",
        response=OrgSettings,
        permission="settings.read",
        scope=scopes.organization,
    ),
    Route(
        "PUT",
        ORG + "/settings",
        put_settings,
        "Replace the settings",
        "organizations",
        body=OrgSettings,
        response=OrgSettings,
        permission="settings.write",
        scope=scopes.organization,
    ),
]
