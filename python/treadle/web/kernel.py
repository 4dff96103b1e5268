"""The pipeline every request goes through, whichever server delivered it."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from treadle._core import request_id
from treadle.settings import Settings
from treadle.web import envelope, errors
from treadle.web.access_log import AccessLog
from treadle.web.bodies import Limits, decode
from treadle.web.errors import ApiError
from treadle.web.metrics import Metrics
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Route, RouteTable

log = logging.getLogger("treadle.request")

Authenticator = Callable[[Request, Route], Awaitable[Any]]
Authorizer = Callable[[Request, Route], Awaitable[None]]
# Runs the handler at most once per Idempotency-Key (see treadle.web.idempotency).
Idempotent = Callable[[Request, Route, Callable[[], Awaitable[Response]]], Awaitable[Response]]
# The stored answer to a retry, found from its raw body before decoding (setting ``req.scope``).
Replayer = Callable[[Request, Route, bytes], Awaitable[Response | None]]
# Decides whether the caller may spend the route's cost now; returns headers to send.
Admitter = Callable[[Request, Route], Awaitable[list[tuple[str, str]]]]
Hook = Callable[[], Awaitable[None]]

_INCOMING_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_UNMATCHED = "<unmatched>"
ACCESS_LOG_CLOSE_SECONDS = 1.0


class Kernel:
    def __init__(
        self,
        settings: Settings,
        table: RouteTable,
        authenticate: Authenticator,
        app: Any = None,
        authorize: Authorizer | None = None,
        admit: Admitter | None = None,
        idempotent: Idempotent | None = None,
        metrics: Metrics | None = None,
        replay: Replayer | None = None,
    ) -> None:
        self.settings = settings
        self.table = table
        self.authenticate = authenticate
        self.authorize = authorize
        self.admit = admit
        self.idempotent = idempotent
        self.replay = replay
        guarded = [r.path for r in table.routes if r.permission and r.scope is None]
        if guarded or (authorize is None and any(r.permission for r in table.routes)):
            raise ValueError(f"routes with a permission need a scope and an authorizer: {guarded}")
        streamed = [r.path for r in table.routes if r.stream_body and r.idempotent != "none"]
        if streamed:
            raise ValueError(f"routes with a streamed body take no Idempotency-Key: {streamed}")
        self.app = app
        self.metrics = metrics if metrics is not None else Metrics()
        self.on_startup: list[Hook] = []
        self.on_shutdown: list[Hook] = []
        # Called when the server stops accepting, before it waits for requests in flight.
        self.on_stopping: list[Callable[[], None]] = []
        self.access_log = AccessLog() if settings.access_log else None
        self.body_limits = Limits(settings.max_body_depth, settings.max_body_nodes)
        self.batch_limits = Limits(settings.max_body_depth, settings.max_batch_body_nodes)

    async def startup(self) -> None:
        for hook in self.on_startup:
            await hook()
        # What startup built (modules, the route table, pools, the loaded event hub) lives
        # as long as the process: out of the collector's sight, a full collection scans
        # only what requests made since, not every object of the process each time.
        gc.freeze()

    def stopping(self) -> None:
        """End long-lived responses (event streams) so that draining can finish."""
        for hook in self.on_stopping:
            hook()

    async def shutdown(self) -> None:
        for hook in reversed(self.on_shutdown):
            await hook()
        if self.access_log is not None:
            # In a thread: a stuck log stream must not hold the loop (Robyn bounds shutdown
            # with wait_for, which cannot cut a blocking call short).
            await asyncio.to_thread(self.access_log.close, ACCESS_LOG_CLOSE_SECONDS)

    async def handle(self, req: Request) -> Response:
        started = time.perf_counter()
        self._identify(req)
        route_name = _UNMATCHED
        try:
            found = self.table.lookup(req.method, req.path)
            if not isinstance(found, tuple):
                if found:
                    raise ApiError.method_not_allowed(req.method, found)
                raise ApiError.not_found(f"no route for {req.method} {req.path}")
            route, req.params = found
            for name, param in req.params.items():
                if "\x00" in param:
                    raise ApiError.validation("the path may not contain NUL (%00)", f"path.{name}")
            route_name = route.path
            req.route = route
            req.app = self.app
            response = await self._run(req, route)
        except ApiError as exc:
            response = self.error_response(req, exc)
        except Exception:
            log.exception(
                "unhandled error",
                extra={"request_id": req.request_id, "route": route_name, "method": req.method},
            )
            response = self.error_response(req, ApiError.internal())
        if req.response_headers:
            response.headers.extend(req.response_headers)
        response.headers.append(("x-request-id", req.request_id))
        response.headers.append(("x-correlation-id", req.correlation_id))
        elapsed = time.perf_counter() - started
        self.metrics.observe(req.method, route_name, response.status, elapsed)
        if self.access_log is not None:
            self.access_log.write(
                req.method, route_name, response.status, round(elapsed * 1000, 3), req.request_id
            )
        return response

    async def _run(self, req: Request, route: Route) -> Response:
        if route.auth != "none":
            req.principal = await self.authenticate(req, route)
        if self.admit is not None:
            # With no principal, the admitter charges the client address instead.
            req.response_headers = await self.admit(req, route)
        replay = None
        if (route.body is not None or route.raw_body is not None) and not route.stream_body:
            settings = self.settings
            raw = await req.body(
                settings.max_batch_body_bytes if route.batch else settings.max_body_bytes
            )
            # Answers kept in memory are for decoded bodies (the idempotency layer keeps
            # none of raw ones): a raw body is not hashed again to look for one.
            if self.replay is not None and route.idempotent != "none" and route.body is not None:
                replay = await self.replay(req, route, raw)
            if route.body is None:
                req.data = raw  # a raw body, the handler's to read
            elif replay is None:
                req.data = decode(
                    raw,
                    route.body,
                    req.headers.get("content-type"),
                    req.headers.get("content-encoding"),
                    self.batch_limits if route.batch else self.body_limits,
                )
        if route.permission is not None:
            await self.authorize(req, route)  # type: ignore[misc]
        if replay is not None:
            return replay
        if self.idempotent is not None and route.idempotent != "none":
            return await self.idempotent(req, route, lambda: self._answer(req, route))
        return await self._call(req, route)

    async def _call(self, req: Request, route: Route) -> Response:
        result = await route.handler(req)
        if isinstance(result, Response):
            return result
        return Response(route.status, envelope.encode(req, route.status, result))

    async def _answer(self, req: Request, route: Route) -> Response:
        """The handler's answer, errors included, as the response to store for replays."""
        try:
            return await self._call(req, route)
        except ApiError as exc:
            return self.error_response(req, exc)

    def error_response(self, req: Request, exc: ApiError) -> Response:
        if not req.request_id:
            self._identify(req)
        code = errors.status(exc)
        return Response(code, envelope.encode(req, code, None, exc), errors.headers(exc))

    def _identify(self, req: Request) -> None:
        headers = req.headers
        fresh = request_id()
        incoming = headers.get("x-request-id")
        req.request_id = incoming if incoming and _INCOMING_ID.match(incoming) else fresh
        correlation = headers.get("x-correlation-id")
        req.correlation_id = (
            correlation if correlation and _INCOMING_ID.match(correlation) else req.request_id
        )
        parent = headers.get("traceparent")
        match = _TRACEPARENT.match(parent) if parent else None
        # Without a caller's trace, the fresh id (random, 32 hex) starts one: one draw, not two.
        req.trace_id = match.group(1) if match and match.group(1) != "0" * 32 else fresh
