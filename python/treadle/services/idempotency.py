"""Idempotency-Key handling for every mutating route, in the kernel's pipeline.

A key is scoped to the calling principal and the organization the request acts in (an
API key belongs to one organization; a user's key in one organization is not the same
key in another). The
first request with a key takes a lock in Redis that every process sees, runs, and stores
its answer (errors included, 5xx excluded so that a retry may succeed) in PostgreSQL for
the retention window; a retry gets that answer back with ``Idempotent-Replayed: true``.
The same key with another request is 422; while the first still runs, 409.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from treadle import _core, clock
from treadle.cache import MISSING, TTLCache
from treadle.settings import Settings
from treadle.store import idempotency as idem_store
from treadle.store.db import Database
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Route

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# Deletes the lock only if this request still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Idempotency:
    def __init__(self, settings: Settings, db: Database, redis: Redis) -> None:
        self.db = db
        self.redis = redis
        self.prefix = f"{settings.redis_prefix}idem:"
        self.keep_seconds = settings.idempotency_keep_seconds
        self.lock_ms = int(settings.idempotency_lock_seconds * 1000)
        self.max_body = settings.max_body_bytes
        # Answers are immutable once stored, so a process may keep them a while.
        self.answers: TTLCache[tuple[str, str], dict[str, Any]] = TTLCache(300.0, 50_000)

    async def run(
        self, req: Request, route: Route, respond: Callable[[], Awaitable[Response]]
    ) -> Response:
        key = req.headers.get("idempotency-key")
        if key is None and req.headers.has("idempotency-key"):
            key = ""  # present but not readable as text: refused below, never ignored
        if key is None:
            if route.idempotent == "required":
                raise ApiError(
                    428,
                    "idempotency_key_required",
                    "this route needs an Idempotency-Key header: a unique value per operation",
                )
            return await respond()
        if not _KEY.match(key):
            raise ApiError.validation(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
                "header.Idempotency-Key",
            )
        principal = req.principal.subject
        if req.scope is not None:
            principal = f"{principal}@{req.scope.organization_id}"
        target = req.path + ("?" + req.query_string if req.query_string else "")
        body = await req.body(self.max_body)
        fingerprint = _core.fingerprint(req.method, target, body, req.headers.get("content-type"))
        req.idempotency = (key, fingerprint)
        stored = await self._stored(principal, key)
        if stored is not None:
            return _replay(stored, fingerprint)
        lock, token = f"{self.prefix}{principal}:{key}", _core.random_token(16)
        try:
            acquired = await self.redis.set(lock, token, nx=True, px=self.lock_ms)
        except (RedisError, OSError):
            raise ApiError.unavailable("idempotency locks are unavailable; retry shortly") from None
        if not acquired:
            stored = await self._stored(principal, key)
            if stored is not None:
                return _replay(stored, fingerprint)
            raise ApiError(
                409,
                "idempotency_in_flight",
                "a request with this Idempotency-Key is still running; retry shortly",
                headers=[("retry-after", "1")],
            )
        try:
            # It may have finished between our first look and taking the lock.
            stored = await self._stored(principal, key)
            if stored is not None:
                return _replay(stored, fingerprint)
            response = await respond()
            if response.status < 500 and response.stream is None:
                await self._store(principal, key, fingerprint, response)
            return response
        finally:
            # If Redis is away, the lock expires on its own.
            with contextlib.suppress(RedisError, OSError):
                await self.redis.eval(_RELEASE, 1, lock, token)

    async def _stored(self, principal: str, key: str) -> dict[str, Any] | None:
        cached: Any = self.answers.get((principal, key))
        if cached is not MISSING and cached["expires_at"] > clock.now():
            return cached  # type: ignore[no-any-return]
        async with self.db.connection() as conn:
            row = await idem_store.get(conn, principal, key)
        if row is not None:
            self.answers.put((principal, key), row)
        return row

    async def _store(self, principal: str, key: str, fingerprint: str, response: Response) -> None:
        content_type = dict(response.headers).get("content-type", "application/json")
        async with self.db.transaction() as conn:
            await idem_store.put(
                conn,
                principal,
                key,
                fingerprint,
                response.status,
                response.body,
                content_type,
                self.keep_seconds,
            )


def check_same(stored_fingerprint: str, fingerprint: str) -> None:
    """422 unless the request is the one first sent with this Idempotency-Key."""
    if not _core.constant_time_eq(stored_fingerprint.encode(), fingerprint.encode()):
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )


def _replay(stored: dict[str, Any], fingerprint: str) -> Response:
    check_same(stored["fingerprint"], fingerprint)
    return Response(
        stored["status"],
        bytes(stored["body"]),
        [("idempotent-replayed", "true")],
        content_type=stored["content_type"],
    )
