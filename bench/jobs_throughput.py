"""Job claim + complete throughput: how many jobs per second external workers finish.

One treadle server (Granian) runs on 127.0.0.1. For every (claim limit, worker count)
case and every round, the bench makes a fresh organization with one submitting key and
one key per worker, loads a backlog of jobs through ``POST /v1/jobs`` (many concurrent
clients, each with its own Idempotency-Key), and then starts the workers: separate
processes, each a loop of

    POST /v1/jobs/claim {"limit": L}
    POST /v1/jobs/{id}/complete {"lease_token": …, "usage": [{"metric": "units", "quantity": 1}]}
        per job

until a claim comes back empty. jobs/s is the jobs completed over the wall time from the
moment every worker was ready until the last one stopped. After each run the bench checks
in PostgreSQL that every job of the organization succeeded exactly once (one attempt, its
usage records and its three events) and prints where the CPU went: server, PostgreSQL,
Redis, the worker clients and everything else on the machine.

    .venv/bin/python bench/jobs_throughput.py [--backlog 5000] [--limits 1,10] [--clients 1,4]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded):
the bench's own database and key prefix, dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import noise
import psycopg
import runner
import servers
import tenants

NEW_JOB = json.dumps({"type": "default"}).encode()
USAGE = [{"metric": "units", "quantity": 1}]
SUBMIT_SCOPES = ["jobs.submit", "jobs.read"]
WORKER_SCOPES = ["jobs:work"]
# One run's workers may not keep failing forever: past this many errors a worker stops.
MAX_ERRORS = 100


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = {"TREADLE_ACCESS_LOG": "true" if args.access_log else "false"}
    with runner.unlimited_treadle("jobs_throughput", args, env, _header) as bench:
        cases = [(limit, n) for limit in args.limits for n in args.clients]
        for r in range(1, args.rounds + 1):
            for limit, n in cases:
                run = _run(bench.app, bench.store, bench.token, limit, n, args)
                run["round"] = r
                bench.report["runs"].append(run)
                _print_run(r, args.rounds, run)
        bench.report["table"] = table(bench.report["runs"])
        print("\n" + bench.report["table"])
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--backlog", type=int, default=5000, help="jobs queued before each run")
    p.add_argument("--limits", type=ints, default=[1, 10], help="claim limits, comma-separated")
    p.add_argument("--clients", type=ints, default=[1, 4], help="worker processes per run")
    p.add_argument("--rounds", type=int, default=3, help="runs of every case, interleaved")
    p.add_argument("--submitters", type=int, default=16, help="concurrent submitting clients")
    p.add_argument("--server-workers", type=int, default=1, help="treadle worker processes")
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="treadle's access log (default: on, as shipped)",
    )
    p.add_argument(
        "--vacuum",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="VACUUM ANALYZE the job tables after loading each backlog (what autovacuum\n"
        "would do; needed where it is off)",
    )
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("TREADLE_BENCH_REDIS_URL", ""))
    p.add_argument("--quiet", type=float, default=0.25, metavar="CORES")
    p.add_argument("--quiet-wait", type=float, default=60.0, metavar="SECONDS")
    return p


def _run(
    app: servers.Target,
    store: servers.Storage,
    token: str,
    limit: int,
    clients: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    org = tenants.organization(app, token, [SUBMIT_SCOPES] + [WORKER_SCOPES] * clients)
    started = time.monotonic()
    submitted, submit_errors = submit(app.url, org.keys[0], args.backlog, args.submitters)
    submit_rate = submitted / (time.monotonic() - started)
    if args.vacuum:
        with psycopg.connect(store.database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE jobs, usage_records, event_outbox")
    meter = noise.Meter(lambda: [app.proc.pid] if app.proc else [])
    others_before = noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    cpu = noise.Cpu(app.proc.pid if app.proc else None, database=store.database)
    results = work(app.url, org.keys[1:], limit)
    used = cpu.stop()
    used["clients"] = sum(r["cpu"] for r in results)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    done = sum(len(r["done"]) for r in results)
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    ids = [i for r in results for i in r["done"]]
    return {
        "limit": limit,
        "clients": clients,
        "backlog": args.backlog,
        "submitted": submitted,
        "submit_errors": dict(submit_errors),
        "submit_jobs_per_s": submit_rate,
        "completed": done,
        "duplicates": len(ids) - len(set(ids)),
        "wall_s": wall,
        "jobs_per_s": done / wall if wall > 0 else 0.0,
        "claims": sum(r["claims"] for r in results),
        "errors": dict(errors),
        "cpu_s": used,
        "others_before": others_before,
        "check": check(store.database_url, org.id),
    }


def submit(url: str, key: str, count: int, concurrency: int) -> tuple[int, Counter[str]]:
    """Queue ``count`` jobs through the API from ``concurrency`` threads; how many were
    created, and the failures."""
    run = secrets.token_hex(4)
    numbers = iter(range(count))
    lock = threading.Lock()
    errors: Counter[str] = Counter()
    created = 0

    def one_client() -> None:
        nonlocal created
        with tenants.Client(url, key) as client:
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                status, _ = client.post("/v1/jobs", NEW_JOB, {"idempotency-key": f"{run}-{n}"})
                with lock:
                    if status == 201:
                        created += 1
                    else:
                        errors[f"submit {status}"] += 1

    threads = [threading.Thread(target=one_client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return created, errors


def work(url: str, keys: list[str], limit: int) -> list[dict[str, Any]]:
    """Run one worker process per key until the queue is empty; their reports."""
    return runner.in_processes(worker, [(url, key, limit) for key in keys])


def worker(url: str, key: str, limit: int, ready: Any, results: Any) -> None:
    """One external worker: claim, complete each job, until a claim comes back empty."""
    claim = json.dumps({"limit": limit}).encode()
    with tenants.Client(url, key) as client:
        client.get("/v1/me")  # connected, and the key is in the server's cache
        ready.wait(timeout=60)
        start, cpu = time.monotonic(), time.process_time()
        done: list[str] = []
        errors: Counter[str] = Counter()
        claims = 0
        while sum(errors.values()) < MAX_ERRORS:
            status, answer = client.post("/v1/jobs/claim", claim)
            claims += 1
            if status != 200:
                errors[f"claim {status}"] += 1
                continue
            jobs = answer["data"]
            if not jobs:
                break
            for job in jobs:
                body = json.dumps({"lease_token": job["lease_token"], "usage": USAGE}).encode()
                status, _ = client.post(f"/v1/jobs/{job['id']}/complete", body)
                if status == 200:
                    done.append(job["id"])
                else:
                    errors[f"complete {status}"] += 1
        end = time.monotonic()
    results.put(
        {
            "start": start,
            "end": end,
            "cpu": time.process_time() - cpu,
            "claims": claims,
            "done": done,
            "errors": dict(errors),
        }
    )


def check(database_url: str, org_id: str) -> dict[str, Any]:
    """What PostgreSQL holds for the organization's jobs after the run."""
    with psycopg.connect(database_url) as conn:
        statuses: dict[str, int] = dict(
            conn.execute(
                "SELECT status, count(*) FROM jobs WHERE organization_id = %s GROUP BY status",
                (org_id,),
            ).fetchall()
        )
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE attempts <> 1), count(*) FILTER (WHERE cost IS NULL)"
            " FROM jobs WHERE organization_id = %s",
            (org_id,),
        ).fetchone()
        usage = conn.execute(
            "SELECT count(*), count(DISTINCT job_id) FROM usage_records"
            " WHERE organization_id = %s AND job_id IS NOT NULL",
            (org_id,),
        ).fetchone()
        topics: dict[str, int] = dict(
            conn.execute(
                "SELECT topic, count(*) FROM event_outbox WHERE organization_id = %s"
                " GROUP BY topic",
                (org_id,),
            ).fetchall()
        )
    assert row is not None and usage is not None
    return {
        "statuses": statuses,
        "not_one_attempt": row[0],
        "unpriced": row[1],
        "usage_records": usage[0],
        "jobs_with_usage": usage[1],
        "events": topics,
    }


