"""The FastAPI peer of bench/http_compare.py answers GET /v1/me as treadle does.

Both variants (a SELECT per request, and caches invalidated over Redis) run on uvicorn
against the test database and Redis prefix, beside a real treadle: the same token gets the
same body, the same refusals, and a session ended through treadle is refused at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.api import bearer, envelope, signup
from tests.support.servers import Server, free_port
from treadle._core import derive_key, jwt_encode

# Two uvicorn processes beside a treadle: 6-14 s on the shared two-core machine.
pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"
VARIANTS = ("select", "cache")


@contextlib.contextmanager
def _peer(variant: str, env: dict[str, str], log_path: Path) -> Iterator[str]:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    full_env.update(env)
    full_env["PEER_SESSIONS"] = variant
    argv = [
        *(sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH)),
        *("--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop"),
        *("--http", "httptools", "--no-access-log", "peers.fastapi_me:app"),
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv, env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture(scope="module")
def peers(granian_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    logs = tmp_path_factory.mktemp("peers")
    with contextlib.ExitStack() as stack:
        yield {
            v: stack.enter_context(_peer(v, granian_server.env, logs / f"{v}.log"))
            for v in VARIANTS
        }


def _comparable(response: httpx.Response) -> dict[str, Any]:
    """The envelope without what differs per request, and the headers that carry meaning."""
    body = envelope(response)
    for key in ("request_id", "trace_id", "timestamp"):
        del body["meta"][key]
    wanted = ("content-type", "www-authenticate", "x-correlation-id")
    headers = {k: response.headers.get(k) for k in wanted}
    headers["x-correlation-id"] = headers["x-correlation-id"] == response.headers["x-request-id"]
    return {"status": response.status_code, "body": body, "headers": headers}


def _answers(
    server: Server, peers: dict[str, str], headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    theirs = {
        v: _comparable(httpx.get(url + "/v1/me", headers=headers)) for v, url in peers.items()
    }
    with server.client() as client:
        ours = _comparable(client.get("/v1/me", headers=headers))
    return ours, theirs


def test_same_body_as_treadle_then_refused_after_logout(granian_server: Server, peers) -> None:
    with granian_server.client() as client:
        account = signup(client)
    ours, theirs = _answers(granian_server, peers, bearer(account))
    assert ours["status"] == 200
    assert ours["body"]["data"]["email"] == account["user"]["email"]
    assert ours["body"]["context"]["principal_id"] == account["user"]["id"]
    for variant in VARIANTS:
        assert theirs[variant] == ours, variant

    # The cache variant now holds the session; treadle's logout must reach it before the
    # next request, as it reaches treadle's own other processes.
    with granian_server.client() as client:
        assert client.post("/v1/auth/logout", headers=bearer(account)).status_code == 200
    ours, theirs = _answers(granian_server, peers, bearer(account))
    assert ours["status"] == 401
    assert ours["body"]["error"]["message"] == "the session has ended; sign in again"
    for variant in VARIANTS:
        assert theirs[variant] == ours, variant


def _token(secret: str, claims: dict[str, Any]) -> str:
    return str(
        jwt_encode(
            orjson.dumps(claims), derive_key("treadle 2026 access-token signing", secret.encode())
        )
    )


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("expired", "access token has expired; refresh it"),
        ("wrong key", "access token is not valid"),
        ("no sid", "access token is not valid"),
        ("unknown session", "the session has ended; sign in again"),
        ("another user's session", "the session has ended; sign in again"),
        ("no header", "send Authorization: Bearer <access token or API key>"),
        ("not bearer", "Authorization must be 'Bearer <access token or API key>'"),
    ],
)
def test_same_refusals_as_treadle(granian_server: Server, peers, case: str, message: str) -> None:
    with granian_server.client() as client:
        account = signup(client)
    secret = granian_server.env["TREADLE_SECRET_KEY"]
    now = int(time.time())
    claims = {
        "iss": "treadle",
        "sub": account["user"]["id"],
        "sid": str(account["session_id"]),
        "iat": now,
        "exp": now + 600,
        "jti": "x",
    }
    if case == "expired":
        claims.update(iat=now - 1000, exp=now - 60)
    elif case == "wrong key":
        secret = "another" + secret
    elif case == "no sid":
        del claims["sid"]
    elif case == "unknown session":
        claims["sid"] = str(uuid.uuid4())
    elif case == "another user's session":
        claims["sub"] = str(uuid.uuid4())
    headers = {"authorization": f"Bearer {_token(secret, claims)}"}
    if case == "no header":
        headers = {}
    elif case == "not bearer":
        headers = {"authorization": f"Basic {_token(secret, claims)}"}
    ours, theirs = _answers(granian_server, peers, headers)
    assert ours["status"] == 401
    assert ours["body"]["error"]["message"] == message
    assert ours["headers"]["www-authenticate"] == "Bearer"
    for variant in VARIANTS:
        assert theirs[variant] == ours, variant


def test_request_ids_as_treadle_keeps_them(granian_server: Server, peers) -> None:
    trace = "ab" * 16
    headers = {
        "x-request-id": "peer-test-1",
        "x-correlation-id": "flow-7",
        "traceparent": f"00-{trace}-{'cd' * 8}-01",
    }
    with granian_server.client() as client:
        headers.update(bearer(signup(client)))
    for url in [granian_server.url, *peers.values()]:
        response = httpx.get(url + "/v1/me", headers=headers)
        meta = envelope(response)["meta"]
        assert response.headers["x-request-id"] == meta["request_id"] == "peer-test-1", url
        assert response.headers["x-correlation-id"] == "flow-7", url
        assert meta["trace_id"] == trace, url
