"""Idempotent replay against ``GET /v1/me``, both with the same API key, in one run.

One ``POST /v1/jobs`` with a fixed ``Idempotency-Key`` creates a job; every later request
with that key and body is a replay, answered from the stored response with
``Idempotent-Replayed: true`` (the bench checks this before and after). wrk then drives,
alternately in every round, ``GET /v1/me`` and that same ``POST /v1/jobs``; the table has
the median req/s of each and the median over rounds of replay / me, each pair measured
back to back.

    .venv/bin/python bench/http_replay.py [--rounds 5] [--duration 5] [--connections 64]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import noise
import psycopg
import servers
import tenants
import wrk
from http_compare import RAW, machine, print_header

BODY = {"type": "default", "input": {"prompt": "the same job, sent again"}}
KEY = "bench-replay-0001"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, default=1, help="treadle worker processes")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--connections", type=int, default=64, help="wrk -c")
    p.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="treadle's access log (default: on, as shipped)",
    )
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("TREADLE_BENCH_REDIS_URL", ""))
    p.add_argument("--quiet-wait", type=float, default=60.0)
    args = p.parse_args(argv)
    args.threads, args.warmup = 1, 2
    if not wrk.available():
        print(wrk.INSTALL_HINT, file=sys.stderr)
        return 2
    RAW.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with (
        tempfile.TemporaryDirectory(prefix="treadle-bench-") as tmp,
        servers.storage(args.database_url, args.redis_url, Path(tmp)) as store,
    ):
        info = machine(store)
        print_header(info, args)
        app = servers.treadle("granian", args.workers, store, Path(tmp), access_log=args.access_log)
        # One key sends every request: the limit check runs, but never refuses.
        app.env["TREADLE_RATE_LIMIT_API_KEY"] = "100000000/60"
        try:
            error = app.start()
            if error:
                raise SystemExit(f"{app.label} did not start: {error}")
            org = tenants.organization(app, servers.signup(app), [["jobs.submit", "jobs.read"]])
            auth = {"authorization": f"Bearer {org.keys[0]}"}
            script = Path(tmp) / "replay.lua"
            script.write_text(_lua(auth))
            first = _post(app, auth)
            if first["replayed"]:
                raise SystemExit("the first POST /v1/jobs was already a replay")
            servers.check(app, "/v1/me", auth)
            cases = [
                ("GET /v1/me (API key)", app.url + "/v1/me", auth, None),
                ("POST /v1/jobs (idempotent replay)", app.url + "/v1/jobs", None, str(script)),
            ]
            runs = _measure(app, cases, args)
            last = _post(app, auth)
            jobs = _jobs(store, first["job_id"])
        finally:
            app.stop()
    checks = {
        "first": first,
        "replay_after_runs": last,
        "same_answer": last["body"] == first["body"],
        "jobs_with_the_key": jobs,
    }
    table = _table(runs)
    print(table)
    print(
        f"\nreplayed after the runs: {last['replayed']}, same body as the first answer:"
        f" {checks['same_answer']}, jobs created with the key: {jobs}"
    )
    out = RAW / f"http_replay-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "started": stamp,
                "argv": sys.argv,
                "machine": info,
                "args": vars(args),
                "checks": checks,
                "table": table,
                "runs": runs,
            },
            indent=2,
            default=str,
        )
    )
    print(f"\nraw results: {out.relative_to(RAW.parent.parent)}")
    return 0


def _lua(auth: dict[str, str]) -> str:
    body = json.dumps(BODY)
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["content-type"] = "application/json"\n'
        f'wrk.headers["idempotency-key"] = "{KEY}"\n'
        f'wrk.headers["authorization"] = "{auth["authorization"]}"\n'
    )


def _post(app: servers.Target, auth: dict[str, str]) -> dict[str, Any]:
    """``POST /v1/jobs`` with the bench's key and body: status, replay header, job id."""
    req = urllib.request.Request(
        app.url + "/v1/jobs",
        data=json.dumps(BODY).encode(),
        headers={**auth, "content-type": "application/json", "idempotency-key": KEY},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
        if resp.status != 201:
            raise SystemExit(f"POST /v1/jobs answered {resp.status}: {body}")
        return {
            "status": resp.status,
            "replayed": resp.headers.get("idempotent-replayed") == "true",
            "job_id": body["data"]["id"],
            "body": body["data"],
        }


def _jobs(store: servers.Storage, job_id: str) -> int:
    with psycopg.connect(store.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM jobs WHERE idempotency_key = %s OR id = %s", (KEY, job_id)
        ).fetchone()
    return int(row[0]) if row else 0


def _measure(
    app: servers.Target, cases: list[Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    meter = noise.Meter(lambda: [app.proc.pid] if app.proc else [])
    for _, url, headers, script in cases:
        wrk.run(
            url,
            duration=args.warmup,
            threads=1,
            connections=args.connections,
            headers=headers,
            script=script,
        )
    runs: list[dict[str, Any]] = []
    for n in range(1, args.rounds + 1):
        for name, url, headers, script in cases:
            noise.wait_quiet(meter, 0.25, args.quiet_wait)
            meter.start()
            got, raw = wrk.run(
                url,
                duration=args.duration,
                threads=1,
                connections=args.connections,
                headers=headers,
                script=script,
            )
            others = meter.stop()
            runs.append({"case": name, "round": n, **got.as_dict(), "others": others, "wrk": raw})
            print(
                f"  round {n}/{args.rounds} {name:<36} {got.rps:>9,.0f} req/s"
                f"  p50 {got.p50_ms:.2f} ms  p99 {got.p99_ms:.2f} ms  non-2xx {got.non_2xx}"
                f"  others {others if others is None else round(others, 2)}",
                flush=True,
            )
    return runs


def _table(runs: list[dict[str, Any]]) -> str:
    me = {r["round"]: r["rps"] for r in runs if r["case"].startswith("GET")}
    lines = [
        "| request | req/s | p50 ms | p99 ms | vs GET /v1/me, per round | others, max cores"
        " | non-2xx/errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in dict.fromkeys(r["case"] for r in runs):
        rows = [r for r in runs if r["case"] == case]
        ratio = statistics.median(r["rps"] / me[r["round"]] for r in rows)
        others = max((r["others"] for r in rows if r["others"] is not None), default=None)
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in rows)
        lines.append(
            f"| {case} | {statistics.median(r['rps'] for r in rows):,.0f}"
            f" | {statistics.median(r['p50_ms'] for r in rows):.2f}"
            f" | {statistics.median(r['p99_ms'] for r in rows):.2f} | {ratio:.2f}"
            f" | {'?' if others is None else f'{others:.2f}'} | {errors} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
