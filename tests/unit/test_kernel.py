"""The kernel without a server: what reaches the log when a handler fails unexpectedly."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from treadle.settings import Settings
from treadle.web.errors import status as http_status
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
    from treadle.services.principal import Principal
    from treadle.web.errors import ApiError
    from treadle.web.idempotency import Idempotency

    async def create(req: Request) -> None:
        raise AssertionError("must not run")

    route = Route("POST", "/things", create, "makes things", "test", idempotency="required")
    req = Request("POST", "/things", "", header_map({}), read_whole(b"{}"))
    req.principal = Principal("u1", "user", None, None, "", False)
    # Refused before any storage is touched, so none is given.
    idempotency = Idempotency(Settings.from_env({}), None)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as caught:
        asyncio.run(idempotency.run(req, route, lambda: create(req)))  # type: ignore[arg-type]
    assert (http_status(caught.value), caught.value.code) == (428, "idempotency_key_required")
    assert route.idempotent == "required"
    assert Route("POST", "/x", create, "", "t").idempotent == "optional"
    assert Route("GET", "/x", create, "", "t").idempotent == "none"
    assert Route("POST", "/x", create, "", "t", auth="none").idempotent == "none"


def test_an_identical_retry_skips_decoding_and_scope_but_not_authorization() -> None:
    import uuid
    from datetime import timedelta

    import msgspec

    from treadle import _core, clock
    from treadle.services.authz import Scope
    from treadle.services.principal import Principal
    from treadle.web.errors import ApiError
    from treadle.web.idempotency import Idempotency

    class Thing(msgspec.Struct, forbid_unknown_fields=True):
        name: str

    org = uuid.uuid4()
    resolved: list[str] = []
    authorized: list[Scope] = []
    allowed = [True]

    async def scope(req: Request) -> Scope:
        resolved.append(req.data.name)
        return Scope(org, "organization", str(org))

    async def authorize(req: Request, route: Route) -> None:
        found = req.scope if req.scope is not None else await scope(req)
        authorized.append(found)
        if not allowed[0]:
            raise ApiError.forbidden("not any more")
        req.scope = found

    async def authenticate(req: Request, route: Route) -> Principal:
        return Principal("u1", "user", None, None, "", False)

    async def create(req: Request) -> None:
        raise AssertionError("a retry never runs the handler")

    body = b'{"name": "one"}'
    route = Route(
        "POST", "/things", create, "", "t", body=Thing, permission="things.make", scope=scope
    )
    settings = Settings.from_env({})
    # The first answer, as a load from PostgreSQL leaves it; nothing here needs a database.
    idempotency = Idempotency(settings, None)  # type: ignore[arg-type]
    idempotency.answers.put(
        (f"user:u1@{org}", "k1"),
        {
            "fingerprint": _core.fingerprint("POST", "/things", body, None),
            "status": 201,
            "body": b'{"made": true}',
            "content_type": "application/json",
            "expires_at": clock.now() + timedelta(hours=1),
        },
    )
    kernel = Kernel(
        settings,
        RouteTable([route]),
        authenticate,
        authorize=authorize,
        idempotent=idempotency.run,
        replay=idempotency.early,
    )

    def send(raw: bytes) -> tuple[int, str | None]:
        req = Request("POST", "/things", "", header_map({"Idempotency-Key": "k1"}), read_whole(raw))
        response = asyncio.run(kernel.handle(req))
        return response.status, dict(response.headers).get("idempotent-replayed")

    assert send(body) == (201, "true")  # decoded, scoped, authorized, replayed
    assert send(body) == (201, "true")
    assert resolved == ["one"]  # the identical retry was neither decoded nor scoped again
    assert len(authorized) == 2 and authorized[0] == authorized[1]
    assert send(b'{"name":"one"}') == (201, "true")  # equal JSON, other bytes: decoded
    assert resolved == ["one", "one"]
    assert send(b'{"name": "two"}')[0] == 422
    allowed[0] = False
    assert send(body) == (403, None)
    assert len(authorized) == 5
