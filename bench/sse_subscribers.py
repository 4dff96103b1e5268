"""The subscribers' side of ``sse_fanout.py``, in a process of its own: many SSE streams on
one event loop, each recording when every event arrived.

The parent talks to ``run`` over a pipe: it receives the connection count, answers
``"primed?"`` with how many streams have received a frame, and finally receives the send
times by sequence number and answers with the summary (latency percentiles over every
(subscriber, event) pair, missing, duplicates, streams that ended early).
"""

from __future__ import annotations

import asyncio
import re
import resource
import time
from array import array
from collections import Counter
from typing import Any, cast

TOPIC = "job.queued"
CONNECT_BATCH = 100


def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


class Stream(asyncio.Protocol):
    """One SSE subscriber: receive times by sequence number, read straight off the bytes."""

    def __init__(self, request: bytes, seq: re.Pattern[bytes], capacity: int) -> None:
        self.request = request
        self.seq = seq
        self.received = array("d", bytes(8 * capacity))
        self.duplicates = 0
        self.status = 0
        self.primed = False
        self.errors: list[bytes] = []
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer + data if self.buffer else data
        if not self.status:
            head = buffer.find(b"\r\n\r\n")
            if head < 0:
                self.buffer = buffer
                return
            self.status = int(buffer[9:12])
            buffer = buffer[head + 4 :]
        # Only whole frames: a number split across reads is read once it is complete.
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self.buffer = buffer
            return
        frames, self.buffer = buffer[:end], buffer[end + 2 :]
        self.primed = True
        numbers = self.seq.findall(frames)
        if numbers:
            self._record(numbers, now)
        if b"event: error" in frames:
            self.errors.append(frames[frames.find(b"event: error") :][:300])

    def _record(self, numbers: list[bytes], now: float) -> None:
        received = self.received
        values = list(map(int, numbers))
        first, last = values[0], values[-1]
        # The usual case, in order and new: one slice assignment, so that the subscribers'
        # own CPU stays small next to the server's.
        if values == list(range(first, last + 1)) and not any(received[first : last + 1]):
            received[first : last + 1] = array("d", [now]) * len(values)
            return
        for i in values:
            if received[i]:
                self.duplicates += 1
            else:
                received[i] = now


def run(conn: Any, host: str, port: int, key: str, n: int, tag: str, count: int) -> None:
    raise_fd_limit(n + 100)
    try:
        # uvloop (installed with Granian) costs the subscribers less CPU per read.
        from uvloop import run
    except ImportError:
        run = asyncio.run  # type: ignore[assignment]
    run(_subscribers(conn, host, port, key, n, tag, count))


async def _subscribers(
    conn: Any, host: str, port: int, key: str, n: int, tag: str, count: int
) -> None:
    loop = asyncio.get_running_loop()
    request = (
        f"GET /v1/events/stream?topic={TOPIC} HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"authorization: Bearer {key}\r\naccept: text/event-stream\r\n\r\n"
    ).encode()
    seq = re.compile(rb'"seq":"' + re.escape(tag.encode()) + rb'(\d+)"')
    streams: list[Stream] = []
    failures: Counter[str] = Counter()
    for first in range(0, n, CONNECT_BATCH):
        made = await asyncio.gather(
            *(
                loop.create_connection(lambda: Stream(request, seq, count), host, port)
                for _ in range(first, min(n, first + CONNECT_BATCH))
            ),
            return_exceptions=True,
        )
        for item in made:
            if isinstance(item, BaseException):
                failures[type(item).__name__] += 1
            else:
                streams.append(item[1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(not s.status for s in streams):
        await asyncio.sleep(0.1)
    statuses = Counter(s.status for s in streams)
    ok = [s for s in streams if s.status == 200]
    conn.send({"ok": len(ok), "statuses": dict(statuses), "failures": dict(failures)})
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message == "primed?":
            conn.send(sum(s.primed for s in ok))
            continue
        break
    sent: array[float] = message
    for s in streams:
        if s.transport is not None:
            s.transport.close()
    conn.send(_summary(ok, sent))


def _summary(streams: list[Stream], sent: array[float]) -> dict[str, Any]:
    published = [(i, t) for i, t in enumerate(sent) if t]
    unannounced = [i for i, t in enumerate(sent) if not t]
    latencies: list[float] = []
    missing_per: list[int] = []
    duplicates = extra = 0
    ended: Counter[str] = Counter()
    for s in streams:
        got = s.received
        missing = 0
        for i, t in published:
            if got[i]:
                latencies.append(got[i] - t)
            else:
                missing += 1
        missing_per.append(missing)
        duplicates += s.duplicates
        extra += sum(1 for i in unannounced if got[i])
        for error in s.errors:
            code = re.search(rb'"code":"([a-z_]+)"', error)
            ended[code.group(1).decode() if code else "unknown"] += 1
    latencies.sort()

    def pct(q: float) -> float | None:
        if not latencies:
            return None
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "pairs_expected": len(published) * len(streams),
        "pairs_received": len(latencies),
        "missing": sum(missing_per),
        "subscribers_missing_any": sum(1 for m in missing_per if m),
        "duplicates": duplicates,
        # Events of jobs whose POST got no answer (timed out): received, not counted.
        "received_unannounced": extra,
        "ended_with_error": dict(ended),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": 1000 * latencies[-1] if latencies else None,
    }
