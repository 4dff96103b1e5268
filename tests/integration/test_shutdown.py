"""SIGTERM: stop accepting, finish what is in flight, exit within 10 s."""

from __future__ import annotations

import socket
import time

import pytest

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
