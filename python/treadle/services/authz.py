"""Authorization: the Rust evaluator fed with per-organization snapshots from PostgreSQL.

A write that can change a decision bumps the organization's ``authz_revision`` in its own
transaction and publishes ``authz:<org>:<revision>``; every process then refuses to decide
on an older snapshot and reloads. ``at_least_revision`` gives a caller read-your-writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from treadle import _core
from treadle.bus.invalidation import Invalidator
from treadle.errors import ApiError
from treadle.store import acl as acl_store
from treadle.store import orgs as org_store
from treadle.store import teams as team_store
from treadle.store.db import Conn, Database

log = logging.getLogger("treadle.authz")

_READ = [
    "org.read",
    "members.read",
    "teams.read",
    "settings.read",
    "jobs.read",
    "events.read",
    "workflows.read",
    "telemetry.read",
    "assets.read",
    "providers.read",
]
_MEMBER = [
    *_READ,
    "jobs.submit",
    "jobs.manage",
    "workflows.run",
    "approvals.decide",
    "assets.write",
    "providers.execute",
]
_ADMIN = [
    *_MEMBER,
    "workflows.manage",
    "jobs:work",
    "usage.read",
    "org.update",
    "settings.write",
    "members.manage",
    "teams.manage",
    "teams.update",
    "teams.members.manage",
    "invitations.manage",
    "acl.read",
    "acl.manage",
    "audit.read",
    "denials.read",
    "authz.check_others",
    "api_keys.manage",
    "edge_agents.manage",
    "webhooks.read",
    "webhooks.manage",
    "secrets.read",
    "secrets.manage",
    "ops.read",
    "ops.retry",
    "providers.manage",
]
ORG_ROLES: dict[str, list[str]] = {
    "viewer": _READ,
    "member": _MEMBER,
    "admin": _ADMIN,
    # "*" grants everything; the owner-only actions are named so they show in permissions.
    "owner": ["*", "org.archive", "members.owners"],
}
# What only the owner role holds, so only an owner may hand out (by ACL entry or role).
OWNER_ONLY = frozenset(ORG_ROLES["owner"])
# What no deny entry takes from an owner (the evaluator skips denies for these): owners
# can always see and undo any ACL entry, and keep the owner-only actions.
OWNER_SHIELDED = ["acl.read", "acl.manage", *sorted(OWNER_ONLY - {"*"})]
TEAM_ROLES: dict[str, list[str]] = {
    "viewer": ["teams.read"],
    "member": ["teams.read"],
    "admin": ["teams.read", "teams.update", "teams.members.manage"],
}
# How long a snapshot is trusted without asking PostgreSQL for the current revision,
# should an invalidation message be lost on the way.
REVALIDATE_SECONDS = 5.0
# After a failed revalidation (PostgreSQL away), how long until a request asks again.
RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a request acts: the organization, and the resource inside it."""

    organization_id: UUID
    resource_type: str
    resource_id: str
    team_id: UUID | None = None
    # ``organization_id`` as text, formatted once: the key of every per-organization lookup.
    organization_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "organization_key", str(self.organization_id))


