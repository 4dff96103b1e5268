"""The batched worker protocol against raw SQL on the same schema, in the same rounds.

Two figures per round, each beside its baseline:

- **submit**: ``POST /v1/jobs/batch`` with 1,000 jobs per request (``--submitters``
  threads, each batch its own Idempotency-Key) vs a raw multi-row ``INSERT`` of the same
  job rows with psycopg (no HTTP, no outbox, no idempotency record).
- **claim + complete**: ``--clients`` worker processes, each a loop of
  ``POST /v1/jobs/claim {"limit": B}`` then ``POST /v1/jobs/complete`` with the B items,
  until a claim comes back empty; vs the same number of processes running, per batch and
  in one transaction, the same claim query treadle runs, an ``UPDATE … FROM unnest`` to
  succeed the jobs, the usage rows and the outbox rows treadle writes (psycopg, no HTTP).

After every treadle run the bench checks in PostgreSQL that every job succeeded exactly
once, with one attempt, its two usage records and its three events (queued, running,
succeeded).

    .venv/bin/python bench/jobs_batches.py [--backlog 20000] [--batch 100] [--clients 4]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import noise
import orjson
import psycopg
import runner
import servers
import tenants
from jobs_throughput import check, exactly_once
from psycopg.types.json import Jsonb

from treadle.store.jobs import _CLAIM

SUBMIT_SCOPES = ["jobs.submit", "jobs.read"]
WORKER_SCOPES = ["jobs:work"]
USAGE = [{"metric": "units", "quantity": 1}]
PER_REQUEST = 1000
MAX_ERRORS = 100
PRICING = {"base_cost": 0, "unit_cost": 0, "unit": "units"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with runner.unlimited_treadle("jobs_batches", args) as bench:
        for r in range(1, args.rounds + 1):
            run = _round(bench.app, bench.store, bench.token, args)
            run["round"] = r
            bench.report["runs"].append(run)
            _print_round(r, args.rounds, run)
        bench.report["table"] = table(bench.report["runs"], args)
        print("\n" + bench.report["table"])
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backlog", type=int, default=20000, help="jobs per run")
    p.add_argument("--batch", type=int, default=100, help="claim limit and complete batch size")
    p.add_argument("--clients", type=int, default=4, help="worker processes")
    p.add_argument("--submitters", type=int, default=2, help="threads posting batches")
    return runner.add_common_args(p)


def _round(
    app: servers.Target, store: servers.Storage, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    meter = noise.Meter(lambda: [app.proc.pid] if app.proc else [])
    # treadle
    org = tenants.organization(app, token, [SUBMIT_SCOPES] + [WORKER_SCOPES] * args.clients)
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    started = time.monotonic()
    submitted, submit_errors = submit(app.url, org.keys[0], args.backlog, args.submitters)
    submit_s = time.monotonic() - started
    _vacuum(store)
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    results = work(app.url, org.keys[1:], args.batch)
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    ids = [i for r in results for i in r["done"]]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["errors"])
    run = {
        "submitted": submitted,
        "submit_errors": dict(submit_errors),
        "submit_per_s": submitted / submit_s,
        "completed": len(ids),
        "duplicates": len(ids) - len(set(ids)),
        "jobs_per_s": len(ids) / wall if wall > 0 else 0.0,
        "errors": dict(errors),
        "check": check(store.database_url, org.id),
    }
    # raw SQL on the same schema
    raw_org = org.id
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    started = time.monotonic()
    raw_insert(store.database_url, raw_org, args.backlog, args.submitters)
    run["raw_submit_per_s"] = args.backlog / (time.monotonic() - started)
    _vacuum(store)
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    raw = raw_work(store.database_url, args.clients, args.batch, raw_org)
    raw_wall = max(r["end"] for r in raw) - min(r["start"] for r in raw)
    raw_done = sum(r["done"] for r in raw)
    run["raw_completed"] = raw_done
    run["raw_jobs_per_s"] = raw_done / raw_wall if raw_wall > 0 else 0.0
    return run


def _vacuum(store: servers.Storage) -> None:
    with psycopg.connect(store.database_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE jobs, usage_records, event_outbox")


def submit(url: str, key: str, count: int, concurrency: int) -> tuple[int, Counter[str]]:
    """Queue ``count`` jobs through ``POST /v1/jobs/batch`` from ``concurrency`` threads."""
    run = secrets.token_hex(4)
    starts = iter(range(0, count, PER_REQUEST))
    lock = threading.Lock()
    errors: Counter[str] = Counter()
    created = 0

    def one_client() -> None:
        nonlocal created
        with tenants.Client(url, key) as client:
            while True:
                with lock:
                    first = next(starts, None)
                if first is None:
                    return
                n = min(PER_REQUEST, count - first)
                body = orjson.dumps({"jobs": [{"type": "default"}] * n})
                status, answer = client.post(
                    "/v1/jobs/batch", body, {"idempotency-key": f"{run}-{first}"}
                )
                with lock:
                    if status == 201:
                        created += answer["data"]["count"]
                    else:
                        errors[f"submit {status}"] += 1

    threads = [threading.Thread(target=one_client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return created, errors


def work(url: str, keys: list[str], batch: int) -> list[dict[str, Any]]:
    return runner.in_processes(worker, [(url, key, batch) for key in keys])


def worker(url: str, key: str, batch: int, ready: Any, results: Any) -> None:
    """One external worker: claim a batch, complete it in one call, until the queue is empty."""
    claim = json.dumps({"limit": batch}).encode()
    with tenants.Client(url, key) as client:
        client.get("/v1/me")
        ready.wait(timeout=60)
        start = time.monotonic()
        done: list[str] = []
        errors: Counter[str] = Counter()
        while sum(errors.values()) < MAX_ERRORS:
            status, answer = client.post("/v1/jobs/claim", claim)
            if status != 200:
                errors[f"claim {status}"] += 1
                continue
            jobs = answer["data"]
            if not jobs:
                break
            items = [
                {"id": job["id"], "lease_token": job["lease_token"], "usage": USAGE} for job in jobs
            ]
            status, answer = client.post("/v1/jobs/complete", orjson.dumps({"items": items}))
            if status != 200:
                errors[f"complete {status}"] += 1
                continue
            for outcome in answer["data"]:
                if outcome["ok"]:
                    done.append(outcome["id"])
                else:
                    errors[f"item {outcome['error']['code']}"] += 1
        end = time.monotonic()
    results.put({"start": start, "end": end, "done": done, "errors": dict(errors)})


# -- the raw SQL baseline -------------------------------------------------------------------

_RAW_INSERT = (
    "INSERT INTO jobs (id, organization_id, type, input, labels, pricing, max_attempts,"
    " lease_seconds, submitted_by) SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[],"
    " %s::jsonb[], %s::jsonb[], %s::jsonb[], %s::int[], %s::int[], %s::text[])"
)


def raw_insert(database_url: str, org_id: str, count: int, concurrency: int) -> None:
    """The same job rows, 1,000 per multi-row INSERT, from ``concurrency`` threads."""
    starts = iter(range(0, count, PER_REQUEST))
    lock = threading.Lock()

    def one_client() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while True:
                with lock:
                    first = next(starts, None)
                if first is None:
                    return
                n = min(PER_REQUEST, count - first)
                conn.execute(
                    _RAW_INSERT,
                    (
                        [uuid.uuid4() for _ in range(n)],
                        [org_id] * n,
                        ["raw"] * n,
                        [Jsonb({})] * n,
                        [Jsonb({})] * n,
                        [Jsonb(PRICING)] * n,
                        [3] * n,
                        [60] * n,
                        ["raw"] * n,
                    ),
                )

    threads = [threading.Thread(target=one_client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


_RAW_COMPLETE = (
    "UPDATE jobs SET status = 'succeeded', result = NULL, cost = 0, completed_at = now(),"
    " lease_expires_at = NULL, lease_token_hash = NULL, updated_at = now()"
    " FROM unnest(%s::uuid[]) AS d(id) WHERE jobs.id = d.id"
)
_RAW_USAGE = (
    "INSERT INTO usage_records (organization_id, job_id, job_type, metric, quantity, cost)"
    " SELECT %s, j, 'raw', m, 1, 0 FROM unnest(%s::uuid[]) AS j,"
    " unnest(ARRAY['jobs', 'units']) AS m"
)
_RAW_EVENTS = (
    "INSERT INTO event_outbox (organization_id, topic, job_id, payload)"
    " SELECT %s, t, j, %s FROM unnest(%s::uuid[]) AS j, unnest(%s::text[]) AS t"
)


def raw_work(database_url: str, clients: int, batch: int, org_id: str) -> list[dict[str, Any]]:
    return runner.in_processes(raw_worker, [(database_url, batch, org_id)] * clients)


def raw_worker(database_url: str, batch: int, org_id: str, ready: Any, results: Any) -> None:
    """Claim with treadle's claim query, then succeed, meter and announce, per batch in one
    transaction each (as treadle's two calls are)."""
    payload = b'{"topic": "job.succeeded"}' * 10
    with psycopg.connect(database_url) as conn:
        ready.wait(timeout=60)
        start, done = time.monotonic(), 0
        while True:
            with conn.transaction():
                hashes = [secrets.token_hex(16) for _ in range(batch)]
                rows = conn.execute(
                    _CLAIM,
                    {
                        "org": org_id,
                        "types": ["raw"],
                        "limit": batch,
                        "owner": "raw",
                        "lease": None,
                        "hashes": hashes,
                    },
                ).fetchall()
                ids = [row[0] for row in rows]
                if ids:
                    conn.execute(_RAW_EVENTS, (org_id, payload, ids, ["job.running"]))
            if not ids:
                break
            with conn.transaction():
                conn.execute(
                    "SELECT id FROM jobs WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,)
                )
                conn.execute(_RAW_COMPLETE, (ids,))
                conn.execute(_RAW_USAGE, (org_id, ids))
                conn.execute(_RAW_EVENTS, (org_id, payload, ids, ["job.succeeded"]))
            done += len(ids)
        end = time.monotonic()
    results.put({"start": start, "end": end, "done": done})


def _print_round(n: int, rounds: int, run: dict[str, Any]) -> None:
    print(
        f"  round {n}/{rounds}: claim+complete {run['jobs_per_s']:,.0f} jobs/s"
        f" (raw {run['raw_jobs_per_s']:,.0f}, {run['jobs_per_s'] / run['raw_jobs_per_s']:.2f}x)"
        f"  exactly once: {'yes' if exactly_once(run) else 'NO'}  errors {run['errors'] or 0};"
        f" submit {run['submit_per_s']:,.0f} jobs/s (raw INSERT {run['raw_submit_per_s']:,.0f})"
        f" errors {run['submit_errors'] or 0}",
        flush=True,
    )


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def each(key: str) -> str:
        return ", ".join(f"{r[key]:,.0f}" for r in runs)

    ok = "yes" if all(exactly_once(r) for r in runs) else "NO"
    return "\n".join(
        [
            "| figure | treadle (median) | rounds | baseline (median) | rounds | ratio |",
            "| --- | ---: | --- | ---: | --- | ---: |",
            f"| claim + complete, {args.clients} workers, batches of {args.batch}, jobs/s"
            f" (exactly once: {ok}) | **{med('jobs_per_s'):,.0f}** | {each('jobs_per_s')}"
            f" | {med('raw_jobs_per_s'):,.0f} | {each('raw_jobs_per_s')}"
            f" | **{med('jobs_per_s') / med('raw_jobs_per_s'):.2f}** |",
            f"| batch submit, {PER_REQUEST} per request, {args.submitters} clients, jobs/s"
            f" | **{med('submit_per_s'):,.0f}** | {each('submit_per_s')}"
            f" | {med('raw_submit_per_s'):,.0f} | {each('raw_submit_per_s')}"
            f" | **{med('submit_per_s') / med('raw_submit_per_s'):.2f}** |",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
