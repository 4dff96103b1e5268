"""A 1,000-item map node against 1,000 independent jobs submitted in one batch.

Per round, with the same ``--clients`` worker processes claiming (``limit --batch``) and
completing (the batch route) in both halves. Each half's time is its submitting request
plus the workers' wall time from the moment all of them start (their spawn not counted).

- **batch** (the baseline): ``POST /v1/jobs/batch`` with ``--items`` jobs, then the
  workers complete them all.
- **map**: ``POST /v1/workflow-runs`` of a definition whose one node maps over the run's
  input (``--items`` items, ``concurrency`` = ``--items``), then the workers complete every
  item job; the join happens in the transaction of the last completion. The bench checks
  in PostgreSQL that the run succeeded with one succeeded job per item and one result per
  item in its output.

The figure is map time / batch time: what fanning out and joining in the workflow engine
costs over the queue alone.

    .venv/bin/python bench/workflow_map.py [--items 1000] [--clients 4] [--rounds 5]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

import noise
import orjson
import psycopg
import runner
import servers
import tenants
import workflow_runs

SCOPES = ["workflows.manage", "workflows.run", "workflows.read", "jobs.submit", "jobs.read"]
WORKER_SCOPES = ["jobs:work"]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with runner.unlimited_treadle("workflow_map", args) as bench:
        runner.rounds(bench, args, _round, _line, table)
    return 0


def _line(run: dict[str, Any]) -> str:
    return (
        f"map {run['map_s'] * 1000:,.0f} ms,"
        f" batch {run['batch_s'] * 1000:,.0f} ms, ratio {run['ratio']:.2f};"
        f" each item once, all joined: {'yes' if run['exactly_once'] else 'NO'}"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=1000, help="map items, and jobs in the batch")
    p.add_argument("--batch", type=int, default=100, help="claim limit and complete batch size")
    p.add_argument("--clients", type=int, default=4, help="worker processes")
    return runner.add_common_args(p)


def _round(
    app: servers.Target, store: servers.Storage, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    meter = noise.Meter(lambda: [app.proc.pid] if app.proc else [])
    org = tenants.organization(app, token, [SCOPES] + [WORKER_SCOPES] * args.clients)
    nodes = [
        {
            "id": "each",
            "type": "map",
            "over": "input.items",
            "job_type": "default",
            "input": {"i": {"$ref": "item"}},
            "concurrency": args.items,
        }
    ]
    with tenants.Client(app.url, org.keys[0]) as client:
        status, made = client.post(
            "/v1/workflow-definitions", orjson.dumps({"name": "bench-map", "nodes": nodes})
        )
        if status != 201:
            raise RuntimeError(f"POST /v1/workflow-definitions answered {status}: {made}")
        definition = made["data"]["id"]
        batch_body = orjson.dumps(
            {"jobs": [{"type": "default", "input": {"i": i}} for i in range(args.items)]}
        )
        run_body = orjson.dumps(
            {"definition_id": definition, "input": {"items": list(range(args.items))}}
        )

        noise.wait_quiet(meter, args.quiet, args.quiet_wait)
        sent = time.monotonic()
        status, answer = client.post("/v1/jobs/batch", batch_body, _key())
        if status != 201:
            raise RuntimeError(f"POST /v1/jobs/batch answered {status}: {answer}")
        batch_s = (
            time.monotonic()
            - sent
            + _wall(workflow_runs.work(app.url, org.keys[1:], args.batch, args.items))
        )

        noise.wait_quiet(meter, args.quiet, args.quiet_wait)
        sent = time.monotonic()
        status, answer = client.post("/v1/workflow-runs", run_body, _key())
        if status != 201:
            raise RuntimeError(f"POST /v1/workflow-runs answered {status}: {answer}")
        map_s = (
            time.monotonic()
            - sent
            + _wall(workflow_runs.work(app.url, org.keys[1:], args.batch, args.items))
        )
    return {
        "items": args.items,
        "batch_s": batch_s,
        "map_s": map_s,
        "ratio": map_s / batch_s,
        "exactly_once": joined(store.database_url, answer["data"]["id"], args.items),
    }


def _wall(results: list[dict[str, Any]]) -> float:
    """The workers' time, from the moment all of them start (not counting their spawn)."""
    return max(r["end"] for r in results) - min(r["start"] for r in results)


def _key() -> dict[str, str]:
    return {"idempotency-key": str(uuid.uuid4())}


def joined(database_url: str, run_id: str, items: int) -> bool:
    with psycopg.connect(database_url) as conn:
        status, output = conn.execute(
            "SELECT status, output->'each' FROM workflow_runs WHERE id = %s", (run_id,)
        ).fetchone()
        (once,) = conn.execute(
            "SELECT count(DISTINCT workflow_item) FILTER (WHERE status = 'succeeded')"
            " = count(*) FROM jobs WHERE workflow_run_id = %s",
            (run_id,),
        ).fetchone()
    # The bench's workers all answer the same result, so this checks one result per item;
    # that they are joined in item order is what tests/api/test_workflow_fan_out.py shows.
    return bool(
        status == "succeeded" and once and isinstance(output, list) and len(output) == items
    )


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def each(key: str, scale: float = 1000, fmt: str = ",.0f") -> str:
        return ", ".join(f"{r[key] * scale:{fmt}}" for r in runs)

    ok = "yes" if all(r["exactly_once"] for r in runs) else "NO"
    return "\n".join(
        [
            "| figure | median | rounds |",
            "| --- | ---: | --- |",
            f"| {args.items} independent jobs, one batch, completed by {args.clients} workers,"
            f" ms | {med('batch_s') * 1000:,.0f} | {each('batch_s')} |",
            f"| {args.items}-item map, fanned out and joined (each item once, joined: {ok}),"
            f" ms | {med('map_s') * 1000:,.0f} | {each('map_s')} |",
            f"| map / batch | **{med('ratio'):.2f}** | {each('ratio', 1, '.2f')} |",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
