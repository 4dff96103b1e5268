"""Workflow runs end to end: a three-node linear definition (job -> job -> job) run
``--runs`` times by ``--clients`` worker processes, and the dispatch latency between nodes.

Per round:

- **runs/s**: ``--runs`` runs are created (``POST /v1/workflow-runs``, one per request, from
  ``--submitters`` threads), then the workers claim (``limit --batch``) and complete (the
  batch route) until every node's job is done. The figure is runs / the workers' wall time;
  the bench then checks in PostgreSQL that every run succeeded with exactly one succeeded job
  per node.
- **dispatch latency**: one worker alone, ``--probes`` times: complete a run's first job,
  then claim until the second node's job comes back. The time from sending the complete to
  holding the next job is what a worker fleet sees between two nodes. Measured twice: on
  the round's new organization before the runs, and right after them, when the runs' dead
  row versions have not been vacuumed yet. Each round starts with a ``VACUUM ANALYZE`` of
  the bench's database (``--no-vacuum`` to leave it out).

    .venv/bin/python bench/workflow_runs.py [--runs 2000] [--clients 4] [--rounds 3]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from typing import Any

import noise
import orjson
import psycopg
import runner
import servers
import tenants

RUN_SCOPES = ["workflows.manage", "workflows.run", "workflows.read"]
WORKER_SCOPES = ["jobs:work"]
NODES = [
    {"id": "prepare", "type": "job", "job_type": "default", "input": {"n": {"$ref": "input.n"}}},
    {
        "id": "train",
        "type": "job",
        "job_type": "default",
        "after": ["prepare"],
        "input": {"data": {"$ref": "nodes.prepare.output.data"}},
    },
    {
        "id": "publish",
        "type": "job",
        "job_type": "default",
        "after": ["train"],
        "input": {"model": {"$ref": "nodes.train.output.model"}},
    },
]
RESULT = {"data": "d", "model": "m"}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with runner.unlimited_treadle("workflow_runs", args) as bench:
        runner.rounds(bench, args, _round, _line, table)
    return 0


def _line(run: dict[str, Any]) -> str:
    return (
        f"{run['runs_per_s']:,.0f} runs/s"
        f" ({run['runs']} runs, created at {run['create_per_s']:,.0f}/s),"
        f" every node once: {'yes' if run['exactly_once'] else 'NO'};"
        f" dispatch p50 {run['fresh_p50_ms']:.1f} ms p99 {run['fresh_p99_ms']:.1f} ms"
        f" before the runs, p50 {run['dispatch_p50_ms']:.1f} ms"
        f" p99 {run['dispatch_p99_ms']:.1f} ms after them"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=2000, help="runs per round")
    p.add_argument("--batch", type=int, default=100, help="claim limit and complete batch size")
    p.add_argument("--clients", type=int, default=4, help="worker processes")
    p.add_argument("--submitters", type=int, default=4, help="threads creating runs")
    p.add_argument("--probes", type=int, default=200, help="dispatch latency samples")
    p.add_argument(
        "--no-vacuum",
        dest="vacuum",
        action="store_false",
        help="do not VACUUM the bench's database before each round",
    )
    return runner.add_common_args(p)


def _round(
    app: servers.Target, store: servers.Storage, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    meter = noise.Meter(lambda: [app.proc.pid] if app.proc else [])
    if args.vacuum:
        # What autovacuum does within a minute or so where it runs; this machine's
        # PostgreSQL runs without it, and each round would find the last one's dead rows.
        with psycopg.connect(store.database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    org = tenants.organization(app, token, [RUN_SCOPES] + [WORKER_SCOPES] * args.clients)
    with tenants.Client(app.url, org.keys[0]) as client:
        status, made = client.post(
            "/v1/workflow-definitions",
            orjson.dumps({"name": "bench-linear", "nodes": NODES}),
        )
        if status != 201:
            raise RuntimeError(f"POST /v1/workflow-definitions answered {status}: {made}")
    definition = made["data"]["id"]
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    fresh = dispatch(app.url, org.keys[0], org.keys[1], definition, args.probes)
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    started = time.monotonic()
    run_ids = create_runs(app.url, org.keys[0], definition, args.runs, args.submitters)
    create_s = time.monotonic() - started
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    results = work(app.url, org.keys[1:], args.batch, args.runs * len(NODES))
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)  # the relay and autovacuum catch up
    latencies = dispatch(app.url, org.keys[0], org.keys[1], definition, args.probes)
    return {
        "runs": len(run_ids),
        "create_per_s": len(run_ids) / create_s,
        "runs_per_s": len(run_ids) / wall if wall > 0 else 0.0,
        "errors": sum(r["errors"] for r in results),
        "exactly_once": exactly_once(store.database_url, run_ids),
        "dispatch_p50_ms": statistics.median(latencies) * 1000,
        "dispatch_p99_ms": _p99(latencies) * 1000,
        "fresh_p50_ms": statistics.median(fresh) * 1000,
        "fresh_p99_ms": _p99(fresh) * 1000,
    }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def create_runs(url: str, key: str, definition: str, count: int, threads: int) -> list[str]:
    lock = threading.Lock()
    left = iter(range(count))
    made: list[str] = []
    body = orjson.dumps({"definition_id": definition, "input": {"n": 1}})

    def one_client() -> None:
        with tenants.Client(url, key) as client:
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                status, answer = client.post(
                    "/v1/workflow-runs", body, {"idempotency-key": str(uuid.uuid4())}
                )
                if status != 201:
                    raise RuntimeError(f"POST /v1/workflow-runs answered {status}: {answer}")
                with lock:
                    made.append(answer["data"]["id"])

    pool = [threading.Thread(target=one_client) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return made


def work(url: str, keys: list[str], batch: int, total: int) -> list[dict[str, Any]]:
    done = runner.SPAWN.Value("i", 0)  # node jobs completed, by all the workers
    return runner.in_processes(worker, [(url, key, batch, total, done) for key in keys])


def worker(url: str, key: str, batch: int, total: int, done: Any, ready: Any, results: Any) -> None:
    """Claim and complete until every node of every run is done (an empty claim only means
    the next nodes are still held by other workers)."""
    claim = orjson.dumps({"limit": batch})
    errors = 0
    with tenants.Client(url, key) as client:
        client.get("/v1/me")
        ready.wait(timeout=60)
        start = time.monotonic()
        while done.value < total and errors < 100:
            status, answer = client.post("/v1/jobs/claim", claim)
            jobs = answer["data"] if status == 200 else []
            errors += status != 200
            if not jobs:
                time.sleep(0.002)
                continue
            items = [
                {"id": j["id"], "lease_token": j["lease_token"], "result": RESULT} for j in jobs
            ]
            status, answer = client.post("/v1/jobs/complete", orjson.dumps({"items": items}))
            ok = sum(1 for o in answer["data"] if o["ok"]) if status == 200 else 0
            errors += status != 200 or ok != len(items)
            with done.get_lock():
                done.value += ok
        end = time.monotonic()
    results.put({"start": start, "end": end, "errors": errors})


def dispatch(url: str, runner: str, work_key: str, definition: str, probes: int) -> list[float]:
    """Seconds from sending a run's first node's complete to holding its second's job."""
    latencies = []
    body = orjson.dumps({"definition_id": definition, "input": {"n": 1}})
    claim = orjson.dumps({"limit": 1})
    with tenants.Client(url, runner) as runs, tenants.Client(url, work_key) as client:
        for _ in range(probes):
            runs.post("/v1/workflow-runs", body, {"idempotency-key": str(uuid.uuid4())})
            (job,) = client.post("/v1/jobs/claim", claim)[1]["data"]
            item = {"id": job["id"], "lease_token": job["lease_token"], "result": RESULT}
            sent = time.monotonic()
            client.post("/v1/jobs/complete", orjson.dumps({"items": [item]}))
            while True:
                got = client.post("/v1/jobs/claim", claim)[1]["data"]
                if got:
                    break
            latencies.append(time.monotonic() - sent)
            (nxt,) = got
            for _ in range(2):  # finish the run: train, then publish
                item = {"id": nxt["id"], "lease_token": nxt["lease_token"], "result": RESULT}
                client.post("/v1/jobs/complete", orjson.dumps({"items": [item]}))
                got = client.post("/v1/jobs/claim", claim)[1]["data"]
                if not got:
                    break
                (nxt,) = got
    return latencies


