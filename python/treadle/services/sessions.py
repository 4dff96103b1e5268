"""Sessions: access JWTs, single-use refresh tokens, and authenticating a bearer token.

A request is authenticated in-process: the JWT is verified in the Rust core, and the
session and user behind it come from caches that every revocation invalidates across
processes (see ``treadle.bus.invalidation``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson

from treadle import clock
from treadle._core import TokenError, derive_key, jwt_decode, jwt_encode, keyed_hash, random_token
from treadle.bus.invalidation import Invalidator
from treadle.cache import MISSING, TTLCache
from treadle.errors import ApiError
from treadle.services.principal import Principal
from treadle.settings import Settings
from treadle.store import sessions as session_store
from treadle.store import users as user_store
from treadle.store.db import Conn, Database

ISSUER = "treadle"
# How long a cached session or user may be trusted without an invalidation message.
CACHE_TTL = 30.0
# Seconds an access token is still taken after its exp (clocks of other nodes differ).
JWT_LEEWAY = 5
# How many verified tokens (and built principals) a process keeps.
VERIFIED_MAX = 10_000


def bearer_token(header: str | None) -> str:
    if not header:
        raise ApiError.unauthenticated("send Authorization: Bearer <access token or API key>")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError.unauthenticated("Authorization must be 'Bearer <access token or API key>'")
    return token.strip()


class Sessions:
    def __init__(self, settings: Settings, db: Database, bus: Invalidator) -> None:
        secret = settings.secret_key.encode()
        self.jwt_key = derive_key("treadle 2026 access-token signing", secret)
        self.hash_key = derive_key("treadle 2026 token hashing", secret)
        self.settings = settings
        self.db = db
        self.bus = bus
        # Keyed by the id as a string, as it comes in the token and in invalidations.
        self.session_cache: TTLCache[str, dict[str, Any] | None] = TTLCache(CACHE_TTL)
        self.user_cache: TTLCache[str, dict[str, Any] | None] = TTLCache(CACHE_TTL)
        bus.on("session", self.session_cache.drop, self.session_cache.clear)
        bus.on("user", self.user_cache.drop, self.user_cache.clear)
        # Access tokens that verified, with their expiry, session and user: a client sends
        # the same token on every request until it refreshes, and a hit skips the MAC and
        # the JSON parse. Keyed by the whole token, so only a token that verified can hit;
        # its expiry is checked on every use, revocation as before (the session cache).
        self._verified: dict[str, tuple[float, str, str]] = {}
        # The principal last built for a session, with the cached rows it was built from:
        # reused while the session and user caches hand back those same rows.
        self._principals: dict[str, tuple[object, object, Principal]] = {}

    def hash_token(self, token: str) -> str:
        return keyed_hash(self.hash_key, token.encode())

    async def issue(
        self, conn: Conn, user: dict[str, Any], user_agent: str, ip: str
    ) -> dict[str, Any]:
        """Open a new session for ``user`` and return its first token pair."""
        session_id = uuid.uuid4()
        expires = clock.now() + timedelta(seconds=self.settings.refresh_token_ttl)
        await session_store.create(conn, session_id, user["id"], expires, user_agent, ip)
        return await self._pair(conn, user["id"], session_id)

    async def _pair(self, conn: Conn, user_id: UUID, session_id: UUID) -> dict[str, Any]:
        refresh = random_token(32)
        expires = clock.now() + timedelta(seconds=self.settings.refresh_token_ttl)
        await session_store.add_refresh(conn, self.hash_token(refresh), session_id, expires)
        now = clock.epoch()
        ttl = self.settings.access_token_ttl
        claims = {
            "iss": ISSUER,
            "sub": str(user_id),
            "sid": str(session_id),
            "iat": now,
            "exp": now + ttl,
            "jti": random_token(12),
        }
        return {
            "access_token": jwt_encode(orjson.dumps(claims), self.jwt_key),
            "token_type": "Bearer",
            "expires_in": ttl,
            "refresh_token": refresh,
            "refresh_expires_at": expires,
            "session_id": session_id,
        }

    async def refresh(self, token: str) -> dict[str, Any]:
        """Spend a refresh token for a new pair; a replayed spent token kills its session."""
        async with self.db.transaction() as conn:
            row = await session_store.spend_refresh(conn, self.hash_token(token))
            if row is None:
                raise ApiError.unauthenticated("refresh token is not valid")
            if row["was_used"]:
                revoked = await session_store.revoke(conn, row["session_id"], "refresh_token_reuse")
            elif row["revoked_at"] is not None:
                raise ApiError.unauthenticated("the session of this refresh token has ended")
            elif row["expires_at"] <= clock.now() or row["session_expires_at"] <= clock.now():
                raise ApiError.unauthenticated("refresh token has expired; sign in again")
            else:
                return await self._pair(conn, row["user_id"], row["session_id"])
        # Outside the transaction: the revocation is committed, so tell the others.
        if revoked:
            await self.bus.publish("session", row["session_id"])
        raise ApiError.unauthenticated(
            "refresh token was already used; its session has been revoked, sign in again"
        )

    async def revoke_all(self, conn: Conn, user_id: UUID, reason: str) -> list[UUID]:
        """Revoke every session of a user inside the caller's transaction;
        the caller publishes the returned ids once it has committed."""
        return await session_store.revoke_all(conn, user_id, reason)

    async def announce(self, session_ids: list[UUID], user_id: UUID | None = None) -> None:
        for session_id in session_ids:
            await self.bus.publish("session", session_id)
        if user_id is not None:
            await self.bus.publish("user", user_id)

    async def authenticate(self, token: str) -> Principal:
        now = clock.epoch()
        verified = self._verified.get(token)
        if verified is not None and verified[0] > now - JWT_LEEWAY:
            _, session_id, user_id = verified
        else:
            session_id, user_id = self._verify(token, now)
        session = await self._session(session_id)
        if session is None or session["user_id"] != user_id or session["revoked_at"] is not None:
            raise ApiError.unauthenticated("the session has ended; sign in again")
        user = await self.user(user_id)
        if user is None:
            raise ApiError.unauthenticated("the account no longer exists")
        built = self._principals.get(session_id)
        if built is not None and built[0] is session and built[1] is user:
            return built[2]
        principal = Principal(
            id=user_id,
            kind="user",
            user_id=user["id"],
            session_id=session["id"],
            email=user["email"],
            is_platform_admin=user["is_platform_admin"],
        )
        if len(self._principals) >= VERIFIED_MAX:
            self._principals.clear()
        self._principals[session_id] = (session, user, principal)
        return principal

    def _verify(self, token: str, now: int) -> tuple[str, str]:
        """The session and user ids of a token that verifies (kept for its next use)."""
        try:
            claims = orjson.loads(jwt_decode(token, self.jwt_key, now, JWT_LEEWAY))
            session_id: str = claims["sid"]
            user_id: str = claims["sub"]
            expires = float(claims["exp"])
            if not (isinstance(session_id, str) and isinstance(user_id, str)):
                raise TypeError("sid and sub are strings")
        except TokenError as exc:
            message = (
                "access token has expired; refresh it"
                if exc.reason == "expired"
                else ("access token is not valid")
            )
            raise ApiError.unauthenticated(message) from None
        except (KeyError, ValueError, TypeError):
            raise ApiError.unauthenticated("access token is not valid") from None
        # Ids stay strings on this path: parsing UUIDs per request costs more than the JWT.
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()  # crude but bounded: tokens verify again on their next use
        self._verified[token] = (expires, session_id, user_id)
        return session_id, user_id

    async def still_valid(self, principal: Principal) -> None:
        """Raise unless the session and user behind ``principal`` are still live, from
        the caches (long-lived streams ask this; the access token was checked at connect)."""
        session = await self._session(str(principal.session_id))
        if (
            session is None
            or session["user_id"] != principal.id
            or session["revoked_at"] is not None
        ):
            raise ApiError.unauthenticated("the session has ended; sign in again")
        if session["expires_at"] <= clock.now():
            raise ApiError.unauthenticated("the session has expired; sign in again")
        if await self.user(principal.id) is None:
            raise ApiError.unauthenticated("the account no longer exists")

    async def _session(self, session_id: str) -> dict[str, Any] | None:
        cached = self.session_cache.get(session_id)
        if cached is not MISSING:
            return cached  # type: ignore[return-value]

        async def load() -> dict[str, Any] | None:
            try:
                ident = UUID(session_id)
            except ValueError:
                return None
            async with self.db.committed() as conn:
                row = await session_store.state(conn, ident)
            return None if row is None else {**row, "id": ident, "user_id": str(row["user_id"])}

        return await self.session_cache.load(session_id, load)

    async def user(self, user_id: UUID | str) -> dict[str, Any] | None:
        key = str(user_id)
        cached = self.user_cache.get(key)
        if cached is not MISSING:
            return cached  # type: ignore[return-value]

        async def load() -> dict[str, Any] | None:
            try:
                ident = UUID(key)
            except ValueError:
                return None
            async with self.db.committed() as conn:
                return await user_store.by_id(conn, ident)

        return await self.user_cache.load(key, load)
