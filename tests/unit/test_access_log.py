"""The access log's writer thread: lines arrive whole and in order, and a stream that blocks
never blocks the requests that log."""

from __future__ import annotations

import io
import os
import threading
import time

import orjson

from treadle.web.access_log import AccessLog

KEYS = ["ts", "level", "logger", "msg", "method", "route", "status", "duration_ms", "request_id"]


def _write(log: AccessLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.write("GET", "/v1/me", 200, 0.125, f"req-{i}")


def test_lines_arrive_in_order_each_one_json_object_of_the_same_shape() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, batch=64, interval=0.01)
    _write(log, 1000)
    # More after a pause: the writer's timer, not only a full batch, sends them.
    time.sleep(0.05)
    _write(log, 10, start=1000)
    log.close()
    raw = stream.getvalue()
    assert raw.endswith(b"\n")
    entries = [orjson.loads(line) for line in raw.splitlines()]
    assert [e["request_id"] for e in entries] == [f"req-{i}" for i in range(1010)]
    assert all(list(e) == KEYS for e in entries)
    first = entries[0]
    assert (first["level"], first["logger"], first["msg"]) == ("info", "treadle.request", "request")
    assert (first["method"], first["route"], first["status"]) == ("GET", "/v1/me", 200)
    assert first["duration_ms"] == 0.125
    assert log.dropped == 0 and log.lost == 0


def test_lines_are_written_without_close_within_the_interval() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, interval=0.01)
    _write(log, 3)
    deadline = time.monotonic() + 5
    while stream.getvalue().count(b"\n") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue().count(b"\n") == 3
    log.close()


def test_a_stream_nobody_reads_does_not_block_write_lines_past_capacity_are_counted() -> None:
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "wb")
    log = AccessLog(stream, capacity=1000, batch=100, interval=0.01)
    try:
        started = time.monotonic()
        # About 150 bytes a line: 20,000 lines are far more than a pipe's buffer holds, so
        # the writer thread is stuck in write() long before the loop below ends.
        _write(log, 20_000)
        took = time.monotonic() - started
        assert took < 2.0, f"write() blocked: 20,000 lines took {took:.2f}s"
        assert log.dropped > 0
        # close() gives up on a stuck stream after its timeout instead of hanging shutdown.
        started = time.monotonic()
        log.close(timeout=0.2)
        assert time.monotonic() - started < 1.5
    finally:
        got = bytearray()
        reader = threading.Thread(target=_drain, args=(read_end, got))
        reader.start()
        if log._thread is not None:
            log._thread.join(10)
            assert not log._thread.is_alive()
        stream.close()
        reader.join(10)
        os.close(read_end)
    entries = [orjson.loads(line) for line in bytes(got).splitlines()]
    requests = [e for e in entries if e["msg"] == "request"]
    warnings = [e for e in entries if e["level"] == "warning"]
    assert len(requests) + log.dropped == 20_000
    # One warning at most a second while lines drop, and a last one at close.
    assert 1 <= len(warnings) <= 3
    assert sum(w["dropped"] for w in warnings) == warnings[-1]["dropped_total"] == log.dropped
    # What was kept is still in order.
    ids = [int(e["request_id"].removeprefix("req-")) for e in requests]
    assert ids == sorted(ids)


def test_a_broken_stream_loses_lines_without_raising() -> None:
    stream = io.BytesIO()
    stream.close()
    log = AccessLog(stream, interval=0.01)
    _write(log, 5)
    log.close()
    assert log.lost == 5


def _drain(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into += chunk
