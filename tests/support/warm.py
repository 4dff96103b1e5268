"""Sessions without PostgreSQL or Redis, their caches filled as after a first request: for
tests and benchmarks of what ``Sessions.authenticate`` does on every later one."""

from __future__ import annotations

import uuid
from collections.abc import Coroutine
from typing import Any

import orjson

from treadle import clock
from treadle._core import jwt_encode
from treadle.bus.invalidation import Invalidator
from treadle.services.sessions import Sessions
from treadle.settings import Settings


class _NoRedis:
    """Sessions subscribe to invalidations when built; nothing is published here."""


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never waits (warm caches: no I/O) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise AssertionError("the coroutine waited for I/O")


def offline_sessions() -> Sessions:
    settings = Settings(secret_key="offline " * 8)
    return Sessions(settings, None, Invalidator(_NoRedis(), "offline:"))  # type: ignore[arg-type]


def signed_in(sessions: Sessions, expires_in: int = 900) -> dict[str, Any]:
    """An access token for a new session, with the session and user rows in the caches as
    ``Sessions._session`` and ``Sessions.user`` keep them."""
    user_id, session_id = uuid.uuid4(), uuid.uuid4()
    now = clock.epoch()
    claims = {
        "iss": "treadle",
        "sub": str(user_id),
        "sid": str(session_id),
        "iat": now,
        "exp": now + expires_in,
        "jti": "S9gRGJ1pgaV_vkeG",
    }
    token = jwt_encode(orjson.dumps(claims), sessions.jwt_key)
    session = {"id": session_id, "user_id": str(user_id), "revoked_at": None}
    user = {"id": user_id, "email": "a@example.com", "is_platform_admin": False}
    sessions.session_cache.put(str(session_id), session)
    sessions.user_cache.put(str(user_id), user)
    return {"token": token, "now": now, "session": session, "user": user}
