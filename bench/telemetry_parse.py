"""Telemetry batch parsing: ``_core.parse_telemetry`` against its pure-Python twin,
``treadle.services.telemetry_reference``, in one process and without a server.

``--batches`` batches of ``--events`` events each, the way an edge agent sends them: about
8 attributes per event (strings, integers, floats, booleans), an RFC 3339 timestamp with
milliseconds, an id, and about 1% of events bad in some way (rejected, not fatal). Each
layout (JSON array, NDJSON) and encoding (identity, gzip) is timed for both parsers over all
batches; the first round also checks that both give the same accepted count, rejections and
COPY bytes for every batch. The figures are the median of ``--rounds`` rounds, in events per
second (decompression, validation and COPY encoding included), and Rust / Python.

    .venv/bin/python bench/telemetry_parse.py [--events 1000] [--batches 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from treadle import _core
from treadle.services import telemetry_reference

NOW = datetime(2026, 1, 1, tzinfo=UTC)
IDS = {"organization_id": bytes(16), "agent_id": bytes(range(16)), "batch_id": bytes(16)}
TYPES = ["sensor.reading", "cpu.load", "disk.usage", "net.flow", "app.error", "heartbeat"]
REGIONS = ["eu-west-1", "us-east-2", "ap-south-1"]
FAULTS: list[Callable[[dict[str, Any]], None]] = [
    lambda e: e.update(type="Sensor Reading"),
    lambda e: e.pop("timestamp"),
    lambda e: e.update(timestamp="yesterday"),
    lambda e: e.update(timestamp=(NOW - timedelta(days=30)).isoformat()),
    lambda e: e["attributes"].update(nested={"a": 1}),
    lambda e: e.update(extra=True),
    lambda e: e.update(id=""),
]

Parse = Callable[..., tuple[int, list[tuple[int, str, str]], bytes]]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rng = random.Random(args.seed)
    batches = [[_event(rng) for _ in range(args.events)] for _ in range(args.batches)]
    print(f"date     {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"cpu      {_cpu_model()} ({os.cpu_count()} cores)")
    print(f"python   {platform.python_version()}, treadle._core {_core.__version__}")
    print(f"batches  {args.batches} x {args.events} events, {args.rounds} rounds\n")
    rows = []
    for ndjson in (False, True):
        bodies = [_body(events, ndjson) for events in batches]
        for encoding in ("identity", "gzip"):
            sent = bodies if encoding == "identity" else [gzip.compress(b, 6) for b in bodies]
            label = f"{'NDJSON' if ndjson else 'JSON array'}, {encoding}"
            rows.append(_measure(label, sent, ndjson, encoding, args))
    print("\n" + table(rows, args))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=1000, help="events per batch")
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    return p


def _event(rng: random.Random) -> dict[str, Any]:
    at = NOW - timedelta(milliseconds=rng.randrange(3_600_000))
    event: dict[str, Any] = {
        "type": rng.choice(TYPES),
        "timestamp": f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03}Z",
        "id": f"evt-{rng.getrandbits(64):016x}",
        "attributes": {
            "host": f"edge-{rng.randrange(1000):03}",
            "region": rng.choice(REGIONS),
            "firmware": f"v{rng.randrange(4)}.{rng.randrange(10)}.{rng.randrange(20)}",
            "cpu": round(rng.random(), 3),
            "temp_c": round(rng.uniform(20, 90), 1),
            "mem_mb": rng.randrange(256, 16384),
            "seq": rng.randrange(10**9),
            "ok": rng.random() < 0.95,
        },
    }
    if rng.random() < 0.01:
        rng.choice(FAULTS)(event)
    return event


def _body(events: list[dict[str, Any]], ndjson: bool) -> bytes:
    if ndjson:
        return "\n".join(json.dumps(e, separators=(",", ":")) for e in events).encode()
    return json.dumps(events, separators=(",", ":")).encode()


def _measure(
    label: str, bodies: list[bytes], ndjson: bool, encoding: str, args: argparse.Namespace
) -> dict[str, Any]:
    options = {
        **IDS,
        "ndjson": ndjson,
        "encoding": encoding,
        "received_at_us": int(NOW.timestamp() * 1_000_000),
    }
    seconds: dict[str, list[float]] = {"rust": [], "python": []}
    parsers: dict[str, Parse] = {
        "rust": _core.parse_telemetry,
        "python": telemetry_reference.parse_telemetry,
    }
    for r in range(args.rounds):
        results = {}
        for name, parse in parsers.items():
            start = time.perf_counter()
            results[name] = [parse(body, **options) for body in bodies]
            seconds[name].append(time.perf_counter() - start)
        if r == 0 and results["rust"] != results["python"]:
            raise SystemExit(f"{label}: the Rust and Python results differ")
        rejected = sum(len(rejections) for _, rejections, _ in results["rust"])
        print(
            f"  {label}, round {r + 1}/{args.rounds}: Rust {seconds['rust'][-1] * 1000:,.0f} ms,"
            f" Python {seconds['python'][-1] * 1000:,.0f} ms ({rejected} events rejected)",
            flush=True,
        )
    events = args.events * args.batches
    rust, python = (statistics.median(seconds[n]) for n in ("rust", "python"))
    return {
        "label": label,
        "mib": sum(map(len, bodies)) / 2**20,
        "rust": events / rust,
        "python": events / python,
        "ratio": python / rust,
    }


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"| {args.batches} batches of {args.events} events | sent, MiB | Rust, events/s"
        " | Python, events/s | Rust / Python |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['mib']:,.1f} | {row['rust']:,.0f} | {row['python']:,.0f}"
            f" | **{row['ratio']:.1f}x** |"
        )
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
