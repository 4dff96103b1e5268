"""SIGTERM: stop accepting, finish what is in flight, exit within 10 s."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support.faults import wait_workers_started
from tests.support.servers import Server, free_port, start_server


@pytest.mark.parametrize("kind", ["granian", pytest.param("robyn", marks=pytest.mark.robyn)])
def test_sigterm_finishes_in_flight_requests_then_exits(
    kind: str, server_env: dict[str, str], tmp_path
) -> None:
    server: Server = start_server(
        kind, {**server_env, "TREADLE_PORT": str(free_port())}, tmp_path / "server.log"
    )
    try:
        port = int(server.url.rsplit(":", 1)[1])
        body = b'{"email": "nobody@example.test", "password": "wrong password here"}'
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = (
            f"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        sock.sendall(head + body[:10])  # the request is now in flight
        time.sleep(0.5)
        started = time.monotonic()
        server.proc.send_signal(15)
        time.sleep(0.5)
        sock.sendall(body[10:])
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        sock.close()
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
        server.proc.wait(10)
        assert time.monotonic() - started < 10
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        server.stop()


def _read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length, read off a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_sigterm_answers_requests_already_received_on_keep_alive_connections(
    server_env: dict[str, str], tmp_path
) -> None:
    # Expensive password hashing makes a signup take a while, with no test-only code.
    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_WORKERS": "2",
        "TREADLE_ARGON2_TIME_COST": "6",
        "TREADLE_ARGON2_MEMORY_KIB": "65536",
        "TREADLE_SHUTDOWN_TIMEOUT": "5",
    }
    server: Server = start_server("granian", env, tmp_path / "server.log")
    try:
        wait_workers_started(server, 2)
        port = int(server.url.rsplit(":", 1)[1])
        clients = []
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
            clients.append(sock)  # now an idle keep-alive connection
        for i, sock in enumerate(clients):
            body = f'{{"email": "drain-{i}-{port}@example.test", "password": "long enough pw"}}'
            sock.sendall(
                (
                    f"POST /v1/auth/signup HTTP/1.1\r\nHost: x\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    f"{body}"
                ).encode()
            )
        time.sleep(0.2)  # received, and hashing
        started = time.monotonic()
        server.proc.send_signal(15)
        replies = [_read_response(sock) for sock in clients]
        for sock in clients:
            sock.close()
        assert all(r.startswith(b"HTTP/1.1 201") for r in replies), [r[:120] for r in replies]
        server.proc.wait(10)
        # Within the shutdown timeout (8 s): nothing is left to wait for once answered.
        took = time.monotonic() - started
        assert took < 8, (took, server.log()[-2000:])
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        server.stop()
