"""Invitations: admins invite by email; the invitee accepts with the mailed token."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg

from treadle import clock
from treadle._core import constant_time_eq, random_token
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.authz import Authorizer
from treadle.services.mail import Mail
from treadle.services.principal import Actor
from treadle.services.sessions import Sessions
from treadle.settings import Settings
from treadle.store import invitations as invitation_store
from treadle.store import orgs as org_store
from treadle.store.db import Database

Row = dict[str, Any]
FLOOD_WINDOW = 3600


def public_invitation(row: Row) -> Row:
    now = clock.now()
    if row["accepted_at"] is not None:
        status = "accepted"
    elif row["revoked_at"] is not None:
        status = "revoked"
    elif row["expires_at"] <= now:
        status = "expired"
    else:
        status = "pending"
    return {k: v for k, v in row.items() if k != "token_hash"} | {"status": status}


class Invitations:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        authz: Authorizer,
        sessions: Sessions,
        mail: Mail,
        wake_mailer: Any,
    ) -> None:
        self.valid_days = settings.invitation_ttl_days
        self.per_hour = settings.invitations_per_hour
        self.db = db
        self.authz = authz
        self.sessions = sessions
        self.mail = mail
        self.wake_mailer = wake_mailer

    async def invite(self, actor: Actor, org_id: UUID, email: str, role: str) -> Row:
        token = random_token(32)
        invitation_id = uuid.uuid4()
        expires = clock.now() + timedelta(days=self.valid_days)
        try:
            async with self.db.transaction() as conn:
                org = await org_store.get(conn, org_id, lock=True)  # serializes the flood count
                assert org is not None
                if await invitation_store.recent_count(conn, org_id, FLOOD_WINDOW) >= self.per_hour:
                    raise ApiError.rate_limited(
                        f"at most {self.per_hour} invitations per hour per organization", 600
                    )
                if await org_store.member_by_email(conn, org_id, email) is not None:
                    raise ApiError.conflict(f"{email} is a member already", path="$.email")
                row = await invitation_store.insert(
                    conn,
                    invitation_id,
                    org_id,
                    email,
                    role,
                    self.sessions.hash_token(token),
                    actor.signed_in.account,
                    expires,
                )
                await self.mail.invitation(
                    conn, email, org["name"], invitation_id, token, self.valid_days
                )
                await audit.record(
                    conn,
                    actor,
                    org_id,
                    "invitation.create",
                    "invitation",
                    invitation_id,
                    None,
                    {"email": email, "role": role},
                )
        except psycopg.errors.UniqueViolation:
            raise ApiError.conflict(
                f"{email} has a pending invitation already; revoke it to send a new one",
                path="$.email",
            ) from None
        self.wake_mailer()
        return public_invitation(row)

    async def get(self, invitation_id: UUID) -> Row:
        async with self.db.connection() as conn:
            row = await invitation_store.get(conn, invitation_id)
        if row is None:
            raise ApiError.not_found(f"no invitation with id {invitation_id}")
        return public_invitation(row)

    async def in_org(self, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            rows, total = await invitation_store.in_org(conn, org_id, limit, offset)
        return [public_invitation(r) for r in rows], total

    async def accept(self, actor: Actor, invitation_id: UUID, token: str) -> Row:
        principal = actor.signed_in
        async with self.db.transaction() as conn:
            row = await invitation_store.get(conn, invitation_id, lock=True)
            # A wrong token looks like no invitation at all.
            if row is None or not constant_time_eq(
                row["token_hash"].encode(), self.sessions.hash_token(token).encode()
            ):
                raise ApiError.not_found(f"no invitation with id {invitation_id} for this token")
            state = public_invitation(row)["status"]
            if state != "pending":
                raise ApiError.conflict(f"this invitation is {state}", reason=state)
            if row["email"] != principal.email:
                raise ApiError.forbidden(
                    "this invitation is for another email address; sign in as that account"
                )
            org_id = row["organization_id"]
            member = await org_store.add_member(conn, org_id, principal.account, row["role"])
            if member is None:
                raise ApiError.conflict("you are a member of this organization already")
            accepted = await invitation_store.mark_accepted(conn, invitation_id, principal.account)
            revision = await self.authz.changed(conn, org_id)
            await audit.record(
                conn,
                actor,
                org_id,
                "invitation.accept",
                "invitation",
                invitation_id,
                {"status": "pending"},
                {"status": "accepted"},
            )
            await audit.record(
                conn,
                actor,
                org_id,
                "member.add",
                "user",
                principal.account,
                None,
                {"role": row["role"], "via": "invitation"},
            )
        await self.authz.announce(org_id, revision)
        assert accepted is not None
        return public_invitation(accepted)

    async def revoke(self, actor: Actor, invitation_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            row = await invitation_store.revoke(conn, invitation_id)
            if row is None:
                raise ApiError.conflict("only a pending invitation can be revoked")
            await audit.record(
                conn,
                actor,
                row["organization_id"],
                "invitation.revoke",
                "invitation",
                invitation_id,
                {"status": "pending"},
                {"status": "revoked"},
            )
        return public_invitation(row)
