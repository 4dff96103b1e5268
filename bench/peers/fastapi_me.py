"""``GET /v1/me`` in FastAPI on uvicorn, answering what treadle answers: the peer that
``http_compare.py`` measures treadle against.

It reads treadle's configuration and tables: ``TREADLE_DATABASE_URL``,
``TREADLE_SECRET_KEY`` and, for the cache, ``TREADLE_REDIS_URL`` /
``TREADLE_REDIS_PREFIX``. ``PEER_SESSIONS`` picks how sessions are checked: ``select``
(one query per request) or ``cache`` (see ``sessions.py``). Signed-in users only: an API
key is not a JWT, so it is refused as an invalid access token.

The body is treadle's envelope, key for key; the request, correlation and trace ids follow
treadle's kernel (an incoming ``X-Request-ID`` / ``X-Correlation-ID`` of 1-128 visible
ASCII characters is kept, a ``traceparent`` gives the trace id). Written as a FastAPI
service tuned the usual ways would be: uvloop and httptools, no access log, orjson
bytes in a plain ``Response`` rather than a validated response model. It checks no rate
limit, which treadle does on every request.

    TREADLE_DATABASE_URL=... TREADLE_SECRET_KEY=... PEER_SESSIONS=select \\
        uvicorn --app-dir bench --loop uvloop --http httptools --no-access-log \\
        peers.fastapi_me:app
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Header, Response

from peers.sessions import (
    CachedSessions,
    PeerError,
    SelectSessions,
    Sessions,
    bearer_token,
    signing_key,
    subject,
)

VERSION = "1.0"
_INCOMING_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def _sessions() -> Sessions:
    kind = os.environ.get("PEER_SESSIONS", "select")
    url = os.environ["TREADLE_DATABASE_URL"]
    if kind == "select":
        return SelectSessions(url)
    if kind == "cache":
        return CachedSessions(
            url, os.environ["TREADLE_REDIS_URL"], os.environ.get("TREADLE_REDIS_PREFIX", "treadle:")
        )
    raise SystemExit(f"PEER_SESSIONS must be select or cache, not {kind!r}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    sessions = _sessions()
    await sessions.start()
    app.state.sessions = sessions
    app.state.key = signing_key(os.environ["TREADLE_SECRET_KEY"])
    try:
        yield
    finally:
        await sessions.stop()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


class Ids:
    """The request's ids, chosen as treadle's kernel chooses them."""

    __slots__ = ("correlation_id", "request_id", "trace_id")

    def __init__(self, request_id: str | None, correlation: str | None, parent: str | None) -> None:
        fresh = secrets.token_hex(16)
        self.request_id = request_id if request_id and _INCOMING_ID.match(request_id) else fresh
        self.correlation_id = (
            correlation if correlation and _INCOMING_ID.match(correlation) else self.request_id
        )
        match = _TRACEPARENT.match(parent) if parent else None
        self.trace_id = match.group(1) if match and match.group(1) != "0" * 32 else fresh


def _timestamp() -> str:
    """treadle.clock.rfc3339: UTC with milliseconds and a Z."""
    ms = time.time_ns() // 1_000_000
    second, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{milli:03d}Z"


def _answer(
    ids: Ids,
    path: str,
    status: int,
    data: Any,
    principal_id: str | None = None,
    error: PeerError | None = None,
) -> Response:
    body = {
        "meta": {
            "request_id": ids.request_id,
            "trace_id": ids.trace_id,
            "timestamp": _timestamp(),
            "status": status,
            "version": VERSION,
        },
        "context": {"principal_id": principal_id, "organization_id": None, "team_id": None},
        "data": data,
        "error": None
        if error is None
        else {"code": error.code, "message": error.message, "details": {}},
        "links": {"self": path, "next": None},
    }
    headers = {"x-request-id": ids.request_id, "x-correlation-id": ids.correlation_id}
    if error is not None:
        headers.update(error.headers)
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


OptionalHeader = Annotated[str | None, Header()]


@app.get("/v1/me")
async def me(
    authorization: OptionalHeader = None,
    x_request_id: OptionalHeader = None,
    x_correlation_id: OptionalHeader = None,
    traceparent: OptionalHeader = None,
) -> Response:
    ids = Ids(x_request_id, x_correlation_id, traceparent)
    try:
        session_id, user_id = subject(bearer_token(authorization), app.state.key)
        user = await app.state.sessions.user(session_id, user_id)
    except PeerError as exc:
        return _answer(ids, "/v1/me", exc.status, None, error=exc)
    data = {
        "id": user["id"],
        "email": user["email"],
        "display_name": user["display_name"],
        "email_verified": user["email_verified_at"] is not None,
        "email_verified_at": user["email_verified_at"],
        "is_platform_admin": user["is_platform_admin"],
        "created_at": user["created_at"],
        "updated_at": user["updated_at"],
        "principal_type": "user",
    }
    return _answer(ids, "/v1/me", 200, data, principal_id=user_id)


@app.get("/healthz")
async def healthz(
    x_request_id: OptionalHeader = None,
    x_correlation_id: OptionalHeader = None,
    traceparent: OptionalHeader = None,
) -> Response:
    return _answer(
        Ids(x_request_id, x_correlation_id, traceparent), "/healthz", 200, {"status": "ok"}
    )
