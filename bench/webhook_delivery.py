"""Webhook deliveries to a local receiver: how many per second, and how long after the
event each arrives.

One treadle server (one worker, ``webhook_concurrency`` 64) and a bare Granian receiver
(``webhook_receiver.py``) that verifies every delivery with the ``standardwebhooks``
package. Each round has three parts:

- **throughput**: ``--jobs`` jobs through ``POST /v1/jobs/batch``; each ``job.queued``
  event is one delivery. deliveries/s counts from the first batch sent to the last
  delivery received: submission, relay, delivery rows, claims, signing and sending.
- **baseline**: the bench process itself POSTs as many signed bodies of the same size to
  the same receiver with aiohttp, 64 at a time (the raw send loop treadle's sender is).
- **latency**: ``--rate`` single ``POST /v1/jobs`` per second for ``--seconds``; each
  delivery's latency is its arrival at the receiver minus the event's ``occurred_at``.

Every round checks that each job's event arrived, verified, exactly once (``lost``,
``duplicates``, ``unverified``).

    .venv/bin/python bench/webhook_delivery.py [--jobs 10000] [--rate 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import runner
import servers
import tenants
from jobs_batches import SUBMIT_SCOPES, submit

from treadle import _core

CONCURRENCY = 64


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = {
        "TREADLE_WEBHOOK_ALLOW_PRIVATE": "true",
        "TREADLE_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
    }
    with runner.unlimited_treadle("webhook_delivery", args, env) as bench:
        receiver = servers.Target(
            "webhook-receiver",
            "receiver",
            servers.granian_argv("webhook_receiver:app", 1),
            {},
            "/_report",
            False,
            Path(bench.app.log_dir),
        )
        error = receiver.start()
        if error:
            raise SystemExit(f"the receiver did not start: {error}")
        try:
            runner.rounds(
                bench,
                args,
                lambda app, _store, token, a: _round(app, receiver, token, a),
                _line,
                _table,
            )
        finally:
            receiver.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=10000, help="jobs (deliveries) per round")
    p.add_argument("--rate", type=int, default=200, help="events/s of the latency part")
    p.add_argument("--seconds", type=int, default=10, help="length of the latency part")
    return runner.add_common_args(p)


def _round(
    app: servers.Target, receiver: servers.Target, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    org = tenants.organization(app, token, [SUBMIT_SCOPES])
    status, made = servers._request(
        app.url + "/v1/webhooks",
        {"organization_id": org.id, "url": receiver.url + "/hook", "topics": ["job.queued"]},
        {"authorization": f"Bearer {token}"},
    )
    if status != 201:
        raise RuntimeError(f"POST /v1/webhooks answered {status}: {made}")
    secret = made["data"]["secret"]

    _reset(receiver, secret)
    started = time.time()
    submitted, errors = submit(app.url, org.keys[0], args.jobs, 2)
    seen = _wait(receiver, submitted)
    elapsed = max(s[4] for s in seen) - started if seen else float("inf")
    checked = _check(seen, submitted)

    _reset(receiver, secret)
    raw = asyncio.run(_raw_loop(receiver.url + "/hook", secret, args.jobs))

    _reset(receiver, secret)
    paced = _paced(app.url, org.keys[0], args.rate, args.seconds)
    late = _wait(receiver, paced)
    latencies = sorted(s[3] for s in late)
    return {
        "deliveries": submitted,
        "submit_errors": dict(errors),
        "deliveries_per_s": submitted / elapsed,
        "raw_per_s": raw,
        "ratio": submitted / elapsed / raw,
        **checked,
        "latency_events": paced,
        "latency_lost": _check(late, paced)["lost"],
        "p50_ms": _pct(latencies, 0.50),
        "p95_ms": _pct(latencies, 0.95),
        "p99_ms": _pct(latencies, 0.99),
    }


def _reset(receiver: servers.Target, secret: str) -> None:
    urllib.request.urlopen(receiver.url + "/_secret", data=secret.encode(), timeout=10).read()


def _report(receiver: servers.Target) -> list[list[Any]]:
    with urllib.request.urlopen(receiver.url + "/_report", timeout=30) as resp:
        return list(orjson.loads(resp.read()))


def _wait(receiver: servers.Target, expected: int, quiet: float = 10.0) -> list[list[Any]]:
    """What the receiver got once ``expected`` distinct jobs arrived, or once nothing more
    came for ``quiet`` seconds."""
    last_change, count = time.monotonic(), -1
    while True:
        seen = _report(receiver)
        if len({s[1] for s in seen}) >= expected:
            return seen
        if len(seen) != count:
            count, last_change = len(seen), time.monotonic()
        elif time.monotonic() - last_change > quiet:
            return seen
        time.sleep(0.05)


def _check(seen: list[list[Any]], expected: int) -> dict[str, int]:
    jobs = [s[1] for s in seen]
    return {
        "lost": max(0, expected - len(set(jobs))),
        "duplicates": len(jobs) - len(set(jobs)),
        "unverified": sum(1 for s in seen if not s[2]),
    }


async def _raw_loop(url: str, secret: str, count: int) -> float:
    """The baseline: ``count`` signed POSTs of an event-sized body, CONCURRENCY at a time."""
    body = orjson.dumps(
        {
            "id": "1718000000000-0",
            "topic": "job.queued",
            "organization_id": str(uuid.uuid4()),
            "job_id": None,
            "run_id": None,
            "occurred_at": "2026-12-03T00:00:00+00:00",
            "data": {"id": str(uuid.uuid4()), "type": "default", "status": "queued"},
        }
    )
    left = iter(range(count))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:

        async def one() -> None:
            for n in left:
                ts = int(time.time())
                msg = f"msg_{n}"
                headers = {
                    "content-type": "application/json",
                    "webhook-id": msg,
                    "webhook-timestamp": str(ts),
                    "webhook-signature": _core.webhook_sign([secret], msg, ts, body),
                }
                async with s.post(url, data=body, headers=headers) as answer:
                    await answer.read()

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - started)


def _paced(url: str, key: str, rate: int, seconds: int) -> int:
    """``rate`` jobs a second, one ``POST /v1/jobs`` each, for ``seconds``; how many."""
    sent = 0
    lock = threading.Lock()
    total = rate * seconds
    start = time.monotonic()

    def one_client(offset: int, step: int) -> None:
        nonlocal sent
        with tenants.Client(url, key) as client:
            for n in range(offset, total, step):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                status, _ = client.post(
                    "/v1/jobs",
                    orjson.dumps({"type": "default"}),
                    {"idempotency-key": str(uuid.uuid4())},
                )
                if status == 201:
                    with lock:
                        sent += 1

    threads = [threading.Thread(target=one_client, args=(i, 4)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sent


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def _line(run: dict[str, Any]) -> str:
    return (
        f"{run['deliveries_per_s']:,.0f} deliveries/s (raw {run['raw_per_s']:,.0f},"
        f" {run['ratio']:.2f}x), lost {run['lost']}, dup {run['duplicates']},"
        f" unverified {run['unverified']}; at {run['latency_events']} events:"
        f" p50 {run['p50_ms']:.1f} p95 {run['p95_ms']:.1f} p99 {run['p99_ms']:.1f} ms"
        f" (lost {run['latency_lost']})"
    )


def _table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    def each(key: str, form: str) -> str:
        return ", ".join(form.format(r[key]) for r in runs)

    return "\n".join(
        [
            "| figure | treadle (median) | baseline (median) | ratio | rounds |",
            "| --- | ---: | ---: | ---: | --- |",
            f"| deliveries/s, {args.jobs:,} per round | {med('deliveries_per_s'):,.0f}"
            f" | raw aiohttp loop {med('raw_per_s'):,.0f} | {med('ratio'):.2f}"
            f" | {each('deliveries_per_s', '{:,.0f}')} |",
            f"| event→delivery at {args.rate}/s, p50 / p95 / p99 ms"
            f" | {med('p50_ms'):.1f} / {med('p95_ms'):.1f} / {med('p99_ms'):.1f} | | |"
            f" {each('p95_ms', '{:.1f}')} (p95) |",
            f"| lost / duplicates / unverified, all rounds | {sum(r['lost'] for r in runs)}"
            f" / {sum(r['duplicates'] for r in runs)} / {sum(r['unverified'] for r in runs)}"
            " | | | |",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
