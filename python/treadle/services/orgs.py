"""Organizations, members and settings: who may change what is decided before we get here."""

from __future__ import annotations

import re
import uuid
from typing import Any
from uuid import UUID

import psycopg

from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.authz import Authorizer, Scope
from treadle.services.invitations import Invitations
from treadle.services.principal import Actor
from treadle.store import orgs as org_store
from treadle.store import users as user_store
from treadle.store.db import Database

# The invalidation published when an organization's settings change: its id.
SETTINGS_CHANGED = "orgsettings"

Row = dict[str, Any]


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:48] or "org"


def public_org(row: Row) -> Row:
    out = {k: row[k] for k in ("id", "name", "slug", "created_by", "created_at", "updated_at")}
    out["archived"] = row["archived_at"] is not None
    if "role" in row:
        out["role"] = row["role"]
    return out


def public_member(row: Row) -> Row:
    return {
        "user_id": row["user_id"],
        "email": row["email"],
        "display_name": row["display_name"],
        "role": row["role"],
        "joined_at": row["created_at"],
    }


class Organizations:
    def __init__(self, db: Database, authz: Authorizer, invitations: Invitations) -> None:
        self.db = db
        self.authz = authz
        self.invitations = invitations

    async def create(self, actor: Actor, name: str, slug: str | None) -> Row:
        org_id = uuid.uuid4()
        chosen = slug or f"{slugify(name)}-{org_id.hex[:6]}"
        try:
            async with self.db.transaction() as conn:
                org = await org_store.insert(conn, org_id, name, chosen, actor.signed_in.account)
                await org_store.add_member(conn, org_id, actor.signed_in.account, "owner")
                await audit.record(
                    conn,
                    actor,
                    org_id,
                    "organization.create",
                    "organization",
                    org_id,
                    None,
                    public_org(org),
                )
        except psycopg.errors.UniqueViolation:
            raise ApiError.conflict(
                f"slug {chosen!r} is taken; choose another", path="$.slug"
            ) from None
        return {**public_org(org), "role": "owner"}

    async def mine(self, user_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            rows, total = await org_store.for_user(conn, user_id, limit, offset)
        return [public_org(r) for r in rows], total

    async def get(self, org_id: UUID) -> Row:
        async with self.db.connection() as conn:
            org = await org_store.get(conn, org_id)
        if org is None:
            raise ApiError.not_found(f"no organization with id {org_id}")
        return public_org(org)

    async def update(self, actor: Actor, org_id: UUID, name: str | None, slug: str | None) -> Row:
        try:
            async with self.db.transaction() as conn:
                before = await org_store.get(conn, org_id, lock=True)
                after = await org_store.update(conn, org_id, name, slug)
                assert before is not None and after is not None
                await audit.record(
                    conn,
                    actor,
                    org_id,
                    "organization.update",
                    "organization",
                    org_id,
                    public_org(before),
                    public_org(after),
                )
        except psycopg.errors.UniqueViolation:
            raise ApiError.conflict(
                f"slug {slug!r} is taken; choose another", path="$.slug"
            ) from None
        return public_org(after)

    async def archive(self, actor: Actor, org_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            before = await org_store.get(conn, org_id, lock=True)
            after = await org_store.archive(conn, org_id)
            assert before is not None and after is not None
            await audit.record(
                conn,
                actor,
                org_id,
                "organization.archive",
                "organization",
                org_id,
                public_org(before),
                public_org(after),
            )
        await self.authz.announce(org_id, after["authz_revision"])
        return public_org(after)

    async def settings(self, org_id: UUID) -> Row:
        async with self.db.connection() as conn:
            org = await org_store.get(conn, org_id)
        assert org is not None
        return dict(org["settings"])

    async def put_settings(self, actor: Actor, org_id: UUID, settings: Row) -> Row:
        async with self.db.transaction() as conn:
            before = await org_store.get(conn, org_id, lock=True)
            after = await org_store.set_settings(conn, org_id, settings)
            assert before is not None and after is not None
            await audit.record(
                conn,
                actor,
                org_id,
                "organization.settings.update",
                "organization",
                org_id,
                before["settings"],
                settings,
            )
        # Rate limiters cache the policies: tell every process.
        await self.authz.bus.publish(SETTINGS_CHANGED, org_id)
        return dict(after["settings"])

    # -- members -------------------------------------------------------------------------

    async def members(self, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            rows, total = await org_store.members(conn, org_id, limit, offset)
        return [public_member(r) for r in rows], total

    async def add_member(
        self, actor: Actor, org_id: UUID, user_id: UUID | None, email: str | None, role: str
    ) -> Row:
        """Nobody joins without consenting: the account is sent an invitation to accept
        (``status == "invited"``). Only a platform admin adds a member at once
        (``status == "added"``)."""
        await self._may_grant(actor, org_id, role)
        if not actor.signed_in.is_platform_admin:
            if role == "owner":
                raise ApiError.validation(
                    "invitations are for admin, member or viewer; make them owner once they"
                    " have joined",
                    "$.role",
                )
            if user_id is not None:
                async with self.db.connection() as conn:
                    user = await user_store.by_id(conn, user_id)
                if user is None:
                    raise ApiError.not_found("no account with that user_id or email")
                email = user["email"]
            invitation = await self.invitations.invite(actor, org_id, email or "", role)
            return {"status": "invited", "invitation": invitation, "member": None}
        async with self.db.transaction() as conn:
            user = await (
                user_store.by_id(conn, user_id)
                if user_id is not None
                else user_store.credentials_by_email(conn, email or "")
            )
            if user is None:
                raise ApiError.not_found("no account with that user_id or email")
            row = await org_store.add_member(conn, org_id, user["id"], role)
            if row is None:
                raise ApiError.conflict("this account is a member already; PATCH its role instead")
            revision = await self.authz.changed(conn, org_id)
            await audit.record(
                conn, actor, org_id, "member.add", "user", user["id"], None, {"role": role}
            )
        await self.authz.announce(org_id, revision)
        return {"status": "added", "invitation": None, "member": public_member(row)}

    async def set_role(self, actor: Actor, org_id: UUID, user_id: UUID, role: str) -> Row:
        async with self.db.transaction() as conn:
            current = await org_store.member(conn, org_id, user_id)
            if current is None:
                raise ApiError.not_found(f"no member with user_id {user_id}")
            await self._may_grant(actor, org_id, role, current["role"])
            await org_store.get(conn, org_id, lock=True)  # serializes last-owner checks
            if current["role"] == "owner" and role != "owner":
                await self._keep_an_owner(conn, org_id)
            await org_store.set_role(conn, org_id, user_id, role)
            revision = await self.authz.changed(conn, org_id)
            await audit.record(
                conn,
                actor,
                org_id,
                "member.role.update",
                "user",
                user_id,
                {"role": current["role"]},
                {"role": role},
            )
            row = await org_store.member(conn, org_id, user_id)
        await self.authz.announce(org_id, revision)
        assert row is not None
        return public_member(row)

    async def remove(self, actor: Actor, org_id: UUID, user_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            current = await org_store.member(conn, org_id, user_id)
            if current is None:
                raise ApiError.not_found(f"no member with user_id {user_id}")
            if user_id != actor.signed_in.account:
                await self._may_grant(actor, org_id, current["role"])
            await org_store.get(conn, org_id, lock=True)
            if current["role"] == "owner":
                await self._keep_an_owner(conn, org_id)
            await org_store.remove_member(conn, org_id, user_id)
            revision = await self.authz.changed(conn, org_id)
            await audit.record(
                conn,
                actor,
                org_id,
                "member.remove",
                "user",
                user_id,
                {"role": current["role"]},
                None,
            )
        await self.authz.announce(org_id, revision)
        return public_member(current)

    async def _keep_an_owner(self, conn: Any, org_id: UUID) -> None:
        if await org_store.owner_count(conn, org_id) <= 1:
            raise ApiError.conflict(
                "this is the last owner; make another member owner first", reason="last_owner"
            )

    async def _may_grant(
        self, actor: Actor, org_id: UUID, role: str, current: str | None = None
    ) -> None:
        """Only owners hand out, take away or touch the owner role."""
        if "owner" not in (role, current):
            return
        await self.authz.ensure(org_id)
        scope = Scope(org_id, "organization", str(org_id))
        if not self.authz.check(scope, actor.signed_in.subject, "members.owners").allowed:
            error = ApiError.forbidden("only an owner can grant or change the owner role")
            error.details = {"reason": "owner_only", "action": "members.owners"}
            raise error
