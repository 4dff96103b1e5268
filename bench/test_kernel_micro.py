"""The per-request Python work without a server: where http_compare's gap comes from.

Groups: ``kernel`` (``Kernel.handle`` for ``GET /healthz``, access log off and on, 100
requests per call on one event loop, as a busy worker runs them) and ``authenticate``
(``Sessions.authenticate`` for a valid JWT with the session and user caches warm, as on
every ``GET /v1/me`` after the first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import pytest

from tests.support.warm import offline_sessions, run, signed_in
from treadle.services.principal import Principal
from treadle.services.sessions import Sessions
from treadle.settings import Settings
from treadle.web.access_log import AccessLog
from treadle.web.kernel import Kernel
from treadle.web.request import Headers, Request
from treadle.web.response import Response
from treadle.web.routing import Route, RouteTable

BATCH = 100
_NO_HEADERS: dict[str, str] = {}


async def _no_body(limit: int) -> bytes:
    return b""


async def _no_auth(req: Request, route: Route) -> None:
    raise AssertionError("/healthz needs no authentication")


def healthz_request() -> Request:
    return Request("GET", "/healthz", "", Headers(_NO_HEADERS.get), _no_body, "127.0.0.1")


async def _batch(kernel: Kernel) -> Response:
    for _ in range(BATCH):
        response = await kernel.handle(healthz_request())
    return response


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _kernel(route_table: list[Route], log: BinaryIO | None) -> Kernel:
    settings = Settings(access_log=log is not None)
    # The authorizer is never reached on /healthz; the kernel wants one for the table.
    kernel = Kernel(settings, RouteTable(route_table), _no_auth, authorize=_no_auth)
    if log is not None:
        kernel.access_log = AccessLog(log)
    return kernel


def _check(response: Response) -> None:
    assert response.status == 200
    assert orjson.loads(response.body)["data"] == {"status": "ok"}
    assert dict(response.headers)["x-request-id"]


@pytest.mark.benchmark(group="kernel")
def test_kernel_healthz_x100_access_log_off(
    benchmark: Any, route_table: list[Route], loop: asyncio.AbstractEventLoop
) -> None:
    kernel = _kernel(route_table, None)
    _check(loop.run_until_complete(_batch(kernel)))
    benchmark(lambda: loop.run_until_complete(_batch(kernel)))


@pytest.mark.benchmark(group="kernel")
def test_kernel_healthz_x100_access_log_on(
    benchmark: Any, route_table: list[Route], loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    log_path = tmp_path / "access.log"
    with log_path.open("ab") as log:
        kernel = _kernel(route_table, log)
        assert kernel.access_log is not None
        _check(loop.run_until_complete(_batch(kernel)))
        kernel.access_log.close()  # writes what its thread has not written yet
        lines = log_path.read_bytes().splitlines()
        assert len(lines) == BATCH
        assert orjson.loads(lines[-1])["route"] == "/healthz"
        kernel.access_log = AccessLog(log)
        benchmark(lambda: loop.run_until_complete(_batch(kernel)))
        kernel.access_log.close()


@pytest.fixture
def sessions() -> Sessions:
    return offline_sessions()


@pytest.mark.benchmark(group="authenticate")
def test_authenticate_warm_cache(benchmark: Any, sessions: Sessions) -> None:
    warm = signed_in(sessions)
    token, user_id, session_id = warm["token"], warm["user"]["id"], warm["session"]["id"]
    principal: Principal = run(sessions.authenticate(token))
    assert (principal.user_id, principal.session_id) == (user_id, session_id)
    benchmark(lambda: run(sessions.authenticate(token)))
