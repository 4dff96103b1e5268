"""/readyz follows PostgreSQL and Redis going away and coming back, without a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.support.api import envelope
from tests.support.proxy import Proxy, proxied_database
from tests.support.servers import Server, free_port, start_server


def _proxied_redis(url: str) -> tuple[Proxy, str]:
    parts = urlsplit(url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    proxy.start()
    return proxy, parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


@pytest.fixture
def proxied_server(server_env: dict[str, str], tmp_path) -> Iterator[tuple[Server, Proxy, Proxy]]:
    pg, db_url = proxied_database(server_env["TREADLE_DATABASE_URL"])
    rd, redis_url = _proxied_redis(server_env["TREADLE_REDIS_URL"])
    env = {
        **server_env,
        "TREADLE_DATABASE_URL": db_url,
        "TREADLE_REDIS_URL": redis_url,
        "TREADLE_PORT": str(free_port()),
    }
    server = start_server("granian", env, tmp_path / "server.log")
    yield server, pg, rd
    server.stop()
    pg.stop()
    rd.stop()


def _ready(server: Server, want: int, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            response = client.get("/readyz")
            if response.status_code == want or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert response.status_code == want, response.text
    if want == 503:
        assert int(response.headers["retry-after"]) > 0
    return envelope(response)


def test_readyz_follows_postgres_and_redis(proxied_server: tuple[Server, Proxy, Proxy]) -> None:
    server, pg, rd = proxied_server
    _ready(server, 200)
    pg.cut()
    body = _ready(server, 503)
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["details"]["checks"]["postgres"] == "unreachable"
    pg.restore()
    _ready(server, 200)
    rd.cut()
    body = _ready(server, 503)
    assert body["error"]["details"]["checks"] == {"postgres": "ok", "redis": "unreachable"}
    rd.restore()
    _ready(server, 200)
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