class Authorizer:
    def __init__(self, db: Database, bus: Invalidator) -> None:
        self.db = db
        self.bus = bus
        self.policy = _core.Policy(ORG_ROLES, TEAM_ROLES, OWNER_SHIELDED)
        self.evaluator = _core.Authz(self.policy)
        # The newest revision this process has heard of, per organization.
        self._wanted: dict[str, int] = {}
        self._verified: dict[str, float] = {}
        # The revision questions in flight, one per organization at most.
        self.revalidating: dict[str, asyncio.Task[None]] = {}
        bus.on("authz", self._heard, self._forget_all)

    def _heard(self, message: str) -> None:
        org, _, revision = message.partition(":")
        self._wanted[org] = max(self._wanted.get(org, 0), int(revision or 0))
        self.evaluator.drop(org)

    def _forget_all(self) -> None:
        self._wanted.clear()
        self.evaluator = _core.Authz(self.policy)

    async def changed(self, conn: Conn, org_id: UUID) -> int:
        """Call inside the transaction of a change; then ``announce`` after commit."""
        return await org_store.bump_revision(conn, org_id)

    async def announce(self, org_id: UUID, revision: int) -> None:
        await self.bus.publish("authz", f"{org_id}:{revision}")

    async def ensure(
        self, org_id: UUID, at_least: int | None = None, key: str | None = None
    ) -> int:
        """Make sure this process decides on a snapshot at least this new; its revision.
        ``key`` is ``org_id`` as text, when the caller has it already."""
        key = str(org_id) if key is None else key
        wanted = max(self._wanted.get(key, 0), at_least or 0)
        have = self.evaluator.revision(key)
        now = time.monotonic()
        if have is not None and have >= wanted:
            due = now - self._verified.get(key, 0.0) >= REVALIDATE_SECONDS
            if due and key not in self.revalidating:
                # Refresh ahead: one task asks PostgreSQL for the revision while this request
                # and the others decide on the snapshot they have. The question guards
                # against a lost invalidation, not a recent change (a change is announced).
                task = asyncio.get_running_loop().create_task(self._revalidate(key, org_id, have))
                self.revalidating[key] = task
            return int(have)
        async with self.db.committed() as conn:
            data = await org_store.snapshot(conn, org_id)
        if data["org"] is None or data["org"]["archived_at"] is not None:
            raise ApiError.not_found(f"no organization with id {org_id}")
        revision = int(data["org"]["authz_revision"])
        self.evaluator.load(
            _core.Snapshot(key, revision, data["members"], data["team_members"], data["acl"])
        )
        self._verified[key] = now
        if at_least is not None and revision < at_least:
            raise ApiError.conflict(
                f"revision {at_least} is not committed yet; the newest is {revision}",
                revision=revision,
            )
        return revision

    async def _revalidate(self, key: str, org_id: UUID, have: int) -> None:
        asked = time.monotonic()
        try:
            async with self.db.committed() as conn:
                current = await org_store.revision(conn, org_id)
        except Exception:
            # Meanwhile the snapshot serves; a request asks again in RETRY_SECONDS.
            log.warning("could not revalidate the authz snapshot of %s", key, exc_info=True)
            self._verified[key] = asked - REVALIDATE_SECONDS + RETRY_SECONDS
            return
        finally:
            del self.revalidating[key]
        if current == have:
            self._verified[key] = asked
        elif self.evaluator.revision(key) == have:
            # Missed an invalidation (or the organization is gone): the next request reloads.
            self._heard(f"{key}:{current or 0}")

    async def everywhere(self, user_id: UUID) -> list[dict[str, Any]]:
        """Every action the user may take, per organization and per team, in one pass."""
        async with self.db.connection() as conn:
            orgs, _ = await org_store.for_user(conn, user_id, 10_000, 0)
            teams, _ = await team_store.for_user(conn, user_id, 10_000, 0)
        subject = f"user:{user_id}"
        scopes = [(o["id"], "organization", o["id"], None, o["role"]) for o in orgs]
        scopes += [(t["organization_id"], "team", t["id"], t["id"], t["role"]) for t in teams]
        out = []
        for org_id, kind, resource_id, team_id, role in scopes:
            await self.ensure(org_id)
            actions = self.evaluator.permissions(
                str(org_id),
                subject,
                kind,
                str(resource_id),
                None if team_id is None else str(team_id),
                None,
            )
            out.append(
                {
                    "organization_id": org_id,
                    "resource_type": kind,
                    "resource_id": str(resource_id),
                    "team_id": team_id,
                    "role": role,
                    "actions": sorted(actions),
                }
            )
        return out

    def check(
        self, scope: Scope, subject: str, action: str, scopes: list[str] | None = None
    ) -> Any:
        return self.evaluator.check(
            scope.organization_key,
            subject,
            action,
            scope.resource_type,
            scope.resource_id,
            None if scope.team_id is None else str(scope.team_id),
            scopes,
        )

    async def may_grant(
        self, conn: Conn, org_id: UUID, user_id: UUID, entry: dict[str, Any], excluding: str | None
    ) -> None:
        """A user creates or removes an ACL entry only for an action it holds itself.

        ``excluding`` (a removal) names the entry in question: what counts is what the
        user would hold without it. Owners hold every action by role and no entry takes
        ACL management from them, so they may; the owner-only actions are theirs alone.
        """
        member = await org_store.member(conn, org_id, user_id)
        if member is not None and member["role"] == "owner":
            return
        action = entry["action"]
        if action in OWNER_ONLY:
            raise _refused(
                f"only an owner may create or remove an ACL entry for {action!r}",
                "owner_only",
                action,
            )
        kind, resource_id = entry["resource_type"], entry["resource_id"]
        decision = self.evaluator.check(
            str(org_id),
            f"user:{user_id}",
            action,
            kind,
            resource_id,
            resource_id if kind == "team" else None,
            None,
            excluding,
        )
        if not decision.allowed:
            raise _refused(
                f"you may not {action!r} on {kind}:{resource_id} yourself,"
                " so you cannot grant or ungrant it",
                "not_held",
                action,
            )

    async def deny(self, req: Any, route: Any, scope: Scope, decision: Any) -> None:
        """Log a denied decision on a route, then refuse the request."""
        principal = req.principal
        async with self.db.transaction() as conn:
            await acl_store.record_denial(
                conn,
                {
                    "organization_id": scope.organization_id,
                    "actor_id": principal.id,
                    "principal_type": principal.kind,
                    "action": route.permission,
                    "resource": f"{scope.resource_type}:{scope.resource_id}",
                    "reason": decision.reason,
                    "method": route.method,
                    "route": route.path,
                    "request_id": req.request_id,
                },
            )
        error = ApiError.forbidden(f"not allowed to {route.permission} here")
        error.details = {
            "action": route.permission,
            "reason": decision.reason,
            "decided_by": decision.decided_by,
        }
        raise error


def _refused(message: str, reason: str, action: str) -> ApiError:
    error = ApiError.forbidden(message)
    error.details = {"reason": reason, "action": action}
    return error
