"""Robyn 0.88 quirks the adapter covers, over real HTTP against `treadle serve --server robyn`.

The kernel's own contract runs on Robyn through `any_server` in test_contract.py; these
are the places where Robyn alone would misbehave: bodies it cannot pass through intact,
its plain-text 404/405, and a process that does not exit on SIGTERM or SIGINT.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest

from tests.support.api import envelope, error_code
from tests.support.servers import Server, free_port, spawn, start_server

pytestmark = pytest.mark.robyn

LOGIN = "/v1/auth/login"
CREDENTIALS = b'{"email": "nobody@example.test", "password": "wrong password here"}'


def test_a_body_that_is_not_utf8_is_415(robyn_server: Server) -> None:
    # Robyn hands such a body over as bytes instead of text: refused, never guessed at.
    with robyn_server.client() as client:
        response = client.post(
            LOGIN, content=b"\xff\xfe" + CREDENTIALS, headers={"content-type": "application/json"}
        )
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


def test_a_compressed_body_is_415(robyn_server: Server) -> None:
    with robyn_server.client() as client:
        response = client.post(
            LOGIN,
            content=gzip.compress(CREDENTIALS),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"
    assert "Content-Encoding" in envelope(response)["error"]["message"]


def test_a_body_robyn_rewrites_is_415(robyn_server: Server) -> None:
    # Robyn replaces a multipart body with its fields' bytes run together.
    with robyn_server.client() as client:
        response = client.post(LOGIN, files={"email": (None, "a@example.test")})
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


def test_a_utf8_body_passes_through(robyn_server: Server) -> None:
    with robyn_server.client() as client:
        response = client.post(
            LOGIN, content=CREDENTIALS, headers={"content-type": "application/json"}
        )
    assert response.status_code == 401
    assert error_code(response) == "unauthenticated"


@pytest.mark.parametrize("method", ["DELETE", "PUT", "TRACE"])
def test_wrong_method_is_our_405_not_robyns(robyn_server: Server, method: str) -> None:
    with robyn_server.client() as client:
        response = client.request(method, "/healthz")
    assert response.status_code == 405
    assert error_code(response) == "method_not_allowed"
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize("path", ["/", "/nope", "/v1/nope/", "/v1//me"])
def test_unknown_path_is_our_404_not_robyns(robyn_server: Server, path: str) -> None:
    with robyn_server.client() as client:
        response = client.get(path)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_query_string_and_encoded_path_reach_the_kernel(robyn_server: Server) -> None:
    # Robyn keeps no raw query string and no decoded path; the adapter rebuilds both.
    with robyn_server.client() as client:
        response = client.get("/v1/%61uth/verify", params={"token": "not a token"})
    assert response.status_code == 400
    assert "verification token" in envelope(response)["error"]["message"]


# --- shutdown: each test gets its own server, since it ends it ----------------------------


def _start(server_env: dict[str, str], tmp_path: Path, workers: int = 1) -> Server:
    env = {**server_env, "TREADLE_PORT": str(free_port()), "TREADLE_WORKERS": str(workers)}
    return start_server("robyn", env, tmp_path / "robyn.log")


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _gone(processes: list[psutil.Process], timeout: float) -> bool:
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    return not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_worker_within_10s_despite_an_idle_client(
    server_env: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    server = _start(server_env, tmp_path, workers=2)
    try:
        workers = psutil.Process(server.proc.pid).children()
        assert len(workers) == 2
        # An idle keep-alive connection: actix alone would wait for it.
        with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as idle:
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(65536).startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            server.proc.send_signal(sig)
            assert server.proc.wait(10) == 0, server.log()
            assert time.monotonic() - started < 10
        assert _gone(workers, timeout=1)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", _port(server)), timeout=1).close()
    finally:
        server.stop()


def test_workers_stop_themselves_when_the_supervisor_is_killed(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    # A worker left listening on Robyn's SO_REUSEPORT socket would share the port with
    # the next server unnoticed.
    server = _start(server_env, tmp_path)
    try:
        workers = psutil.Process(server.proc.pid).children()
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)
        assert _gone(workers, timeout=10)
    finally:
        for worker in workers:
            if worker.is_running():
                worker.kill()
        server.stop()


def test_a_port_in_use_is_a_one_line_error(server_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**server_env, "TREADLE_PORT": str(port)}
        proc = spawn(["serve", "--server", "robyn"], env, tmp_path / "robyn.log")
        assert proc.wait(60) == 2
    log = (tmp_path / "robyn.log").read_text()
    assert f"treadle: cannot listen on 127.0.0.1:{port}: Address already in use" in log, log
    assert "Traceback" not in log
