"""Health, readiness, version, the OpenAPI document, its Swagger UI, and metrics."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import msgspec
import orjson

from treadle import __version__
from treadle.bus.redis import ping
from treadle.web.errors import ApiError
from treadle.web.metrics import Metrics
from treadle.web.openapi import build
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Route, RouteTable

READY_TIMEOUT = 1.0


class Health(msgspec.Struct):
    status: str


class Version(msgspec.Struct):
    version: str
    api_version: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


async def healthz(req: Request) -> Any:
    return {"status": "ok"}


async def version(req: Request) -> Any:
    return {"version": __version__, "api_version": "1.0"}


async def readyz(req: Request) -> Any:
    app = req.app
    results = await asyncio.gather(
        asyncio.wait_for(app.db.ping(READY_TIMEOUT), READY_TIMEOUT + 0.5),
        asyncio.wait_for(ping(app.redis), READY_TIMEOUT),
        return_exceptions=True,
    )
    checks = {
        name: "ok" if not isinstance(result, BaseException) else "unreachable"
        for name, result in zip(("postgres", "redis"), results, strict=True)
    }
    if any(v != "ok" for v in checks.values()):
        error = ApiError.unavailable(
            "not ready: " + ", ".join(k for k, v in checks.items() if v != "ok") + " unreachable",
            retry_after=2,
        )
        error.details = {"checks": checks}
        raise error
    return {"status": "ready", "checks": checks}


_openapi_cache: dict[int, bytes] = {}


async def openapi(req: Request) -> Response:
    table: RouteTable = req.app.table
    body = _openapi_cache.get(id(table))
    if body is None:
        body = _openapi_cache[id(table)] = orjson.dumps(build(table, __version__))
    return Response(200, body)


def _swagger_dir() -> Path:
    spec = importlib.util.find_spec("swagger_ui")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "static"


_DOCS_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>treadle API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>
"""
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}
_asset_cache: dict[str, bytes] = {}


async def docs(req: Request) -> Response:
    return Response(200, _DOCS_PAGE, content_type="text/html; charset=utf-8")


async def docs_asset(req: Request) -> Response:
    name = req.params["asset"]
    if name not in _ASSETS:
        raise ApiError.not_found(f"no docs asset {name!r}")
    body = _asset_cache.get(name)
    if body is None:
        body = _asset_cache[name] = (_swagger_dir() / name).read_bytes()
    return Response(
        200, body, [("cache-control", "public, max-age=86400")], content_type=_ASSETS[name]
    )


async def metrics(req: Request) -> Response:
    text = Metrics.render(await req.app.shared_metrics.everywhere())
    return Response(200, text.encode(), content_type="text/plain; version=0.0.4; charset=utf-8")


ROUTES = [
    Route(
        "GET",
        "/healthz",
        healthz,
        "Process is alive",
        "meta",
        auth="none",
        response=Health,
        storage=False,
    ),
    Route(
        "GET",
        "/readyz",
        readyz,
        "PostgreSQL and Redis are reachable",
        "meta",
        auth="none",
        response=Readiness,
    ),
    Route(
        "GET",
        "/version",
        version,
        "Server version",
        "meta",
        auth="none",
        response=Version,
        storage=False,
    ),
    Route(
        "GET",
        "/openapi.json",
        openapi,
        "This document",
        "meta",
        auth="none",
        raw=True,
        storage=False,
    ),
    Route(
        "GET",
        "/docs",
        docs,
        "Swagger UI",
        "meta",
        auth="none",
        raw=True,
        content_type="text/html",
        storage=False,
    ),
    Route(
        "GET",
        "/docs/{asset}",
        docs_asset,
        "Swagger UI assets",
        "meta",
        auth="none",
        raw=True,
        content_type="text/javascript",
        storage=False,
    ),
    Route(
        "GET",
        "/metrics",
        metrics,
        "Prometheus metrics",
        "meta",
        auth="none",
        raw=True,
        content_type="text/plain",
        storage=False,
    ),
]