def exactly_once(run: dict[str, Any]) -> bool:
    c, n = run["check"], run["submitted"]
    return (
        c["statuses"] == {"succeeded": n}
        and run["completed"] == n
        and run["duplicates"] == 0
        and c["not_one_attempt"] == 0
        and c["unpriced"] == 0
        and c["usage_records"] == 2 * n
        and c["jobs_with_usage"] == n
        and all(c["events"].get(f"job.{t}") == n for t in ("queued", "running", "succeeded"))
    )


def _print_run(n: int, rounds: int, run: dict[str, Any]) -> None:
    cpu = run["cpu_s"]
    per_job = {k: 1e3 * cpu[k] / max(run["completed"], 1) for k in CPU_GROUPS}
    print(
        f"  round {n}/{rounds} limit {run['limit']:>3} workers {run['clients']}:"
        f" {run['jobs_per_s']:>7,.0f} jobs/s ({run['completed']} in {run['wall_s']:.1f} s,"
        f" {run['claims']} claims)  exactly once: {'yes' if exactly_once(run) else 'NO'}"
        f"  errors {run['errors'] or 0}  submit {run['submit_jobs_per_s']:,.0f} jobs/s\n"
        f"      CPU ms per job: "
        + ", ".join(f"{k} {v:.2f}" for k, v in per_job.items())
        + f"; machine busy {cpu['machine'] / cpu['wall']:.2f} of {os.cpu_count()} cores",
        flush=True,
    )


CPU_GROUPS = ("server", "postgres", "redis", "clients", "machine")


def table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| claim limit | workers | jobs/s (median) | runs | exactly once | errors"
        " | CPU ms/job: server | PostgreSQL | clients | machine busy, cores |",
        "| ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    cases = dict.fromkeys((r["limit"], r["clients"]) for r in runs)
    for limit, clients in cases:
        rows = [r for r in runs if (r["limit"], r["clients"]) == (limit, clients)]

        def med(f: Any, rows: list[dict[str, Any]] = rows) -> float:
            return float(statistics.median(f(r) for r in rows))

        per_job = {
            k: med(lambda r, k=k: 1e3 * r["cpu_s"][k] / max(r["completed"], 1))
            for k in ("server", "postgres", "clients")
        }
        each = ", ".join(f"{r['jobs_per_s']:,.0f}" for r in rows)
        lines.append(
            f"| {limit} | {clients} | **{med(lambda r: r['jobs_per_s']):,.0f}**"
            f" | {each}"
            f" | {'yes' if all(exactly_once(r) for r in rows) else 'NO'}"
            f" | {sum(sum(r['errors'].values()) for r in rows)}"
            f" | {per_job['server']:.2f} | {per_job['postgres']:.2f} | {per_job['clients']:.2f}"
            f" | {med(lambda r: r['cpu_s']['machine'] / r['cpu_s']['wall']):.2f} |"
        )
    return "\n".join(lines)


def _header(info: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"date     {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for key, value in info.items():
        print(f"{key:<8} {value}")
    print(
        f"method   1 treadle server ({args.server_workers} worker, access log"
        f" {'on' if args.access_log else 'off'}), backlog {args.backlog} jobs per run,"
        f" claim limits {args.limits}, worker processes {args.clients},"
        f" {args.rounds} interleaved rounds; medians over rounds\n",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
