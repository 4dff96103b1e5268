"""Fan-out: many SSE subscribers on one server worker, events published at a steady rate;
publish-to-receive latency and loss per (subscriber, event).

One treadle server (Granian, one worker) runs on 127.0.0.1. A separate process opens
``--subscribers`` connections to ``GET /v1/events/stream?topic=job.queued`` with an API key
(scope ``events.read``) and records, per subscriber, when each event arrived. Events are
published at ``--rate`` per second for ``--duration`` seconds by one of two sources:

- ``xadd``: entries added straight to the Redis stream ``{prefix}{events}`` in the relay's
  own format (fields org, topic, job, run, payload; the payload copied from a real
  ``job.queued`` event). This measures stream -> each process's feed -> hub -> SSE,
  without the cost of submitting jobs.
- ``post``: ``POST /v1/jobs`` (paced, from threads); each job's ``job.queued`` event goes
  outbox -> relay -> stream -> feed -> hub -> SSE. This is end to end from the request.

Each event carries its sequence number in the job's labels (``"seq":"<run tag><n>"``);
latency is the subscriber's receive time minus the publisher's send time, both
``time.monotonic()`` on this machine. After publishing the bench waits ``--drain`` seconds,
then counts for every subscriber the events it missed or got twice, and the streams that
ended early (``event: error``, e.g. slow_consumer).

    .venv/bin/python bench/sse_fanout.py [--subscribers 1000] [--rate 500] [--duration 15]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import multiprocessing as mp
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import noise
import profiling
import psutil
import redis
import servers
import sse_subscribers
import tenants
from http_compare import RAW, machine

from treadle.bus.events import stream_keys

SETUP_SEQ = "setup"
SETUP = b'"seq":"setup"'


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sse_subscribers.raise_fd_limit(args.subscribers + 100)
    RAW.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report: dict[str, Any] = {
        "started": stamp,
        "argv": sys.argv,
        "args": dict(vars(args)),
        "runs": [],
    }
    out = RAW / f"sse_fanout-{stamp}.json"
    try:
        with (
            tempfile.TemporaryDirectory(prefix="treadle-bench-") as tmp,
            servers.storage(args.database_url, args.redis_url, Path(tmp)) as store,
        ):
            report["machine"] = machine(store)
            _header(report["machine"], args)
            app = servers.treadle("granian", 1, store, Path(tmp), access_log=args.access_log)
            app.env.update(
                {
                    "TREADLE_RATE_LIMIT_API_KEY": "100000000/60",
                    "TREADLE_RATE_LIMIT_USER": "100000000/60",
                    # Every subscriber uses the same key: caps that admit them all.
                    "TREADLE_EVENT_STREAMS_PER_PRINCIPAL": str(100 * args.subscribers),
                    "TREADLE_EVENT_STREAMS_PER_ORGANIZATION": str(100 * args.subscribers),
                    **dict(item.split("=", 1) for item in args.server_env),
                }
            )
            error = app.start()
            if error:
                print("\n".join(app.tail()), file=sys.stderr)
                raise SystemExit(f"treadle did not start: {error}")
            try:
                org = tenants.organization(
                    app, servers.signup(app), [["events.read"], ["jobs.submit", "jobs.read"]]
                )
                fields = _template(app, store, org)
                for r in range(1, args.rounds + 1):
                    for rate, source in itertools.product(args.rate, args.sources):
                        run = _run(app, store, org, fields, source, rate, args)
                        run["round"] = r
                        report["runs"].append(run)
                        _print_run(r, args.rounds, run)
            finally:
                app.stop()
        report["table"] = table(report["runs"])
        print("\n" + report["table"])
    finally:
        out.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nraw results: {out.relative_to(RAW.parent.parent)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--subscribers", type=int, default=1000, help="SSE connections")
    p.add_argument(
        "--rate",
        type=lambda s: [float(x) for x in s.split(",") if x],
        default=[500.0],
        help="events published per second; several, comma-separated, make a sweep",
    )
    p.add_argument("--duration", type=float, default=15.0, help="seconds of publishing")
    p.add_argument("--drain", type=float, default=10.0, help="seconds to wait after the last")
    p.add_argument(
        "--sources",
        type=lambda s: [x for x in s.split(",") if x],
        default=["xadd", "post"],
        help="comma-separated: xadd (Redis stream), post (POST /v1/jobs)",
    )
    p.add_argument("--rounds", type=int, default=3, help="runs of every source, interleaved")
    p.add_argument(
        "--post-threads",
        type=int,
        default=16,
        help="publishing threads for post (subscribers + threads must stay under\n"
        "Granian's 1024 requests in flight per worker, or requests wait)",
    )
    p.add_argument(
        "--profile",
        type=float,
        default=0,
        metavar="SECONDS",
        help="py-spy the server worker this long during the first run's publishing\n"
        "(needs py-spy); output in bench/raw/",
    )
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="treadle's access log (default: on, as shipped)",
    )
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="TREADLE_X=VALUE",
        help="a setting for the server (repeatable), e.g. TREADLE_EVENT_WAKE_MS=0",
    )
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("TREADLE_BENCH_REDIS_URL", ""))
    p.add_argument("--quiet", type=float, default=0.25, metavar="CORES")
    p.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS")
    return p


# --- publishing --------------------------------------------------------------------------


def _template(app: servers.Target, store: servers.Storage, org: tenants.Org) -> dict[str, bytes]:
    """The stream entry the relay wrote for a real job, to copy for ``xadd``."""
    body = json.dumps({"type": "default", "labels": {"seq": SETUP_SEQ}}).encode()
    with tenants.Client(app.url, org.keys[1]) as client:
        status, answer = client.post("/v1/jobs", body, {"idempotency-key": "bench-setup"})
    if status != 201:
        raise SystemExit(f"POST /v1/jobs answered {status}: {answer}")
    stream = redis.Redis.from_url(store.redis_url)
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            for _, fields in stream.xrevrange(stream_keys(store.redis_prefix)[0], count=10):
                if (
                    fields[b"topic"] == sse_subscribers.TOPIC.encode()
                    and SETUP in fields[b"payload"]
                ):
                    return {k.decode(): v for k, v in fields.items()}
            time.sleep(0.1)
    finally:
        stream.close()
    raise SystemExit("the setup job's event never reached the Redis stream: is the relay on?")


def publish_xadd(
    store: servers.Storage, fields: dict[str, bytes], tag: str, count: int, rate: float
) -> tuple[array[float], Counter[str]]:
    """XADD ``count`` events at ``rate`` per second; send times by sequence number."""
    client = redis.Redis.from_url(store.redis_url)
    key = stream_keys(store.redis_prefix)[0]
    sent = array("d", bytes(8 * count))
    errors: Counter[str] = Counter()
    template = fields["payload"]
    start = time.monotonic() + 0.1
    try:
        for n in range(count):
            _sleep_until(start + n / rate)
            payload = template.replace(SETUP, b'"seq":"%s%d"' % (tag.encode(), n))
            entry = {**fields, "payload": payload}
            at = time.monotonic()
            try:
                client.xadd(key, entry, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
            except redis.RedisError as exc:
                errors[type(exc).__name__] += 1
                continue
            sent[n] = at
    finally:
        client.close()
    return sent, errors


def publish_post(
    app: servers.Target, key: str, tag: str, count: int, rate: float, threads: int
) -> tuple[array[float], Counter[str]]:
    """POST ``count`` jobs at ``rate`` per second from ``threads`` threads."""
    sent = array("d", bytes(8 * count))
    errors: Counter[str] = Counter()
    numbers = iter(range(count))
    lock = threading.Lock()
    start = time.monotonic() + 0.1

    def one() -> None:
        with tenants.Client(app.url, key) as client:
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                _sleep_until(start + n / rate)
                body = b'{"type":"default","labels":{"seq":"%s%d"}}' % (tag.encode(), n)
                at = time.monotonic()
                try:
                    status, _ = client.post("/v1/jobs", body, {"idempotency-key": f"{tag}{n}"})
                    failure = "" if status == 201 else str(status)
                except (OSError, http.client.HTTPException) as exc:
                    # No answer: the job may exist all the same; its event is not counted.
                    client.conn.close()
                    failure = type(exc).__name__
                if not failure:
                    sent[n] = at
                else:
                    with lock:
                        errors[f"POST {failure}"] += 1

    pool = [threading.Thread(target=one) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sent, errors


def _sleep_until(at: float) -> None:
    delay = at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


# --- one run -----------------------------------------------------------------------------


def _run(
    app: servers.Target,
    store: servers.Storage,
    org: tenants.Org,
    fields: dict[str, bytes],
    source: str,
    rate: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    tag = secrets.token_hex(3) + "-"
    count = int(rate * args.duration)
    host, port = "127.0.0.1", app.port
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(
        target=sse_subscribers.run,
        args=(there, host, port, org.keys[0], args.subscribers, tag, count),
    )
    proc.start()
    try:
        connected = here.recv()
        if not connected["ok"]:
            raise SystemExit(f"no subscriber got its stream: {connected}")
        if connected["ok"] < args.subscribers:
            print(f"  only {connected['ok']} of {args.subscribers} subscribed: {connected}")
        _prime(here, store, fields, connected["ok"])
        pids = [p.pid for p in (app.proc, proc) if p is not None and p.pid]
        meter = noise.Meter(lambda: pids)
        others_before = noise.wait_quiet(meter, args.quiet, args.quiet_wait)
        cpu = noise.Cpu(app.proc.pid if app.proc else None, [proc.pid], store.database)
        worker = _worker(app)
        threads = profiling.thread_times(worker)
        spy = _profile(worker, args) if args.profile else None
        started = time.monotonic()
        if source == "xadd":
            sent, errors = publish_xadd(store, fields, tag, count, rate)
        else:
            sent, errors = publish_post(app, org.keys[1], tag, count, rate, args.post_threads)
        published_in = time.monotonic() - started
        used = cpu.stop()
        threads_share = profiling.thread_share(
            threads, profiling.thread_times(worker), published_in
        )
        if spy is not None:
            spy.join()
            args.profile = 0  # the first run only
        time.sleep(args.drain)
        here.send(sent)
        summary = here.recv()
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    times = sorted(t for t in sent if t)
    return {
        "source": source,
        "rate": rate,
        "subscribers": args.subscribers,
        "connected": connected,
        "published": len(times),
        "publish_errors": dict(errors),
        "publish_rate": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0,
        "publish_seconds": published_in,
        "cpu_s": used,
        "worker_threads": threads_share,
        "payload_bytes": len(fields["payload"]),
        "others_before": others_before,
        **summary,
    }


def _worker(app: servers.Target) -> int:
    """The server's worker process (``treadle serve`` supervises one with --workers 1)."""
    assert app.proc is not None
    children = psutil.Process(app.proc.pid).children(recursive=True)
    return children[-1].pid if children else app.proc.pid


