"""Inputs for the micro benchmarks: the real route table, a signing key and a real token.

Benchmarks are disabled by default (``--benchmark-disable`` in pyproject), so
``pytest bench`` runs each once as a plain test; ``pytest bench --benchmark-enable``
times them.
"""

from __future__ import annotations

import time

import orjson
import pytest

from treadle._core import Router, derive_key, jwt_encode
from treadle.api import routes
from treadle.web.routing import Route, RouteTable

# A mix a server sees: static routes, parameter routes, a wrong method, an unknown path.
REQUESTS = [
    ("GET", "/healthz"),
    ("GET", "/v1/me"),
    ("POST", "/v1/auth/login"),
    ("POST", "/v1/auth/token/refresh"),
    ("GET", "/v1/admin/users"),
    ("GET", "/v1/admin/users/4f6c1d2e-9a41-4c3b-8d7e-2a9b0c1d2e3f"),
    ("POST", "/v1/admin/users/4f6c1d2e-9a41-4c3b-8d7e-2a9b0c1d2e3f/logout-all"),
    ("GET", "/docs/swagger-ui.css"),
    ("PUT", "/v1/me"),
    ("GET", "/v1/nope/nothing"),
]


@pytest.fixture(scope="session")
def route_table() -> list[Route]:
    return routes()


@pytest.fixture(scope="session")
def rust_router(route_table: list[Route]) -> Router:
    return RouteTable(route_table).router


@pytest.fixture(scope="session")
def requests() -> list[tuple[str, str]]:
    return REQUESTS


@pytest.fixture(scope="session")
def jwt_key() -> bytes:
    return derive_key("treadle 2026 access-token signing", b"bench secret " * 4)


@pytest.fixture(scope="session")
def now() -> int:
    return int(time.time())


@pytest.fixture(scope="session")
def token(jwt_key: bytes, now: int) -> str:
    # The same claims treadle's sessions put in an access token.
    claims = {
        "iss": "treadle",
        "sub": "4f6c1d2e-9a41-4c3b-8d7e-2a9b0c1d2e3f",
        "sid": "0b1c2d3e-4f50-4617-8283-949596979899",
        "iat": now,
        "exp": now + 900,
        "jti": "S9gRGJ1pgaV_vkeG",
    }
    return jwt_encode(orjson.dumps(claims), jwt_key)
