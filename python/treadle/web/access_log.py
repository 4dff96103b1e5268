"""The per-request log line, written without the logging module's per-record cost and off
the event loop.

``write`` encodes the line (the same JSON shape as every other log line, see
``treadle.logs``) and queues it; a writer thread joins what has queued and writes it in one
``write`` + ``flush`` every ``interval`` seconds, or sooner once ``batch`` lines wait. A
stream that blocks (a full pipe, a slow disk) stalls only that thread: past ``capacity``
queued lines, new ones are dropped and counted, and a warning line says how many.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from typing import IO

import orjson

from treadle import clock

CAPACITY = 100_000
BATCH = 512
INTERVAL = 0.05
# At most one warning about dropped lines this often, however long the stream stays stuck.
DROP_REPORT_SECONDS = 1.0


class AccessLog:
    def __init__(
        self,
        stream: IO[bytes] | None = None,
        *,
        capacity: int = CAPACITY,
        batch: int = BATCH,
        interval: float = INTERVAL,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr.buffer
        self.capacity = capacity
        self.batch = batch
        self.interval = interval
        # Lines dropped because the queue was full (counted by the loop's thread alone) and
        # lines the stream refused (by the writer's alone): no counter has two writers.
        self.dropped = 0
        self.lost = 0
        self._reported_dropped = 0
        # deque.append and popleft are atomic: the loop and the writer share it lock-free.
        self._lines: deque[bytes] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._reported = 0.0
        # Started by the first line: a kernel that never logs (or is built before a fork)
        # has no thread to leak.
        self._thread: threading.Thread | None = None

    def write(
        self, method: str, route: str, status: int, duration_ms: float, request_id: str
    ) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="treadle-access-log", daemon=True
            )
            self._thread.start()
        lines = self._lines
        if len(lines) >= self.capacity:
            self.dropped += 1
            return
        lines.append(
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
        # Waking the writer takes a lock and hands it the GIL: once per batch, not per line.
        if len(lines) == self.batch:
            self._wake.set()

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued and stop the writer; waits at most ``timeout`` seconds for a
        stream that does not take it (what is still queued then is lost)."""
        self._closing = True
        if self._thread is not None:
            self._wake.set()
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            closing = self._closing
            self._write_queued()
            if closing:
                return

    def _write_queued(self) -> None:
        lines = self._lines
        out: list[bytes] = []
        while lines and len(out) < self.capacity:
            out.append(lines.popleft())
        count = len(out)
        total = self.dropped + self.lost
        now = time.monotonic()
        if total > self._reported_dropped and (
            now - self._reported >= DROP_REPORT_SECONDS or self._closing
        ):
            out.append(_dropped_line(total - self._reported_dropped, total))
            self._reported_dropped, self._reported = total, now
        if not out:
            return
        try:
            self.stream.write(b"\n".join(out) + b"\n")
            self.stream.flush()
        except (OSError, ValueError):
            # A closed or broken stream: the lines are lost, the requests are not.
            self.lost += count


def _dropped_line(dropped: int, total: int) -> bytes:
    return orjson.dumps(
        {
            "ts": clock.rfc3339(),
            "level": "warning",
            "logger": "treadle.request",
            "msg": "access log lines dropped: the log stream is not keeping up",
            "dropped": dropped,
            "dropped_total": total,
        }
    )
