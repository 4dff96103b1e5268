"""API keys: issued once, stored as keyed hashes, verified from an in-process Rust cache.

A change to a key (revoke, disable, rotate, roll, new scopes) publishes the hashes of its
secrets, so every process drops them at once; usage is counted in memory and written in
batches every second.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from treadle import _core, clock
from treadle.background import Background
from treadle.bus.invalidation import Invalidator
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.principal import Actor, Principal
from treadle.store import api_keys as key_store
from treadle.store import usage as usage_store
from treadle.store.db import Conn, Database

log = logging.getLogger("treadle.api_keys")

Row = dict[str, Any]
CACHE_SECONDS = 30.0
NEGATIVE_CACHE_SECONDS = 5.0
FLUSH_SECONDS = 1.0
DEFAULT_GRACE_SECONDS = 24 * 3600
# The usage metric of requests made with a key, recorded once per key and flush.
API_REQUESTS = "api.requests"
# What an edge agent's credential may do, and nothing else.
EDGE_AGENT_SCOPES = ("telemetry.ingest", "edge_agents.policy")
# Workers whose API key carries this scope claim jobs of every organization.
ANY_ORGANIZATION = "jobs:work:any"


def grantable(actor: Actor, scopes: Iterable[str]) -> None:
    """Refuse to hand ``scopes`` to a live secret the actor may not grant.

    Every path that makes a key usable with these scopes (create, patch, enable, rotate,
    roll) comes through here, so none of them can be a way around the others.
    """
    # A key that claims every organization's jobs is the platform operator's to hand out.
    if ANY_ORGANIZATION in scopes and not actor.signed_in.is_platform_admin:
        error = ApiError.forbidden(f"only a platform admin may grant the {ANY_ORGANIZATION} scope")
        error.details = {"reason": "scope_not_grantable", "scope": ANY_ORGANIZATION}
        raise error


def _principal(key: Row) -> Principal:
    return Principal(
        id=str(key["id"]),
        kind="api_key",
        user_id=None,
        session_id=None,
        email="",
        is_platform_admin=False,
        organization_id=key["organization_id"],
        scopes=tuple(key["scopes"]),
        rate_limit_policy=key["rate_limit_policy"],
        record=key,
        organization_key=str(key["organization_id"]),
    )


def public_key(row: Row) -> Row:
    now = clock.now()
    if row["revoked_at"] is not None:
        status = "revoked"
    elif row["disabled_at"] is not None:
        status = "disabled"
    elif row["expires_at"] is not None and row["expires_at"] <= now:
        status = "expired"
    else:
        status = "active"
    fields = (
        "id",
        "organization_id",
        "name",
        "environment",
        "display_prefix",
        "expires_at",
        "rate_limit_policy",
        "created_by",
        "created_at",
        "updated_at",
        "last_used_at",
    )
    return {k: row[k] for k in fields} | {"scopes": list(row["scopes"]), "status": status}


class ApiKeys(Background):
    def __init__(self, db: Database, bus: Invalidator, hash_key: bytes) -> None:
        self.db = db
        self.bus = bus
        self.hash_key = hash_key
        self.cache = _core.KeyCache(CACHE_SECONDS, NEGATIVE_CACHE_SECONDS, 100_000)
        bus.on("apikey", self.cache.invalidate, self.cache.clear)
        # (key id as text, day number since the epoch, route) -> requests; key -> last use
        # (UNIX time); key -> its record. Keyed by text: Python keeps a str's hash, while a
        # UUID hashes in Python code, three times a request.
        self._usage: Counter[tuple[str, int, str]] = Counter()
        self._last_used: dict[str, float] = {}
        self._records: dict[str, Row] = {}

    def hash(self, raw: str) -> str:
        return _core.keyed_hash(self.hash_key, raw.encode())

    # -- authenticating ----------------------------------------------------------------

    async def authenticate(self, raw: str) -> Principal:
        if not _core.api_key_check(raw):
            raise ApiError.unauthenticated("API key is malformed; copy it again")
        key_hash = self.hash(raw)
        hit, cached = self.cache.get(key_hash)
        if not hit:
            generation = self.cache.generation
            async with self.db.committed() as conn:
                record = await key_store.by_hash(conn, key_hash)
            if record is None:
                self.cache.put_missing(key_hash, generation)
            else:
                # Built once per fill, not per request: every request with the key shares it.
                cached = _principal(record)
                self.cache.put(key_hash, cached, generation)
        if cached is None:
            raise ApiError.unauthenticated("API key is not valid")
        principal: Principal = cached  # type: ignore[assignment]
        key: Row = principal.record  # type: ignore[assignment]
        now = clock.now()
        if key["revoked_at"] is not None:
            raise ApiError.unauthenticated("API key was revoked")
        if key["disabled_at"] is not None:
            raise ApiError.unauthenticated("API key is disabled; enable it to use it again")
        if key["expires_at"] is not None and key["expires_at"] <= now:
            raise ApiError.unauthenticated("API key has expired")
        if key["secret_expires_at"] is not None and key["secret_expires_at"] <= now:
            raise ApiError.unauthenticated("API key was rotated; use the new key")
        return principal

    # -- usage -------------------------------------------------------------------------

    def count(self, key: Principal, route: str) -> None:
        """Count one request of an authenticated key in memory; ``flush`` writes the
        counts in one statement."""
        now = time.time()
        self._usage[(key.id, int(now) // 86400, route)] += 1
        self._last_used[key.id] = now
        self._records[key.id] = key.record  # type: ignore[assignment]

    async def flush(self) -> None:
        usage, self._usage = self._usage, Counter()
        last_used, self._last_used = self._last_used, {}
        if not usage:
            return
        epoch = date(1970, 1, 1)
        records = self._records
        rows = [
            (records[key]["id"], epoch + timedelta(days=day), route, n)
            for (key, day, route), n in usage.items()
        ]
        touched = {
            records[key]["id"]: datetime.fromtimestamp(at, UTC) for key, at in last_used.items()
        }
        per_key: Counter[str] = Counter()
        for (key, _, _), n in usage.items():
            per_key[key] += n
        metered = [
            {
                "organization_id": records[key]["organization_id"],
                "principal_id": f"api_key:{key}",
                "api_key_id": records[key]["id"],
                "metric": API_REQUESTS,
                "quantity": n,
                "cost": 0,
            }
            for key, n in per_key.items()
        ]
        try:
            async with self.db.transaction() as conn:
                await key_store.add_usage(conn, rows)
                await key_store.touch(conn, touched)
                await usage_store.insert(conn, metered)
        except (psycopg.Error, ApiError):
            # Keep the counts for the next flush rather than lose them.
            self._usage.update(usage)
            for ident, at in last_used.items():
                self._last_used[ident] = max(at, self._last_used.get(ident, at))

    async def stop(self) -> None:
        await super().stop()
        await self.flush()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                await self.flush()
            except Exception:
                log.exception("usage flush failed")

    async def usage(self, key_id: UUID, days: int) -> Row:
        since = (clock.now() - timedelta(days=days - 1)).date()
        async with self.db.connection() as conn:
            rows = await key_store.usage(conn, key_id, since)
        by_day: Counter[Any] = Counter()
        by_route: Counter[str] = Counter()
        for row in rows:
            by_day[row["day"]] += row["requests"]
            by_route[row["route"]] += row["requests"]
        return {
            "key_id": key_id,
            "since": since,
            "total": sum(by_day.values()),
            "by_day": [{"day": d, "requests": n} for d, n in sorted(by_day.items())],
            "by_route": [{"route": r, "requests": n} for r, n in by_route.most_common()],
        }

    # -- managing ----------------------------------------------------------------------

    async def create(self, actor: Actor, org_id: UUID, fields: Row) -> Row:
        grantable(actor, fields["scopes"])
        raw, prefix = _core.api_key_generate(fields.pop("environment"))
        key_id = uuid.uuid4()
        key = {
            "id": key_id,
            "organization_id": org_id,
            "display_prefix": prefix,
            "environment": raw.split("_")[1],
            "created_by": actor.signed_in.account,
            **fields,
        }
        async with self.db.transaction() as conn:
            await key_store.insert(conn, key)
            await key_store.add_secret(conn, self.hash(raw), key_id)
            row = await key_store.get(conn, key_id)
            assert row is not None
            await audit.record(
                conn, actor, org_id, "api_key.create", "api_key", key_id, None, public_key(row)
            )
        return {**public_key(row), "key": raw}

    async def issue_for_agent(
        self, conn: Conn, org_id: UUID, agent_id: UUID, name: str, created_by: UUID
    ) -> Row:
        """An edge agent's credential, in the caller's transaction: a key of the
        organization that may only ingest telemetry and read its policy, naming the agent."""
        raw, prefix = _core.api_key_generate("live")
        key_id = uuid.uuid4()
        await key_store.insert(
            conn,
            {
                "id": key_id,
                "organization_id": org_id,
                "name": f"edge agent: {name}",
                "environment": "live",
                "display_prefix": prefix,
                "scopes": list(EDGE_AGENT_SCOPES),
                "expires_at": None,
                "rate_limit_policy": None,
                "created_by": created_by,
                "edge_agent_id": agent_id,
            },
        )
        await key_store.add_secret(conn, self.hash(raw), key_id)
        row = await key_store.get(conn, key_id)
        assert row is not None
        return {**public_key(row), "key": raw}

    async def get(self, key_id: UUID) -> Row:
        async with self.db.connection() as conn:
            row = await key_store.get(conn, key_id)
        if row is None:
            raise ApiError.not_found(f"no API key with id {key_id}")
        return public_key(row)

    async def in_org(self, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            rows, total = await key_store.in_org(conn, org_id, limit, offset)
        return [public_key(r) for r in rows], total

    async def change(self, actor: Actor, key_id: UUID, action: str, changes: Row) -> Row:
        """Apply ``changes`` to a live key, audit them, and drop the key from every cache."""
        async with self.db.transaction() as conn:
            before = await key_store.get(conn, key_id, lock=True)
            if before is None:
                raise ApiError.not_found(f"no API key with id {key_id}")
            if before["revoked_at"] is not None:
                raise ApiError.conflict("this API key is revoked; create a new one")
            if "scopes" in changes and before["edge_agent_id"] is not None:
                raise ApiError.conflict(
                    "an edge agent's credential may only ingest and read its policy;"
                    " its scopes do not change"
                )
            if "scopes" in changes:
                grantable(actor, changes["scopes"])
            elif action == "enable":
                grantable(actor, before["scopes"])
            after = await key_store.update(conn, key_id, changes) if changes else before
            assert after is not None
            hashes = await key_store.secret_hashes(conn, key_id)
            await audit.record(
                conn,
                actor,
                before["organization_id"],
                f"api_key.{action}",
                "api_key",
                key_id,
                public_key(before),
                public_key(after),
            )
        await self._forget(hashes)
        return public_key(after)

    async def replace_secret(self, actor: Actor, key_id: UUID, grace_seconds: float) -> Row:
        """A new secret for the key; the old ones live ``grace_seconds`` more (0: die now)."""
        raw = ""
        async with self.db.transaction() as conn:
            key = await key_store.get(conn, key_id, lock=True)
            if key is None:
                raise ApiError.not_found(f"no API key with id {key_id}")
            if key["revoked_at"] is not None:
                raise ApiError.conflict("this API key is revoked; create a new one")
            # A new secret is a new grant of the key's scopes.
            grantable(actor, key["scopes"])
            hashes = await key_store.secret_hashes(conn, key_id)
            await key_store.expire_secrets(conn, key_id, grace_seconds)
            raw, _ = _core.api_key_generate(key["environment"])
            await key_store.add_secret(conn, self.hash(raw), key_id)
            action = "rotate" if grace_seconds else "roll"
            await audit.record(
                conn,
                actor,
                key["organization_id"],
                f"api_key.{action}",
                "api_key",
                key_id,
                None,
                {"grace_seconds": grace_seconds},
            )
        await self._forget(hashes)
        return {
            **public_key(key),
            "key": raw,
            "previous_key_valid_until": clock.now() + timedelta(seconds=grace_seconds),
        }

    async def _forget(self, hashes: list[str]) -> None:
        for key_hash in hashes:
            await self.bus.publish("apikey", key_hash)
