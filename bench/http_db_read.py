"""Issue 9's one-row-read figure: ``GET /v1/organizations/{id}`` with an API key against a
bare Granian RSGI app doing the same ``SELECT`` through a psycopg pool of the same size
(``hello_granian_pg.py``), driven alternately with wrk in every round.

    .venv/bin/python bench/http_db_read.py [--rounds 5] [--duration 5] [--workers 1]
        [--pool-max 10] [--prepare-threshold 5] [--profile 10]

``--pool-max`` / ``--prepare-threshold`` set ``TREADLE_DB_POOL_MAX`` /
``TREADLE_DB_PREPARE_THRESHOLD`` and the bare app's pool alike (unset: treadle's defaults);
several comma-separated values sweep them, one pair of servers per combination. Prints
median req/s, p50 and p99 over the rounds and the ratio treadle / bare (per round, then the
median); raw wrk reports go to ``bench/raw/``. Storage as in ``http_compare.py``
(``--database-url`` / ``--redis-url``, else embedded servers).
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import noise
import profiling
import psycopg
import servers
import tenants
import wrk
from http_compare import RAW, machine, print_header

from treadle.settings import Settings

DEFAULTS = Settings()
STATS_DELAY = 11.0
STATEMENT_PROBE = 500


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.threads, args.warmup = 1, 2
    if not wrk.available():
        print(wrk.INSTALL_HINT, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    RAW.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs: list[dict[str, Any]] = []
    tables: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="treadle-bench-") as tmp,
        servers.storage(args.database_url, args.redis_url, Path(tmp)) as store,
    ):
        info = machine(store)
        print_header(info, args)
        for pool_max, threshold in itertools.product(args.pool_max, args.prepare_threshold):
            case = f"pool_max={pool_max}, prepare_threshold={threshold}"
            print(f"\n{case}", flush=True)
            got = _bench(args, store, Path(tmp), pool_max, threshold, stamp, not runs)
            runs += [{"case": case, **r} for r in got]
            tables.append(f"\n{case}\n\n" + _table(got))
            print(tables[-1], flush=True)
    out = RAW / f"http_db_read-{stamp}.json"
    out.write_text(
        json.dumps(
            {"machine": info, "args": vars(args), "tables": tables, "runs": runs},
            indent=2,
            default=str,
        )
    )
    print(f"\nraw results: {out.relative_to(RAW.parent.parent)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--connections", type=int, default=64, help="wrk -c")
    p.add_argument(
        "--pool-max",
        type=_list(int),
        default=[DEFAULTS.db_pool_max],
        help="connections per worker's pool, both servers (comma-separated: a sweep)",
    )
    p.add_argument(
        "--prepare-threshold",
        type=_list(str),
        default=[str(DEFAULTS.db_prepare_threshold)],
        help="psycopg prepare_threshold, both servers; -1 never prepares (comma-separated)",
    )
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("TREADLE_BENCH_REDIS_URL", ""))
    p.add_argument("--quiet", type=float, default=0.25, metavar="CORES")
    p.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS")
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="after the rounds, record both servers' busiest worker with py-spy under load",
    )
    return p


def _list(kind: type) -> Any:
    return lambda s: [kind(x) for x in s.split(",") if x]


def _bench(
    args: argparse.Namespace,
    store: servers.Storage,
    tmp: Path,
    pool_max: int,
    threshold: str,
    stamp: str,
    first: bool,
) -> list[dict[str, Any]]:
    pool_min = min(DEFAULTS.db_pool_min, pool_max)
    app = servers.treadle("granian", args.workers, store, tmp, access_log=True)
    app.env.update(
        {
            # One key sends every request: the limit check runs, but never refuses.
            "TREADLE_RATE_LIMIT_API_KEY": "1000000/1",
            "TREADLE_DB_POOL_MIN": str(pool_min),
            "TREADLE_DB_POOL_MAX": str(pool_max),
            "TREADLE_DB_PREPARE_THRESHOLD": threshold,
        }
    )
    bare = bare_pg(args.workers, store, tmp, pool_min, pool_max, threshold)
    try:
        # treadle first: its start migrates the database the bare app reads.
        for target in (app, bare):
            error = target.start()
            if error:
                tail = "\n".join(target.tail())
                raise SystemExit(f"{target.label} did not start: {error}\n{tail}")
        org = tenants.organization(app, servers.signup(app), [["org.read"]])
        auth = {"authorization": f"Bearer {org.keys[0]}"}
        path = f"/v1/organizations/{org.id}"
        servers.check(app, path, auth)
        servers.check(bare, path, {})
        # Counted once: the statements a request runs do not depend on the pool's size.
        per_request: dict[str, float | None] = {bare.name: None, app.name: None}
        if first:
            per_request.update(_statements(store, ((bare, {}), (app, auth)), path))
            print(
                "  PostgreSQL transactions per request: "
                + ", ".join(f"{name} {n:.2f}" for name, n in per_request.items() if n is not None),
                flush=True,
            )
        meter = noise.Meter(lambda: [t.proc.pid for t in (app, bare) if t.proc is not None])
        for target, headers in ((bare, {}), (app, auth)):
            wrk.run(
                target.url + path,
                duration=args.warmup,
                threads=1,
                connections=args.connections,
                headers=headers,
            )
        runs: list[dict[str, Any]] = []
        for n in range(1, args.rounds + 1):
            got: dict[str, wrk.WrkResult] = {}
            for target, headers in ((bare, {}), (app, auth)):
                noise.wait_quiet(meter, args.quiet, args.quiet_wait)
                meter.start()
                cpu = noise.Cpu(target.proc.pid if target.proc else None)
                got[target.name], raw = wrk.run(
                    target.url + path,
                    duration=args.duration,
                    threads=1,
                    connections=args.connections,
                    headers=headers,
                )
                server_cpu = cpu.stop()["server"]
                others = meter.stop()
                result = got[target.name]
                runs.append(
                    {
                        "target": target.name,
                        "round": n,
                        **result.as_dict(),
                        "transactions_per_request": per_request[target.name],
                        # The server's own CPU per request: less noisy than req/s when
                        # other processes share the cores.
                        "server_cpu_us": server_cpu / max(1, result.requests) * 1e6,
                        "others": others,
                        "wrk": raw,
                    }
                )
            b, t = got[bare.name], got[app.name]
            print(
                f"  round {n}/{args.rounds}  bare {b.rps:>9,.0f} req/s p50 {b.p50_ms:.2f}"
                f" p99 {b.p99_ms:.2f}  treadle {t.rps:>9,.0f} req/s p50 {t.p50_ms:.2f}"
                f" p99 {t.p99_ms:.2f}  ratio {t.rps / b.rps:.2f}"
                f"  server CPU/request {runs[-2]['server_cpu_us']:.0f}"
                f" / {runs[-1]['server_cpu_us']:.0f} us"
                f"  errors {t.non_2xx + t.socket_errors + b.non_2xx + b.socket_errors}",
                flush=True,
            )
        for target, headers in ((bare, {}), (app, auth)) if args.profile else ():
            out = RAW / f"profile-db-read-{target.name}-{stamp}"
            print(profiling.record(target, path, headers, args, out)["text"], flush=True)
        return runs
    finally:
        bare.stop()
        app.stop()


def _statements(
    store: servers.Storage,
    targets: tuple[tuple[servers.Target, dict[str, str]], ...],
    path: str,
) -> dict[str, float]:
    """PostgreSQL transactions per request of each target (every autocommit statement is
    one), over ``STATEMENT_PROBE`` requests sent one after the other."""
    out = {}
    before = _transactions(store)
    for target, headers in targets:
        parts = urlsplit(target.url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            for _ in range(STATEMENT_PROBE):
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET {path} on {target.label} answered {resp.status}")
        finally:
            conn.close()
        after = _transactions(store)
        # The read of the counter before is a transaction of its own.
        out[target.name] = (after - before - 1) / STATEMENT_PROBE
        before = after
    return out


def _transactions(store: servers.Storage) -> int:
    """Transactions the bench's database has run, once every backend has reported them:
    a backend that reported less than a second ago holds its counts until it has been
    idle for 10 s (PostgreSQL's PGSTAT_IDLE_INTERVAL)."""
    time.sleep(STATS_DELAY)
    with psycopg.connect(store.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def bare_pg(
    workers: int, store: servers.Storage, tmp: Path, pool_min: int, pool_max: int, threshold: str
) -> servers.Target:
    argv = servers.granian_argv("hello_granian_pg:app", workers)
    env = {
        "HELLO_PG_DATABASE_URL": store.database_url,
        "HELLO_PG_POOL_MIN": str(pool_min),
        "HELLO_PG_POOL_MAX": str(pool_max),
        "HELLO_PG_PREPARE_THRESHOLD": "none" if int(threshold) < 0 else threshold,
    }
    return servers.Target("bare-granian-pg", "bare granian + psycopg", argv, env, "/", False, tmp)


def _table(runs: list[dict[str, Any]]) -> str:
    by = {t: [r for r in runs if r["target"] == t] for t in ("bare-granian-pg", "treadle-granian")}
    bare = {r["round"]: r for r in by["bare-granian-pg"]}
    lines = [
        "| target | req/s | p50 ms | p99 ms | vs bare, per round | server CPU µs/request"
        " | bare CPU / its CPU | transactions/request | non-2xx/errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, label in (
        ("bare-granian-pg", "bare Granian + psycopg pool"),
        ("treadle-granian", "treadle, API key"),
    ):
        rows = by[name]
        if not rows:
            continue
        ratio = statistics.median(r["rps"] / bare[r["round"]]["rps"] for r in rows)
        cpu = statistics.median(
            bare[r["round"]]["server_cpu_us"] / r["server_cpu_us"] for r in rows
        )
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in rows)
        lines.append(
            f"| {label} | {statistics.median(r['rps'] for r in rows):,.0f}"
            f" | {statistics.median(r['p50_ms'] for r in rows):.2f}"
            f" | {statistics.median(r['p99_ms'] for r in rows):.2f} | {ratio:.2f}"
            f" | {statistics.median(r['server_cpu_us'] for r in rows):.0f} | {cpu:.2f}"
            f" | {_median([r['transactions_per_request'] for r in rows])} | {errors} |"
        )
    return "\n".join(lines)


def _median(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    return f"{statistics.median(known):.2f}" if known else "-"


if __name__ == "__main__":
    sys.exit(main())
