"""Live events: Server-Sent Events per organization or per job, and a WebSocket.

Both carry the same events with the same filters and resume rules; the event ids are the
Redis stream ids (``1718000000000-0``), the same on every server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import orjson

from treadle._core import FanoutError, Subscription
from treadle.api import scopes
from treadle.bus.events import Events, Gap, Item, event_json
from treadle.bus.leases import Lease
from treadle.services.authz import Scope
from treadle.services.principal import Principal
from treadle.services.sessions import bearer_token
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Param, Route
from treadle.web.websocket import Upgrade, WebSocket, WebSocketRequest

SSE_HEADERS = [("cache-control", "no-cache"), ("x-accel-buffering", "no")]
MAX_TOPICS = 50
# A topic (team.create), a prefix ending in .* (job.*), or * for every topic.
ONE_TOPIC = r"(\*|[A-Za-z0-9_:-]{1,64}(\.[A-Za-z0-9_:-]{1,64}){0,8}(\.\*)?)"
_TOPIC = re.compile(f"^{ONE_TOPIC}$")
_EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}(?!\n)$")
# A WebSocket client that accepts nothing for this long is dropped.
MIN_STALL_SECONDS = 10.0


def _topics(req: Request) -> list[str] | None:
    values = req.query.get("topic")
    if values is None:
        return None
    topics = [t for value in values for t in value.split(",")]
    for topic in topics:
        if not _TOPIC.match(topic):
            raise ApiError.validation(
                f"topic {topic!r} is not a topic: give a topic (team.create), a prefix "
                "ending in .* (job.*) or *; separate several with commas",
                "query.topic",
            )
    if len(topics) > MAX_TOPICS:
        raise ApiError.validation(f"give at most {MAX_TOPICS} topics", "query.topic")
    return topics


def _after(req: Request) -> str | None:
    # EventSource sends Last-Event-ID on reconnect while the URL (and its ?after=) stays
    # the same, so the header wins.
    value, where = req.headers.get("last-event-id"), "header.Last-Event-ID"
    if not value:
        value, where = req.query_value("after"), "query.after"
    if value is None:
        return None
    if not _EVENT_ID.match(value):
        raise ApiError.validation(
            f"{where.split('.', 1)[1]} must be an event id like 1718000000000-0 "
            f"(the id of the last event you received), not {value[:64]!r}",
            where,
        )
    return value


@dataclass(frozen=True, slots=True, eq=False)
class _Rights:
    """What a stream was opened with, asked again while it runs: the credential still
    valid (from the caches every revocation invalidates across processes), and the
    action still allowed (by the authorizer, on a snapshot as fresh as requests get)."""

    app: Any
    token: str
    principal: Principal
    scope: Scope
    permission: str

    @property
    def key(self) -> Hashable:
        # A key's streams share its secret; a user's, the session.
        credential = self.token if self.principal.kind == "api_key" else self.principal.session_id
        return (credential, self.scope, self.permission)

    async def check(self) -> str | None:
        try:
            if self.principal.kind == "api_key":
                principal = await self.app.api_keys.authenticate(self.token)
            else:
                await self.app.sessions.still_valid(self.principal)
                principal = self.principal
            await self.app.authz.ensure(self.scope.organization_id)
        except ApiError as exc:
            if exc.code in ("unauthenticated", "forbidden", "not_found"):
                return f"{exc.message}; this stream has ended"
            raise  # unavailable: decided next round
        decision = self.app.authz.check(
            self.scope, principal.subject, self.permission, list(principal.scopes) or None
        )
        if not decision.allowed:
            return f"no longer allowed to {self.permission} here ({decision.reason})"
        return None


@dataclass(frozen=True, slots=True)
class _Opened:
    sub: Subscription
    after: str | None
    rights: _Rights
    lease: Lease


async def _subscribe(req: Request, job_id: str | None, run_id: str | None = None) -> _Opened:
    topics, after = _topics(req), _after(req)
    events: Events = req.app.events
    principal: Principal = req.principal
    rights = _Rights(
        req.app,
        bearer_token(req.headers.get("authorization")),
        principal,
        req.scope,
        req.route.permission,
    )
    lease = await events.admit(principal.subject, str(req.scope.organization_id))
    try:
        sub = events.subscribe(str(req.scope.organization_id), topics, job_id, after, run_id)
    except FanoutError as exc:
        events.release(lease)
        raise ApiError.validation(f"{exc}; check topic and after", "query") from None
    except BaseException:
        events.release(lease)
        raise
    return _Opened(sub, after, rights, lease)


# --- Server-Sent Events ------------------------------------------------------------------


def _sse(item: Item) -> bytes:
    if isinstance(item, list):
        return b"".join([frame for _event_id, frame in item])
    if item is None:
        return b": keep-alive\n\n"
    if isinstance(item, Gap):
        return b"event: gap\ndata: %s\n\n" % orjson.dumps(_gap(item))
    return b"event: error\ndata: %s\n\n" % orjson.dumps(
        {"code": item.code, "message": item.message}
    )


def _gap(gap: Gap) -> dict[str, str]:
    return {
        "after": gap.after,
        "message": f"events after {gap.after} were trimmed from history and are lost; "
        "what follows is the oldest still held",
    }


async def _sse_response(req: Request, job_id: str | None, run_id: str | None = None) -> Response:
    opened = await _subscribe(req, job_id, run_id)
    return Response(
        200,
        headers=SSE_HEADERS,
        content_type="text/event-stream",
        # The server closes the stream (aclose) when it ends or the client leaves.
        stream=req.app.events.listen(opened.sub, opened.after, _sse, opened.rights, opened.lease),
    )


async def stream(req: Request) -> Response:
    return await _sse_response(req, None)


async def job_stream(req: Request) -> Response:
    return await _sse_response(req, req.scope.resource_id)


async def run_stream(req: Request) -> Response:
    return await _sse_response(req, None, req.scope.resource_id)


# --- WebSocket ---------------------------------------------------------------------------


def _messages(item: Item) -> list[str]:
    if item is None:
        return ['{"type":"keep-alive"}']
    if isinstance(item, list):
        # The event's own JSON object, with the type and the stream id put in front.
        return [
            f'{{"type":"event","id":"{event_id}",{event_json(frame)[1:].decode()}'
            for event_id, frame in item
        ]
    if isinstance(item, Gap):
        return [orjson.dumps({"type": "gap", **_gap(item)}).decode()]
    return [orjson.dumps({"type": "error", "code": item.code, "message": item.message}).decode()]


async def _write(ws: WebSocket, events: Events, opened: _Opened) -> None:
    # The transport's send waits for the socket: a client that stops reading stalls it,
    # its queue in the hub overflows meanwhile, and it gets slow_consumer once it reads.
    stall = max(MIN_STALL_SECONDS, 2 * events.settings.event_keepalive_seconds)
    listen = events.listen(opened.sub, opened.after, _messages, opened.rights, opened.lease)
    async with contextlib.aclosing(listen) as batches:
        async for messages in batches:
            for message in messages:
                await asyncio.wait_for(ws.send_text(message), stall)


async def _until_closed(ws: WebSocket) -> None:
    while await ws.receive() is not None:
        pass  # messages from the client are not part of the protocol: ignored


def _session(events: Events, opened: _Opened) -> Upgrade:
    async def session(ws: WebSocket) -> None:
        writer = asyncio.ensure_future(_write(ws, events, opened))
        reader = asyncio.ensure_future(_until_closed(ws))
        try:
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)
            opened.sub.close()
            events.release(opened.lease)

    return Upgrade(session)


async def websocket(req: Request) -> Response:
    if not isinstance(req, WebSocketRequest):
        raise ApiError.bad_request(
            "GET /v1/events/ws is a WebSocket endpoint: connect with a WebSocket client "
            "(Upgrade: websocket) to the Granian server; the Robyn server serves none. "
            "GET /v1/events/stream carries the same events as Server-Sent Events"
        )
    return _session(req.app.events, await _subscribe(req, None))


ORGANIZATION = Param(
    "organization_id",
    "The organization whose events to receive: required for a signed-in user; an API key "
    "receives its own organization's",
)
TOPIC = Param(
    "topic",
    "Topics to receive: a topic (team.create), a prefix ending in .* (job.*) or *; repeat "
    "the parameter or separate with commas. Default: every topic",
    {
        "type": "array",
        "items": {"type": "string", "pattern": _TOPIC.pattern},
        "maxItems": MAX_TOPICS,
    },
)
AFTER = Param(
    "after",
    "Resume after this event id (the id of the last event received): events after it that "
    "are still held come first, preceded by a gap event if some were trimmed. The "
    "Last-Event-ID header, when sent, takes precedence",
    {"type": "string", "pattern": _EVENT_ID.pattern.replace("\\d", "[0-9]")},
)
ACCESS_TOKEN = Param(
    "access_token",
    "The bearer token, for clients that cannot set the Authorization header on a handshake",
)
_SSE_FORMAT = (
    "frames `id: <event id>`, `event: <topic>`, `data: <event JSON>`; `event: gap` when "
    "history was trimmed; a `: keep-alive` comment when idle; a final `event: error` "
    "(slow_consumer, shutting_down; unauthorized once the caller's key or session ends or "
    "it loses the right to the events) before the server ends the stream. A caller past "
    "its open-stream cap gets 429 too_many_streams"
)

ROUTES = [
    Route(
        "GET",
        "/v1/events/stream",
        stream,
        f"Live events of an organization as Server-Sent Events: {_SSE_FORMAT}",
        "events",
        auth="any",
        params=(ORGANIZATION, TOPIC, AFTER),
        permission="events.read",
        scope=scopes.caller_organization,
        raw=True,
        content_type="text/event-stream",
    ),
    Route(
        "GET",
        "/v1/events/ws",
        websocket,
        "Live events of an organization over a WebSocket (Granian only). Each message is a "
        'JSON text: {"type":"event","id","topic","organization_id","job_id","run_id",'
        '"occurred_at","data"}, {"type":"gap","after","message"}, {"type":"keep-alive"}, '
        'or a final {"type":"error","code","message"} (slow_consumer, shutting_down, '
        "unauthorized) before the server closes. A refused handshake gets the HTTP status "
        "of the error (429 too_many_streams past the open-stream caps)",
        "events",
        auth="any",
        status=101,
        params=(ORGANIZATION, TOPIC, AFTER, ACCESS_TOKEN),
        permission="events.read",
        scope=scopes.caller_organization,
        raw=True,
    ),
    Route(
        "GET",
        "/v1/jobs/{id}/events",
        job_stream,
        f"Live events of one job as Server-Sent Events: {_SSE_FORMAT}",
        "events",
        auth="any",
        params=(TOPIC, AFTER),
        permission="jobs.read",
        scope=scopes.job,
        raw=True,
        content_type="text/event-stream",
    ),
    Route(
        "GET",
        "/v1/workflow-runs/{id}/events",
        run_stream,
        "Live events of one workflow run (its run and node transitions, and its jobs') as"
        f" Server-Sent Events: {_SSE_FORMAT}",
        "events",
        auth="any",
        params=(TOPIC, AFTER),
        permission="workflows.read",
        scope=scopes.workflow_run,
        raw=True,
        content_type="text/event-stream",
    ),
]
