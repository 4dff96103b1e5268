"""Rate limits: GCRA per (policy, subject), decided in Rust or in one Redis round trip.

Users get ``rate_limit_user``; API keys get the policy named in their settings (looked up in
their organization's settings) or ``rate_limit_api_key``. Requests without credentials get
``rate_limit_anonymous`` per client address. Responses carry the IETF ``RateLimit`` and
``RateLimit-Policy`` fields; a refusal is 429 with ``Retry-After``.

With shared limits and Redis unreachable, each process falls back to its own in-process
limits rather than refusing every request, and says so with ``RateLimit-Mode: local``; it
tries Redis again after ``RETRY_SHARED_SECONDS`` and goes back to shared limits by itself.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from redis.exceptions import NoScriptError

from treadle import _core
from treadle.bus.invalidation import Invalidator
from treadle.bus.redis import UNAVAILABLE, Client
from treadle.cache import MISSING, TTLCache
from treadle.errors import ApiError
from treadle.services.orgs import SETTINGS_CHANGED
from treadle.services.principal import Principal
from treadle.settings import Settings, parse_rate
from treadle.store import orgs as org_store
from treadle.store.db import Database

Headers = list[tuple[str, str]]
# While Redis is unreachable, ask it again at most this often (each try can cost a timeout).
RETRY_SHARED_SECONDS = 1.0
LOCAL_MODE = ("ratelimit-mode", "local")


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    limit: int
    period: int
    header: str = field(init=False)

    def __post_init__(self) -> None:
        # The RateLimit-Policy value, built once: it is sent with every answer.
        object.__setattr__(self, "header", f'"{self.name}";q={self.limit};w={self.period}')


class RateLimits:
    def __init__(self, settings: Settings, db: Database, redis: Client, bus: Invalidator) -> None:
        self.db = db
        self.redis = redis
        self.prefix = f"{settings.redis_prefix}rl:"
        mode = settings.rate_limit_mode
        self.shared = mode == "redis" or (mode == "auto" and settings.workers > 1)
        self.local = _core.RateLimiter()
        self.user = Policy("user", *parse_rate(settings.rate_limit_user))
        self.api_key = Policy("api_key", *parse_rate(settings.rate_limit_api_key))
        self.anonymous = Policy("anonymous", *parse_rate(settings.rate_limit_anonymous))
        self.max_limit, self.max_period = parse_rate(settings.rate_limit_max)
        # monotonic time before which Redis is not asked again (it just failed)
        self._redis_down_until = 0.0
        self._sha: str | None = None
        self._org_policies: TTLCache[str, dict[str, Policy]] = TTLCache(60.0)
        bus.on(SETTINGS_CHANGED, self._org_policies.drop, self._org_policies.clear)

    async def check(self, principal: Principal, cost: int) -> Headers:
        """Charge the principal's own policy and, for a key, its organization's policy
        named ``organization`` if there is one; the headers describe the tighter."""
        policy = await self._policy(principal)
        headers = await self._charge(f"{principal.kind}:{principal.id}", policy, cost)
        if principal.organization_id is not None:
            headers = await self.organization(
                principal.organization_id, cost, headers, principal.organization_key
            )
        return headers

    async def client(self, address: str, cost: int) -> Headers:
        """Charge a request without credentials to its client address."""
        return await self._charge(f"ip:{address}", self.anonymous, cost)

    def check_policies(self, policies: list[dict[str, Any]], path: str) -> None:
        """Refuse an organization-defined policy that allows more than the platform maximum
        (a higher rate, or a bigger burst)."""
        for i, p in enumerate(policies):
            if not self._within_max(p["limit"], p["period_seconds"]):
                raise ApiError.validation(
                    f"rate limit policy {p['name']!r} allows more than the platform maximum"
                    f" of {self.max_limit} per {self.max_period} s",
                    f"{path}[{i}].limit",
                )

    def _within_max(self, limit: int, period: int) -> bool:
        return limit <= self.max_limit and limit * self.max_period <= self.max_limit * period

    def _capped(self, name: str, limit: int, period: int) -> Policy:
        # Policies stored before the maximum existed (or before it was lowered) obey it too.
        if not self._within_max(limit, period):
            limit = min(self.max_limit, self.max_limit * period // self.max_period) or 1
        return Policy(name, limit, period)

    async def organization(
        self, org_id: UUID, cost: int, headers: Headers, key: str | None = None
    ) -> Headers:
        """Charge the organization's own ``organization`` policy, if it has one (users are
        charged once their organization is known, keys at once); the tighter headers.
        ``key`` is ``org_id`` as text, when the caller has it already."""
        key = str(org_id) if key is None else key
        org_policy = (await self._policies(org_id, key)).get("organization")
        if org_policy is None:
            return headers
        org_headers = await self._charge(f"org:{key}", org_policy, cost)
        return org_headers if _remaining(org_headers) < _remaining(headers) else headers

    async def _charge(self, subject: str, policy: Policy, cost: int) -> Headers:
        key = f"{policy.name}:{subject}"
        result = None
        if self.shared and time.monotonic() >= self._redis_down_until:
            result = await self._redis_check(key, policy, cost)
        local = result is None and self.shared
        if result is None:
            result = self.local.check(key, policy.limit, policy.period, cost)
        allowed, limit, remaining, reset, retry = result
        headers = [
            ("ratelimit-policy", policy.header),
            ("ratelimit", f'"{policy.name}";r={remaining};t={math.ceil(reset)}'),
        ]
        if local:
            headers.append(LOCAL_MODE)
        if not allowed:
            wait = max(1, math.ceil(retry))
            error = ApiError.rate_limited(
                f"rate limit {policy.name} ({limit} per {policy.period} s) reached;"
                f" retry in {wait} s",
                wait,
            )
            error.metadata.extend(headers)
            raise error
        return headers

    async def _policy(self, principal: Principal) -> Policy:
        if principal.kind != "api_key" or principal.rate_limit_policy is None:
            return self.api_key if principal.kind == "api_key" else self.user
        policies = await self._policies(
            principal.organization_id,  # type: ignore[arg-type]
            principal.organization_key,
        )
        return policies.get(principal.rate_limit_policy, self.api_key)

    async def _policies(self, org_id: UUID, key: str | None = None) -> dict[str, Policy]:
        key = str(org_id) if key is None else key
        cached = self._org_policies.get(key)
        if cached is not MISSING:
            return cached  # type: ignore[return-value]

        async def load() -> dict[str, Policy]:
            async with self.db.committed() as conn:
                org = await org_store.get(conn, org_id)
            return {
                p["name"]: self._capped(p["name"], p["limit"], p["period_seconds"])
                for p in (org or {}).get("settings", {}).get("rate_limit_policies", [])
            }

        return await self._org_policies.load(key, load)

    async def _redis_check(
        self, key: str, policy: Policy, cost: int
    ) -> tuple[bool, int, int, float, float] | None:
        """The shared decision, or None when Redis cannot be reached."""
        args: list[Any] = [policy.limit, policy.period * 1_000_000, cost]
        try:
            if self._sha is None:
                self._sha = await self.redis.script_load(_core.GCRA_LUA)
            try:
                result = await self.redis.evalsha(self._sha, 1, self.prefix + key, *args)
            except NoScriptError:
                self._sha = await self.redis.script_load(_core.GCRA_LUA)
                result = await self.redis.evalsha(self._sha, 1, self.prefix + key, *args)
        except UNAVAILABLE:
            self._redis_down_until = time.monotonic() + RETRY_SHARED_SECONDS
            return None
        allowed, limit, remaining, reset_us, retry_us = (int(v) for v in result)
        return bool(allowed), limit, remaining, reset_us / 1e6, retry_us / 1e6


def _remaining(headers: Headers) -> int:
    return int(headers[1][1].split(";r=")[1].split(";")[0])
