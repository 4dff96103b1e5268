"""End to end: jobs submitted in batches → their ``job.queued`` events received on SSE.

One treadle server. ``--subscribers`` Server-Sent Events streams (their own process, one
thread each) listen to ``job.queued`` of a fresh organization; then ``--submitters``
threads post ``--jobs`` jobs through ``POST /v1/jobs/batch`` (1,000 per request). The path
each event takes: the batch's transaction writes the jobs and their outbox rows → NOTIFY →
the relay moves them to the Redis stream in batches → every process's feed → its hub → the
streams. events/s is the jobs submitted over the time from the first request sent to the
last event received by the slowest subscriber; every subscriber must receive every job's
event exactly once (``lost`` and ``duplicates`` count the pairs that did not).

    .venv/bin/python bench/events_e2e.py [--jobs 20000] [--subscribers 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import statistics
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import noise
import orjson
import runner
import servers
import tenants
from jobs_batches import SUBMIT_SCOPES, submit


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with runner.unlimited_treadle("events_e2e", args) as bench:
        app, token, report = bench.app, bench.token, bench.report
        meter = noise.Meter(lambda: [app.proc.pid] if app.proc else [])
        for r in range(1, args.rounds + 1):
            noise.wait_quiet(meter, args.quiet, args.quiet_wait)
            run = _run(app, token, args)
            run["round"] = r
            report["runs"].append(run)
            print(
                f"  round {r}/{args.rounds}: {run['events_per_s']:,.0f} events/s"
                f" ({run['submitted']} jobs; submit alone {run['submit_per_s']:,.0f}"
                f" jobs/s), lost {run['lost']}, duplicates {run['duplicates']}",
                flush=True,
            )
        runs = report["runs"]
        med = statistics.median(r["events_per_s"] for r in runs)
        each = ", ".join(f"{r['events_per_s']:,.0f}" for r in runs)
        report["table"] = "\n".join(
            [
                "| subscribers | jobs per round | events/s (median) | rounds | lost | duplicates |",
                "| ---: | ---: | ---: | --- | ---: | ---: |",
                f"| {args.subscribers} | {args.jobs:,} | **{med:,.0f}**"
                f" | {each}"
                f" | {sum(r['lost'] for r in runs)} | {sum(r['duplicates'] for r in runs)} |",
            ]
        )
        print("\n" + report["table"])
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=20000, help="jobs submitted per round")
    p.add_argument("--subscribers", type=int, default=2, help="SSE streams")
    p.add_argument("--submitters", type=int, default=2, help="threads posting batches")
    return runner.add_common_args(p)


def _run(app: servers.Target, token: str, args: argparse.Namespace) -> dict[str, Any]:
    org = tenants.organization(app, token, [SUBMIT_SCOPES, ["events.read"]])
    ctx = mp.get_context("spawn")
    ready = ctx.Barrier(args.subscribers + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=subscriber, args=(app.url, org.keys[1], args.jobs, ready, results), daemon=True
        )
        for _ in range(args.subscribers)
    ]
    for proc in procs:
        proc.start()
    ready.wait(timeout=60)
    time.sleep(0.5)  # the streams' first bytes are out: they are subscribed
    started = time.time()
    submitted, errors = submit(app.url, org.keys[0], args.jobs, args.submitters)
    submit_s = time.time() - started
    reports = [results.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(timeout=10)
    last = max(r["last"] for r in reports)
    return {
        "submitted": submitted,
        "submit_errors": dict(errors),
        "submit_per_s": submitted / submit_s,
        "events_per_s": submitted / (last - started),
        "lost": sum(max(0, submitted - r["unique"]) for r in reports),
        "duplicates": sum(r["received"] - r["unique"] for r in reports),
        "ended": [r["ended"] for r in reports],
    }


def subscriber(url: str, key: str, expected: int, ready: Any, results: Any) -> None:
    """One SSE stream: read until ``expected`` distinct jobs' events arrived (or 60 s of
    silence), then report when the last one did."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
    conn.request(
        "GET",
        "/v1/events/stream?topic=job.queued",
        headers={"authorization": f"Bearer {key}", "accept": "text/event-stream"},
    )
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    ready.wait(timeout=60)
    seen: set[str] = set()
    received, last, ended = 0, 0.0, ""
    try:
        while len(seen) < expected:
            line = resp.readline()
            if not line:
                ended = "closed"
                break
            if line.startswith(b"event: error"):
                ended = "error"
            if line.startswith(b"data: "):
                event = orjson.loads(line[6:])
                if event.get("topic") != "job.queued":
                    continue
                received += 1
                seen.add(event["job_id"])
                last = time.time()
    except TimeoutError:
        ended = "silent for 60 s"
    conn.close()
    results.put({"unique": len(seen), "received": received, "last": last, "ended": ended})


if __name__ == "__main__":
    sys.exit(main())
