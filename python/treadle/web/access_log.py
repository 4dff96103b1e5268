"""The per-request log line, written without the logging module's per-record cost.

Lines made while the event loop is busy are joined and written once per loop iteration;
each is the same JSON shape as every other log line (see ``treadle.logs``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import IO

import orjson

from treadle import clock


class AccessLog:
    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr.buffer
        self._lines: list[bytes] = []

    def write(
        self, method: str, route: str, status: int, duration_ms: float, request_id: str
    ) -> None:
        if not self._lines:
            asyncio.get_running_loop().call_soon(self.flush)
        self._lines.append(
            orjson.dumps(
                {
                    "ts": clock.rfc3339(),
                    "level": "info",
                    "logger": "treadle.request",
                    "msg": "request",
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "request_id": request_id,
                }
            )
        )

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self.stream.write(b"\n".join(lines) + b"\n")
            self.stream.flush()
