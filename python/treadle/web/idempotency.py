"""Idempotency-Key handling, and the request transaction, for every mutating route: a
stage of the HTTP pipeline (it stores and replays whole answers).

Every route that takes an Idempotency-Key runs its handler inside one request transaction
(``Database.request``): its writes commit only after the answer is encoded, so a failure to
encode, or a server error, leaves nothing behind. With a key, that same transaction takes a
PostgreSQL advisory lock on the key (a second request with it meanwhile gets 409; the lock
dies with the transaction, so with the process too) and stores the answer (errors included,
5xx excluded so that a retry may succeed): a crash either loses the change and its answer
together or keeps both, and a retry never runs the handler twice.

A key is scoped to the calling principal and the organization the request acts in (an API
key belongs to one organization; a user's key in one organization is not the same key in
another). A retry gets the stored answer back with ``Idempotent-Replayed: true``; the same key
with another request is 422.

On a route that takes a body, a retry identical, byte for byte, to one this process has
already replayed (same principal, key, method, target, Content-Type, Content-Encoding and
body) is answered by ``early`` before its body is decoded or its scope resolved: both would
come out as they did then. The kernel still authorizes it, in the scope remembered from
then, so a caller whose rights were taken away gets no replay.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from treadle import _core, clock
from treadle.cache import MISSING, TTLCache
from treadle.errors import ApiError
from treadle.services.idempotency import check_same
from treadle.settings import Settings
from treadle.store import idempotency as idem_store
from treadle.store.db import Conn, Database
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Route

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# (subject, key, method, target, Content-Type, Content-Encoding, SHA-256 of the body)
Seen = tuple[str, str, str, str, str | None, str | None, bytes]


@dataclass(frozen=True, slots=True)
class _Replayed:
    """A retry answered from storage here: where it acted, and the stored answer."""

    scope: Any
    stored: dict[str, Any]


# The largest stored answer a process keeps in memory for replays.
CACHED_ANSWER_BYTES = 65_536


class Idempotency:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.keep_seconds = settings.idempotency_keep_seconds
        self.max_body = settings.max_body_bytes
        # Answers are immutable once stored, so a process may keep them a while.
        self.answers: TTLCache[tuple[str, str], dict[str, Any]] = TTLCache(300.0, 50_000)
        self.replayed: TTLCache[Seen, _Replayed] = TTLCache(300.0, 50_000)

    async def early(self, req: Request, route: Route, body: bytes) -> Response | None:
        """The stored answer for a retry identical to one replayed here (``body`` as it
        came), or None to take the full path. Sets ``req.scope``: the caller still has to
        be authorized in it."""
        key = req.headers.get("idempotency-key")
        if not key or req.principal is None:
            return None
        seen: Any = self.replayed.get(_seen(req, key, body))
        if seen is MISSING or seen.stored["expires_at"] <= clock.now():
            return None
        req.scope = seen.scope
        return _response(seen.stored)

    async def run(
        self, req: Request, route: Route, respond: Callable[[], Awaitable[Response]]
    ) -> Response:
        key = req.headers.get("idempotency-key")
        if key is None and req.headers.has("idempotency-key"):
            key = ""  # present but not readable as text: refused below, never ignored
        if key is None:
            if route.idempotent == "required":
                raise ApiError(
                    "idempotency_key_required",
                    "this route needs an Idempotency-Key header: a unique value per operation",
                )
            async with self.db.request() as tx:
                response = await respond()
                if response.status >= 500:
                    tx.rollback()
            return response
        if not _KEY.match(key):
            raise ApiError.validation(
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
                "header.Idempotency-Key",
            )
        principal = req.principal.subject
        if req.scope is not None:
            principal = f"{principal}@{req.scope.organization_key}"
        target = req.path + ("?" + req.query_string if req.query_string else "")
        body = await req.body(self.max_body)
        # A raw body's bytes are the request (a telemetry batch): no canonical form, which
        # would parse the whole body once more.
        fingerprint = _core.fingerprint(
            req.method,
            target,
            body,
            req.headers.get("content-type"),
            canonical=route.raw_body is None,
        )
        req.idempotency = (key, fingerprint)
        stored = self._cached(principal, key)
        # A raw body route (a telemetry batch) is seldom retried: it looks only once, under
        # the lock, where the look shares the lock's round trip.
        if stored is None and route.raw_body is None:
            async with self.db.committed() as conn:
                stored = await self._load(conn, principal, key)
        if stored is not None:
            replay = _replay(stored, fingerprint)
            # The routes whose retries the kernel asks ``early``, for answers kept in memory.
            if route.body is not None and len(stored["body"]) <= CACHED_ANSWER_BYTES:
                self.replayed.put(_seen(req, key, body), _Replayed(req.scope, stored))
            return replay
        async with self.db.request() as tx:
            # BEGIN, the key's lock and a second look (it may have finished between our
            # first look and taking the lock): one round trip.
            locked, stored = await idem_store.lock_and_get(tx.pipeline(), principal, key)
            if stored is not None:
                # Answered, whoever holds the lock now (another retry of it).
                return _replay(self._keep(principal, key, stored), fingerprint)
            if not locked:
                raise ApiError(
                    "idempotency_in_flight",
                    "a request with this Idempotency-Key is still running; retry shortly",
                    retry_after=1,
                )
            response = await respond()
            if response.status >= 500:
                tx.rollback()
            elif response.stream is None:
                assert tx.conn is not None
                await self._store(tx.conn, principal, key, fingerprint, response)
        return response

    def _cached(self, principal: str, key: str) -> dict[str, Any] | None:
        cached: Any = self.answers.get((principal, key))
        if cached is not MISSING and cached["expires_at"] > clock.now():
            return cached  # type: ignore[no-any-return]
        return None

    async def _load(self, conn: Conn, principal: str, key: str) -> dict[str, Any] | None:
        row = await idem_store.get(conn, principal, key)
        return None if row is None else self._keep(principal, key, row)

    def _keep(self, principal: str, key: str, row: dict[str, Any]) -> dict[str, Any]:
        # Large answers (a batch of 1,000 jobs) are read from PostgreSQL again rather than
        # kept: 50,000 of them would not fit in memory.
        if len(row["body"]) <= CACHED_ANSWER_BYTES:
            self.answers.put((principal, key), row)
        return row

    async def _store(
        self, conn: Conn, principal: str, key: str, fingerprint: str, response: Response
    ) -> None:
        content_type = dict(response.headers).get("content-type", "application/json")
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


def _seen(req: Request, key: str, body: bytes) -> Seen:
    headers = req.headers
    return (
        req.principal.subject,
        key,
        req.method,
        req.path + ("?" + req.query_string if req.query_string else ""),
        headers.get("content-type"),
        headers.get("content-encoding"),
        hashlib.sha256(body).digest(),
    )


def _replay(stored: dict[str, Any], fingerprint: str) -> Response:
    check_same(stored["fingerprint"], fingerprint)
    return _response(stored)


def _response(stored: dict[str, Any]) -> Response:
    return Response(
        stored["status"],
        bytes(stored["body"]),
        [("idempotent-replayed", "true")],
        content_type=stored["content_type"],
    )
