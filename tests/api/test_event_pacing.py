"""Event streams woken in rounds (``TREADLE_EVENT_WAKE_MS``), over HTTP: events that come
within a round reach an SSE client in one write, every one of them and in order, and a
burst past a subscriber's queue within one round still ends it with slow_consumer."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api import bearer, create_org, signup
from tests.support.events import emit
from tests.support.servers import Server, free_port, start_server

WAKE_MS = 250


@pytest.fixture(scope="module")
def paced(server_env: dict[str, str], tmp_path_factory) -> Iterator[Server]:
    """A server process whose streams are woken at most every 250 ms, with subscriber
    queues of 12."""
    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_EVENT_WAKE_MS": str(WAKE_MS),
        "TREADLE_EVENT_QUEUE_SIZE": "12",
    }
    server = start_server("granian", env, tmp_path_factory.mktemp("paced") / "server.log")
    yield server
    server.stop()


class RawStream:
    """An SSE response read off the socket chunk by chunk, so that the writes the server
    made can be counted: each ``send`` is one HTTP/1.1 chunk."""

    def __init__(self, server: Server, headers: dict[str, str], query: str) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"GET /v1/events/stream?{query} HTTP/1.1\r\nhost: {host}\r\n{lines}\r\n"
        self.sock.sendall(request.encode())
        self.file = self.sock.makefile("rb")
        status = self.file.readline()
        assert b" 200 " in status, status
        while self.file.readline() not in (b"\r\n", b""):
            pass

    def chunk(self) -> bytes:
        size = int(self.file.readline().strip(), 16)
        data = self.file.read(size)
        self.file.readline()
        return data

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _frames(chunk: bytes) -> list[dict[str, Any]]:
    frames = []
    for block in chunk.split(b"\n\n"):
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"data" in fields:
            frames.append(
                {"event": fields.get(b"event", b"").decode(), **json.loads(fields[b"data"])}
            )
    return frames


def _tenant(server: Server) -> tuple[dict[str, Any], str]:
    with server.client() as client:
        owner = signup(client)
        return owner, create_org(client, owner)["id"]


def test_events_within_a_round_arrive_in_one_write_all_in_order(
    paced: Server, server_env: dict[str, str]
) -> None:
    owner, org_id = _tenant(paced)
    stream = RawStream(paced, bearer(owner), f"organization_id={org_id}&topic=test.paced")
    try:
        started = time.monotonic()
        # One transaction each, 40 ms apart: about 6 events per 250 ms round (the queue
        # holds 12); each would be a write of its own if every event woke the stream.
        emit(
            server_env["TREADLE_DATABASE_URL"],
            org_id,
            30,
            topic="test.paced",
            together=False,
            spacing=0.04,
        )
        chunks: list[list[dict[str, Any]]] = []
        while sum(map(len, chunks)) < 30:
            chunks.append(_frames(stream.chunk()))
        elapsed = time.monotonic() - started
    finally:
        stream.close()
    events = [frame for chunk in chunks for frame in chunk]
    assert [e["data"]["i"] for e in events] == list(range(30))
    assert {e["event"] for e in events} == {"test.paced"}
    # At most one write per round (and one for the first event, sent at once).
    assert len(chunks) <= elapsed / (WAKE_MS / 1000) + 2
    assert len(chunks) < 30


def test_a_burst_past_the_queue_within_a_round_ends_with_slow_consumer(
    paced: Server, server_env: dict[str, str]
) -> None:
    owner, org_id = _tenant(paced)
    stream = RawStream(paced, bearer(owner), f"organization_id={org_id}&topic=test.burst")
    try:
        # Wake the stream once, so that the burst lands inside the next round's wait.
        emit(server_env["TREADLE_DATABASE_URL"], org_id, 1)
        first = _frames(stream.chunk())
        emit(server_env["TREADLE_DATABASE_URL"], org_id, 30)
        got: list[dict[str, Any]] = []
        while not got or got[-1]["event"] != "error":
            got += _frames(stream.chunk())
        assert stream.chunk() == b""  # the last chunk: the server ended the stream
    finally:
        stream.close()
    assert [e["data"]["i"] for e in first] == [0]
    *delivered, error = got
    assert error["code"] == "slow_consumer"
    # The queue of 12 filled before the round came: those 12, in order, then the end.
    assert [e["data"]["i"] for e in delivered] == list(range(12))
    assert "Last-Event-ID" in error["message"]
