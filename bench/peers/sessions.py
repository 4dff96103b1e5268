"""How the FastAPI peer authenticates ``GET /v1/me`` as treadle does.

The access token is the HS256 JWT treadle signs (``treadle.services.sessions``), verified
with PyJWT under the key treadle derives from its ``secret_key``. The session and user
behind it come from treadle's own tables, either

- ``SelectSessions``: one ``SELECT`` per request, sessions joined to users; or
- ``CachedSessions``: per-process caches of the session and the user, as treadle keeps
  them: a 30 s time-to-live, an entry dropped when treadle publishes ``session:<id>`` or
  ``user:<id>`` on its invalidation channel (``treadle.bus.invalidation``), everything
  dropped whenever the subscription is (re)made. A revoked session is refused as soon as
  the message arrives, which is before treadle answers the logout.

Both apply treadle's checks in treadle's order, with its messages: the token, then the
session (exists, belongs to the token's subject, not revoked), then the user (not deleted).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol
from uuid import UUID

import blake3
import jwt
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from redis.exceptions import RedisError

# treadle.services.sessions: derive_key("treadle 2026 access-token signing", secret).
KEY_CONTEXT = "treadle 2026 access-token signing"
# Seconds of clock skew treadle allows on exp and nbf.
LEEWAY = 5
CACHE_TTL = 30.0
MAX_ENTRIES = 100_000
# treadle.store.users.PUBLIC, less what GET /v1/me never shows.
USER_COLUMNS = (
    "u.id, u.email, u.display_name, u.is_platform_admin, u.email_verified_at,"
    " u.created_at, u.updated_at"
)

Row = dict[str, Any]
Conn = psycopg.AsyncConnection[Row]


class PeerError(Exception):
    """A refusal, answered in treadle's error envelope."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    @classmethod
    def unauthenticated(cls, message: str) -> PeerError:
        return cls(401, "unauthenticated", message, {"www-authenticate": "Bearer"})

    @classmethod
    def unavailable(cls) -> PeerError:
        return cls(
            503, "unavailable", "the database is unavailable; retry shortly", {"retry-after": "2"}
        )


def signing_key(secret: str) -> bytes:
    return blake3.blake3(secret.encode(), derive_key_context=KEY_CONTEXT).digest()


def bearer_token(header: str | None) -> str:
    if not header:
        raise PeerError.unauthenticated("send Authorization: Bearer <access token or API key>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise PeerError.unauthenticated("Authorization must be 'Bearer <access token or API key>'")
    return token.strip()


def subject(token: str, key: bytes) -> tuple[str, str]:
    """The token's (session id, user id), or the refusal treadle gives."""
    try:
        claims = jwt.decode(
            token, key, algorithms=["HS256"], leeway=LEEWAY, options={"require": ["exp"]}
        )
        session_id, user_id = claims["sid"], claims["sub"]
    except jwt.ExpiredSignatureError:
        raise PeerError.unauthenticated("access token has expired; refresh it") from None
    except (jwt.InvalidTokenError, KeyError, TypeError):
        raise PeerError.unauthenticated("access token is not valid") from None
    if not isinstance(session_id, str) or not isinstance(user_id, str):
        raise PeerError.unauthenticated("access token is not valid")
    return session_id, user_id


def pool(url: str) -> AsyncConnectionPool[Conn]:
    # treadle's pool (treadle.store.db.Database): the comparison is about the framework.
    return AsyncConnectionPool(
        url,
        min_size=2,
        max_size=10,
        kwargs={"row_factory": dict_row, "autocommit": True},
        open=False,
        timeout=5.0,
    )


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


class Sessions(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def user(self, session_id: str, user_id: str) -> Row: ...


class SelectSessions:
    """The session and its user in one query per request."""

    QUERY = (
        f"SELECT s.user_id::text AS session_user_id, s.revoked_at, {USER_COLUMNS}"
        " FROM sessions s LEFT JOIN users u ON u.id = s.user_id AND u.deleted_at IS NULL"
        " WHERE s.id = %s"
    )

    def __init__(self, database_url: str) -> None:
        self.pool = pool(database_url)

    async def start(self) -> None:
        await self.pool.open(wait=True, timeout=10.0)

    async def stop(self) -> None:
        await self.pool.close(timeout=5.0)

    async def user(self, session_id: str, user_id: str) -> Row:
        ident = _uuid(session_id)
        row = None
        if ident is not None:
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(self.QUERY, (ident,))
                    row = await cur.fetchone()
            except psycopg.OperationalError:
                raise PeerError.unavailable() from None
        if row is None or row["session_user_id"] != user_id or row["revoked_at"] is not None:
            raise PeerError.unauthenticated("the session has ended; sign in again")
        if row["id"] is None:
            raise PeerError.unauthenticated("the account no longer exists")
        return row


class TTLCache:
    """treadle.cache.TTLCache, cut down: a drop bumps the generation so that a fill which
    read the database before the drop does not land."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[float, Row | None]] = {}
        self.generation = 0

    def get(self, key: str) -> tuple[bool, Row | None]:
        hit = self.data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: Row | None, generation: int) -> None:
        if generation != self.generation:
            return
        if len(self.data) >= MAX_ENTRIES:
            self.data.clear()
        self.data[key] = (time.monotonic() + CACHE_TTL, value)

    def drop(self, key: str) -> None:
        self.generation += 1
        self.data.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self.data.clear()


class CachedSessions:
    """The session and the user from per-process caches, invalidated by treadle's messages."""

    # ::text: the id compares with the token's claim as it is, with no UUID per request.
    SESSION = "SELECT user_id::text AS user_id, revoked_at FROM sessions WHERE id = %s"
    USER = f"SELECT {USER_COLUMNS} FROM users u WHERE u.id = %s AND u.deleted_at IS NULL"

    def __init__(self, database_url: str, redis_url: str, redis_prefix: str) -> None:
        self.pool = pool(database_url)
        self.redis = Redis.from_url(redis_url)
        self.channel = f"{redis_prefix}invalidate"
        self.caches = {"session": TTLCache(), "user": TTLCache()}
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pool.open(wait=True, timeout=10.0)
        self._task = asyncio.create_task(self._listen())
        # Serving before the subscription holds could miss a revocation.
        await asyncio.wait_for(self.subscribed.wait(), 10.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.redis.aclose()
        await self.pool.close(timeout=5.0)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                for cache in self.caches.values():
                    cache.clear()
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        kind, _, ident = message["data"].decode().partition(":")
                        cache = self.caches.get(kind)
                        if cache is not None:
                            cache.drop(ident)
            except (RedisError, OSError):
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _load(self, kind: str, query: str, key: str) -> Row | None:
        cache = self.caches[kind]
        found, value = cache.get(key)
        if found:
            return value
        generation = cache.generation
        ident = _uuid(key)
        if ident is not None:
            try:
                async with self.pool.connection() as conn:
                    cur = await conn.execute(query, (ident,))
                    value = await cur.fetchone()
            except psycopg.OperationalError:
                raise PeerError.unavailable() from None
        cache.put(key, value, generation)
        return value

    async def user(self, session_id: str, user_id: str) -> Row:
        session = await self._load("session", self.SESSION, session_id)
        if session is None or session["user_id"] != user_id or session["revoked_at"] is not None:
            raise PeerError.unauthenticated("the session has ended; sign in again")
        user = await self._load("user", self.USER, user_id)
        if user is None:
            raise PeerError.unauthenticated("the account no longer exists")
        return user
