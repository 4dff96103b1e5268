"""Edge agents: enrolled with a single-use token, then known by their credential.

An admin makes an enrollment (a token shown once, stored as its keyed hash, expiring). The
agent trades it, with no other credential, for an API key of the organization that names
the agent and may only ingest telemetry and read its policy (``EDGE_AGENT_SCOPES``).
Rotation and disabling are that key's: a new secret with the old one alive for an overlap,
or the key revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from treadle import _core, clock
from treadle.bus.invalidation import Invalidator
from treadle.cache import MISSING, TTLCache
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.api_keys import ApiKeys
from treadle.services.orgs import SETTINGS_CHANGED
from treadle.services.principal import Actor, Principal
from treadle.store import edge_agents as agent_store
from treadle.store import orgs as org_store
from treadle.store.db import Database

Row = dict[str, Any]
TOKEN_PREFIX = "tdl_enroll_"
# How long a process trusts a policy it read, should an invalidation message be lost.
POLICY_SECONDS = 60.0
# What an organization's settings say when they say nothing of telemetry.
DEFAULT_POLICY: Row = {
    "sampling_rate": 1.0,
    "max_batch_events": 1000,
    "max_batch_bytes": 1_048_576,
    "allowed_types": [],
    "flush_interval_seconds": 10,
}


class EdgeAgents:
    def __init__(self, db: Database, bus: Invalidator, api_keys: ApiKeys, hash_key: bytes) -> None:
        self.db = db
        self.api_keys = api_keys
        self.hash_key = hash_key
        # Each organization's policy and its ETag, read on every ingest and poll: kept,
        # and dropped in every process when the settings change.
        self._policies: TTLCache[str, tuple[Row, str]] = TTLCache(POLICY_SECONDS)
        bus.on(SETTINGS_CHANGED, self._policies.drop, self._policies.clear)

    def _hash(self, token: str) -> str:
        return _core.keyed_hash(self.hash_key, token.encode())

    async def create_enrollment(
        self, actor: Actor, org_id: UUID, name: str, expires_in: int
    ) -> Row:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db.transaction() as conn:
            row = await agent_store.insert_enrollment(
                conn,
                {
                    "id": uuid.uuid4(),
                    "organization_id": org_id,
                    "token_hash": self._hash(token),
                    "name": name,
                    "created_by": actor.signed_in.account,
                    "expires_in": expires_in,
                },
            )
            await audit.record(
                conn,
                actor,
                org_id,
                "edge_agent.enrollment.create",
                "edge_agent_enrollment",
                row["id"],
                after={"name": name, "expires_at": row["expires_at"]},
            )
        return {**row, "token": token}

    async def enroll(self, actor: Actor, token: str, name: str, version: str) -> Row:
        """The agent and its credential for an unused, unexpired token (401 otherwise:
        which of unknown, used or expired it was is not said)."""
        async with self.db.transaction() as conn:
            enrollment = await agent_store.take_enrollment(conn, self._hash(token))
            if enrollment is None:
                raise ApiError.unauthenticated(
                    "this enrollment token is not valid: it is unknown, used or expired;"
                    " ask an admin for a new one"
                )
            org_id = enrollment["organization_id"]
            agent_id = uuid.uuid4()
            name = name or enrollment["name"] or f"agent-{agent_id.hex[:8]}"
            await agent_store.insert(
                conn,
                {
                    "id": agent_id,
                    "organization_id": org_id,
                    "name": name,
                    "version": version,
                    "enrollment_id": enrollment["id"],
                },
            )
            credential = await self.api_keys.issue_for_agent(
                conn, org_id, agent_id, name, enrollment["created_by"]
            )
            agent = await agent_store.get(conn, agent_id)
            assert agent is not None
            await audit.record(
                conn,
                actor,
                org_id,
                "edge_agent.enroll",
                "edge_agent",
                agent_id,
                after={"name": name, "version": version, "enrollment_id": enrollment["id"]},
                as_user=enrollment["created_by"],
            )
        return {"agent": agent, "credential": credential}

    async def get(self, agent_id: UUID) -> Row:
        async with self.db.connection() as conn:
            agent = await agent_store.get(conn, agent_id)
        if agent is None:
            raise ApiError.not_found(f"no edge agent with id {agent_id}")
        return agent

    async def in_org(
        self, org_id: UUID, limit: int, before: tuple[datetime, UUID] | None
    ) -> list[Row]:
        async with self.db.connection() as conn:
            return await agent_store.in_org(conn, org_id, limit, before)

    async def rotate(self, actor: Actor, agent_id: UUID, overlap_seconds: int) -> Row:
        agent = await self._active(agent_id)
        credential = await self.api_keys.replace_secret(actor, agent["api_key_id"], overlap_seconds)
        return {"agent": agent, "credential": credential}

    async def disable(self, actor: Actor, agent_id: UUID) -> Row:
        """The agent disabled and its credential revoked: nothing it sends is taken. Both
        in the request's transaction (the route's), so neither happens without the other."""
        agent = await self._active(agent_id)
        await self.api_keys.change(
            actor, agent["api_key_id"], "revoke", {"revoked_at": clock.now()}
        )
        async with self.db.transaction() as conn:
            await agent_store.set_status(conn, agent_id, "disabled")
            await audit.record(
                conn, actor, agent["organization_id"], "edge_agent.disable", "edge_agent", agent_id
            )
            after = await agent_store.get(conn, agent_id)
        assert after is not None
        return after

    async def _active(self, agent_id: UUID) -> Row:
        agent = await self.get(agent_id)
        if agent["status"] != "active" or agent["api_key_id"] is None:
            raise ApiError.conflict(
                "this edge agent is disabled; enroll a new one", status=agent["status"]
            )
        return agent

    async def policy(self, principal: Principal) -> tuple[Row, str]:
        """The calling agent's policy and its ETag."""
        agent_of(principal)
        assert principal.organization_id is not None
        return await self.policy_of_org(principal.organization_id)

    async def policy_of_org(self, org_id: UUID) -> tuple[Row, str]:
        key = str(org_id)
        cached = self._policies.get(key)
        if cached is not MISSING:
            return cached  # type: ignore[return-value]

        async def load() -> tuple[Row, str]:
            async with self.db.committed() as conn:
                org = await org_store.get(conn, org_id)
            assert org is not None
            policy = policy_of(org["settings"])
            digest = hashlib.blake2b(msgspec.json.encode(policy), digest_size=12).hexdigest()
            return policy, f'"{digest}"'

        return await self._policies.load(key, load)


def policy_of(settings: Row) -> Row:
    return {**DEFAULT_POLICY, **(settings.get("telemetry") or {})}


def agent_of(principal: Principal) -> UUID:
    """The edge agent a credential names; 403 for any other caller."""
    record = principal.record
    agent_id: UUID | None = record.get("edge_agent_id") if record else None
    if agent_id is None:
        raise ApiError.forbidden("only an edge agent's credential may do this")
    return agent_id
