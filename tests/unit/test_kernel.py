"""The kernel without a server: what reaches the log when a handler fails unexpectedly."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from treadle.settings import Settings
from treadle.web.kernel import Kernel
from treadle.web.request import Request, header_map, read_whole
from treadle.web.routing import Route, RouteTable


async def _explode(req: Request) -> None:
    raise RuntimeError("secret internal detail")


async def _never_called(req: Request, route: Route) -> None:
    raise AssertionError


def _kernel() -> Kernel:
    table = RouteTable([Route("GET", "/boom", _explode, "fails", "test", auth="none")])
    return Kernel(Settings.from_env({}), table, _never_called)


def test_unexpected_error_is_500_internal_with_the_trace_only_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    req = Request("GET", "/boom", "", header_map({"X-Request-Id": "req-42"}), read_whole(b""))
    with caplog.at_level(logging.ERROR, logger="treadle.request"):
        response = asyncio.run(_kernel().handle(req))
    body = orjson.loads(response.body)
    assert response.status == 500
    assert body["error"]["code"] == "internal"
    assert "secret internal detail" not in response.body.decode()
    assert "Traceback" not in response.body.decode()
    assert body["meta"]["request_id"] == "req-42"
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.request_id == "req-42"  # type: ignore[attr-defined]
    assert "secret internal detail" in caplog.text


def test_a_route_that_requires_an_idempotency_key_refuses_a_request_without_one() -> None:
    from treadle.services.idempotency import Idempotency
    from treadle.services.principal import Principal
    from treadle.web.errors import ApiError

    async def create(req: Request) -> None:
        raise AssertionError("must not run")

    route = Route("POST", "/things", create, "makes things", "test", idempotency="required")
    req = Request("POST", "/things", "", header_map({}), read_whole(b"{}"))
    req.principal = Principal("u1", "user", None, None, "", False)
    # Refused before any storage is touched, so none is given.
    idempotency = Idempotency(Settings.from_env({}), None)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as caught:
        asyncio.run(idempotency.run(req, route, lambda: create(req)))  # type: ignore[arg-type]
    assert (caught.value.status, caught.value.code) == (428, "idempotency_key_required")
    assert route.idempotent == "required"
    assert Route("POST", "/x", create, "", "t").idempotent == "optional"
    assert Route("GET", "/x", create, "", "t").idempotent == "none"
    assert Route("POST", "/x", create, "", "t", auth="none").idempotent == "none"