def exactly_once(database_url: str, run_ids: list[str]) -> bool:
    with psycopg.connect(database_url) as conn:
        (runs_ok,) = conn.execute(
            "SELECT count(*) FROM workflow_runs WHERE id = ANY(%s::uuid[])"
            " AND status = 'succeeded'",
            (run_ids,),
        ).fetchone()
        (per_node,) = conn.execute(
            "SELECT count(*) FROM (SELECT workflow_run_id, workflow_node FROM jobs"
            " WHERE workflow_run_id = ANY(%s::uuid[]) GROUP BY 1, 2"
            " HAVING count(*) = 1 AND bool_and(status = 'succeeded')) once",
            (run_ids,),
        ).fetchone()
    return bool(runs_ok == len(run_ids) and per_node == len(run_ids) * len(NODES))


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def each(key: str, fmt: str = ",.0f") -> str:
        return ", ".join(f"{r[key]:{fmt}}" for r in runs)

    ok = "yes" if all(r["exactly_once"] for r in runs) else "NO"
    return "\n".join(
        [
            "| figure | median | rounds |",
            "| --- | ---: | --- |",
            f"| three-node linear runs completed by {args.clients} workers (batches of"
            f" {args.batch}), runs/s (every node once: {ok}) | **{med('runs_per_s'):,.0f}**"
            f" | {each('runs_per_s')} |",
            f"| runs created, one per request, {args.submitters} clients, runs/s"
            f" | {med('create_per_s'):,.0f} | {each('create_per_s')} |",
            f"| dispatch latency p50 before the runs, ms | **{med('fresh_p50_ms'):.1f}**"
            f" | {each('fresh_p50_ms', '.1f')} |",
            f"| dispatch latency p99 before the runs, ms | **{med('fresh_p99_ms'):.1f}**"
            f" | {each('fresh_p99_ms', '.1f')} |",
            f"| dispatch latency p50 right after the runs, ms | **{med('dispatch_p50_ms'):.1f}**"
            f" | {each('dispatch_p50_ms', '.1f')} |",
            f"| dispatch latency p99 right after the runs, ms | **{med('dispatch_p99_ms'):.1f}**"
            f" | {each('dispatch_p99_ms', '.1f')} |",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
