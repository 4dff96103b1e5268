"""Live-event clients for tests: an SSE reader over httpx, WebSocket URLs, and a way to
commit many events at once through the real outbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode
from uuid import UUID

import httpx
import psycopg

from tests.support.servers import Server
from treadle.store import events as outbox


class EventStream:
    """An open SSE response, read one frame at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self._back: list[dict[str, Any]] = []

    def past_gap(self) -> EventStream:
        """Drop a first ``gap`` frame. A stream opened ``after=0-0`` on the suite's shared
        server gets one once the server's stream has reached its length cap and trimmed
        other tests' events; what this test's events are is unaffected."""
        first = self.events(1)[0]
        if first.get("event") != "gap":
            self._back.append(first)
        return self

    def frame(self) -> dict[str, Any]:
        """The next frame: its fields (``id``, ``event``, ``data`` parsed as JSON) or
        ``{"comment": …}``; raises EOFError when the server ended the stream."""
        if self._back:
            return self._back.pop()
        frame: dict[str, Any] = {}
        for line in self._lines:
            if not line:
                if frame:
                    return frame
                continue
            if line.startswith(":"):
                frame["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            frame[name] = json.loads(value) if name == "data" else value
        raise EOFError

    def events(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` frames that are not keep-alive comments."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            frame = self.frame()
            if "comment" not in frame:
                found.append(frame)
        return found

    def until(self, topic: str) -> list[dict[str, Any]]:
        """Frames up to and including the first event of ``topic``."""
        found: list[dict[str, Any]] = []
        while not found or found[-1].get("event") != topic:
            found += self.events(1)
        return found


@contextmanager
def open_stream(
    server: Server,
    headers: dict[str, str],
    params: Any = None,
    path: str = "/v1/events/stream",
    read_timeout: float = 10.0,
) -> Iterator[EventStream]:
    timeout = httpx.Timeout(10.0, read=read_timeout)
    with (
        httpx.Client(base_url=server.url, timeout=timeout) as client,
        client.stream("GET", path, headers=headers, params=params) as response,
    ):
        assert response.status_code == 200, response.read()
        yield EventStream(response)


def ws_url(server: Server, params: Any = None, path: str = "/v1/events/ws") -> str:
    query = f"?{urlencode(params, doseq=True)}" if params else ""
    return server.url.replace("http://", "ws://") + path + query


def emit(
    database_url: str,
    org_id: str,
    count: int,
    *,
    topic: str = "test.burst",
    pad: int = 0,
    together: bool = True,
    spacing: float = 0.0,
) -> None:
    """Commit ``count`` events of ``org_id`` through the outbox: in one transaction, or
    one transaction each, ``spacing`` seconds apart."""

    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            if together:
                async with conn.transaction():
                    for i in range(count):
                        await outbox.emit(conn, UUID(org_id), topic, {"i": i, "pad": "x" * pad})
                return
            for i in range(count):
                async with conn.transaction():
                    await outbox.emit(conn, UUID(org_id), topic, {"i": i, "pad": "x" * pad})
                await asyncio.sleep(spacing)

    asyncio.run(run())
