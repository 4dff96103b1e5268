"""The frame the job, event and workflow benches run in: storage (given or embedded), the
machine's description, one treadle server whose rate limits never refuse, a signed-in
user, and the raw report written to ``bench/raw/`` however the run ends."""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import servers
from http_compare import RAW, machine

# Every key and user sends thousands of requests: limits that never refuse.
UNLIMITED = {
    "TREADLE_RATE_LIMIT_API_KEY": "100000000/60",
    "TREADLE_RATE_LIMIT_USER": "100000000/60",
}


@dataclass
class Bench:
    app: servers.Target
    store: servers.Storage
    token: str
    report: dict[str, Any]


# Worker processes start afresh (no inherited connections or threads).
SPAWN = mp.get_context("spawn")


def in_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``target(*a, ready, results)`` in a process per ``a`` in ``args``; each waits
    on ``ready`` (a barrier released once all are up, so they start together) and puts one
    report on ``results``. The reports, in the order they arrive."""
    ready = SPAWN.Barrier(len(args) + 1)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*a, ready, results), daemon=True) for a in args]
    for proc in procs:
        proc.start()
    ready.wait(timeout=60)
    reports = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    return reports


def rounds(
    bench: Bench,
    args: argparse.Namespace,
    one: Callable[[servers.Target, servers.Storage, str, argparse.Namespace], dict[str, Any]],
    line: Callable[[dict[str, Any]], str],
    table: Callable[[list[dict[str, Any]], argparse.Namespace], str],
) -> None:
    """``args.rounds`` rounds of ``one``, each printed with ``line`` as it ends and kept in
    the report; then the report's markdown ``table``, printed too."""
    for r in range(1, args.rounds + 1):
        run = one(bench.app, bench.store, bench.token, args)
        run["round"] = r
        bench.report["runs"].append(run)
        print(f"  round {r}/{args.rounds}: {line(run)}", flush=True)
    bench.report["table"] = table(bench.report["runs"], args)
    print("\n" + bench.report["table"])


def add_common_args(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The flags every bench run in this frame takes: rounds, server workers, storage, and
    how long to wait for a quiet machine before each measurement."""
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--server-workers", type=int, default=1, help="treadle worker processes")
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("TREADLE_BENCH_REDIS_URL", ""))
    p.add_argument("--quiet", type=float, default=0.25, metavar="CORES")
    p.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS")
    return p


def print_machine(info: dict[str, Any]) -> None:
    print(f"date     {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for key, value in info.items():
        print(f"{key:<8} {value}")


@contextmanager
def unlimited_treadle(
    name: str,
    args: argparse.Namespace,
    env: dict[str, str] | None = None,
    header: Callable[[dict[str, Any], argparse.Namespace], None] | None = None,
) -> Iterator[Bench]:
    """Run the body against a started treadle (``args.server_workers`` Granian workers,
    access log on); the report's ``runs`` and ``table`` are the body's to fill."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    RAW.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {"started": stamp, "argv": sys.argv, "args": vars(args), "runs": []}
    out = RAW / f"{name}-{stamp}.json"
    try:
        with (
            tempfile.TemporaryDirectory(prefix="treadle-bench-") as tmp,
            servers.storage(args.database_url, args.redis_url, Path(tmp)) as store,
        ):
            report["machine"] = machine(store)
            (header or (lambda info, _: print_machine(info)))(report["machine"], args)
            app = servers.treadle("granian", args.server_workers, store, Path(tmp), access_log=True)
            app.env.update({**UNLIMITED, **(env or {})})
            error = app.start()
            if error:
                print("\n".join(app.tail()), file=sys.stderr)
                raise SystemExit(f"treadle did not start: {error}")
            try:
                yield Bench(app, store, servers.signup(app), report)
            finally:
                app.stop()
    finally:
        out.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nraw results: {out.relative_to(RAW.parent.parent)}")