def _profile(pid: int, args: argparse.Namespace) -> threading.Thread:
    """py-spy the worker for ``--profile`` seconds, from 3 s into the publishing."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = RAW / f"profile-sse_fanout-{stamp}.txt"

    def record() -> None:
        spy = profiling.py_spy()
        if spy is None:
            print(profiling.INSTALL_HINT, flush=True)
            return
        time.sleep(3)
        argv = [spy, "record", "--pid", str(pid), "--duration", f"{args.profile:g}"]
        subprocess.run(
            [*argv, "--rate", "200", "--format", "raw", "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        summary = profiling.summarise(raw.read_text())
        raw.with_suffix(".summary.txt").write_text(summary)
        print(f"\npy-spy on the server worker (pid {pid}):\n{summary}\nraw: {raw}\n", flush=True)

    thread = threading.Thread(target=record)
    thread.start()
    return thread


def _prime(conn: Any, store: servers.Storage, fields: dict[str, bytes], expected: int) -> None:
    """Publish unmeasured events until every subscriber has received one: every stream is
    then open end to end."""
    client = redis.Redis.from_url(store.redis_url)
    key = stream_keys(store.redis_prefix)[0]
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            client.xadd(key, fields, maxlen=100_000, approximate=True)  # type: ignore[arg-type]
            time.sleep(0.2)
            conn.send("primed?")
            if conn.recv() >= expected:
                return
    finally:
        client.close()
    raise SystemExit("subscribers did not all receive the priming events within 60 s")


# --- report ------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _cores(run: dict[str, Any]) -> dict[str, float]:
    """Cores used while publishing; ``others``: everything else on the machine."""
    cpu = run["cpu_s"]
    cores = {k: cpu[k] / cpu["wall"] for k in ("server", "clients", "redis", "postgres")}
    cores["others"] = cpu["machine"] / cpu["wall"] - sum(cores.values())
    return cores


def _print_run(n: int, rounds: int, run: dict[str, Any]) -> None:
    cores = _cores(run)
    print(
        f"  round {n}/{rounds} {run['source']:<4} at {run['rate']:g}/s:"
        f" {run['published']} events at"
        f" {run['publish_rate']:,.0f}/s to {run['connected']['ok']} subscribers:"
        f" p50 {_ms(run['p50_ms'])} ms  p99 {_ms(run['p99_ms'])} ms  max {_ms(run['max_ms'])} ms;"
        f" missing {run['missing']} of {run['pairs_expected']}"
        f" ({run['subscribers_missing_any']} subscribers), duplicates {run['duplicates']},"
        f" ended early {run['ended_with_error'] or 0}, publish errors"
        f" {run['publish_errors'] or 0}\n      cores used: "
        + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
        + f"; server worker threads (% of a core): {run['worker_threads']}",
        flush=True,
    )


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| source | subscribers | target events/s | events/s | p50 ms | p99 ms | max ms"
        " | missing (pairs) | duplicates | streams ended early | cores: server | subscribers"
        " | others |",
        "| --- |" + " ---: |" * 12,
    ]
    for source, rate in dict.fromkeys((r["source"], r["rate"]) for r in runs):
        rows = [r for r in runs if (r["source"], r["rate"]) == (source, rate)]

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float | None:
            values = [r[key] for r in rows if r[key] is not None]
            return float(statistics.median(values)) if values else None

        def cores(group: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(_cores(r)[group] for r in rows)

        ended = sum(sum(r["ended_with_error"].values()) for r in rows)
        lines.append(
            f"| {source} | {rows[0]['subscribers']:,} | {rate:g} | {med('publish_rate') or 0:,.0f}"
            f" | {_ms(med('p50_ms'))} | {_ms(med('p99_ms'))} | {_ms(med('max_ms'))}"
            f" | {sum(r['missing'] for r in rows)} of {sum(r['pairs_expected'] for r in rows):,}"
            f" | {sum(r['duplicates'] for r in rows)} | {ended}"
            f" | {cores('server'):.2f} | {cores('clients'):.2f} | {cores('others'):.2f} |"
        )
    return "\n".join(lines)


def _header(info: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"date     {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for key, value in info.items():
        print(f"{key:<8} {value}")
    print(
        f"method   1 treadle server (1 Granian worker, access log"
        f" {'on' if args.access_log else 'off'}), {args.subscribers} SSE subscribers in one"
        f" process, {args.rate} events/s for {args.duration:g} s from {args.sources},"
        f" {args.rounds} interleaved rounds; medians over rounds\n",
        flush=True,
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
