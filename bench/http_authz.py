"""Issue 3's HTTP figures, in one run against the bare Granian hello-world app:

- ``GET /v1/me`` with an API key: key verification, rate limit, envelope; req/s and the
  ratio to the bare app, driven alternately with wrk like ``http_compare.py``;
- ``GET /v1/organizations/{id}`` with the same key: the same plus the authorization check;
- ``POST /v1/authz/check-batch`` with 100 items: decisions per second.

    .venv/bin/python bench/http_authz.py [--rounds 5] [--duration 5] [--workers 1]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import noise
import servers
import wrk
from http_compare import RAW, machine, print_header

BATCH = 100


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("TREADLE_BENCH_REDIS_URL", ""))
    p.add_argument("--quiet-wait", type=float, default=60.0)
    args = p.parse_args(argv)
    args.threads, args.warmup = 1, 0
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
        bare = servers.bare("granian", args.workers, Path(tmp))
        app = servers.treadle("granian", args.workers, store, Path(tmp), access_log=True)
        # One key sends every request: the limit check runs, but never refuses.
        app.env["TREADLE_RATE_LIMIT_API_KEY"] = "1000000/1"
        try:
            for target in (bare, app):
                error = target.start()
                if error:
                    raise SystemExit(f"{target.label} did not start: {error}")
            key, org_id, script = _setup(app, Path(tmp))
            auth = {"authorization": f"Bearer {key}"}
            cases = [
                ("GET /v1/me (API key)", app.url + "/v1/me", auth, None),
                (
                    "GET /v1/organizations/{id} (API key)",
                    f"{app.url}/v1/organizations/{org_id}",
                    auth,
                    None,
                ),
                (
                    f"POST /v1/authz/check-batch ({BATCH} items)",
                    app.url + "/v1/authz/check-batch",
                    None,
                    script,
                ),
            ]
            results = _measure(bare, cases, args)
        finally:
            app.stop()
            bare.stop()
    table = _table(results)
    print(table)
    out = RAW / f"http_authz-{stamp}.json"
    out.write_text(
        json.dumps(
            {"machine": info, "args": vars(args), "table": table, "runs": results},
            indent=2,
            default=str,
        )
    )
    print(f"\nraw results: {out.relative_to(RAW.parent.parent)}")
    return 0


def _setup(app: servers.Target, tmp: Path) -> tuple[str, str, str]:
    """A user, an organization, a key allowed to read it, and the batch request as wrk Lua."""
    token = servers.signup(app)
    user = {"authorization": f"Bearer {token}"}
    _, org = servers._request(app.url + "/v1/organizations", {"name": "bench"}, user)
    org_id = org["data"]["id"]
    _, made = servers._request(
        app.url + "/v1/api-keys",
        {
            "organization_id": org_id,
            "name": "bench",
            "scopes": ["org.read", "members.read"],
        },
        user,
    )
    key = made["data"]["key"]
    actions = ["org.read", "org.update", "members.read", "acl.manage"]
    body = json.dumps(
        {
            "organization_id": org_id,
            "items": [{"action": actions[i % len(actions)]} for i in range(BATCH)],
        }
    )
    script = tmp / "check_batch.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body)}\n"
        'wrk.headers["content-type"] = "application/json"\n'
        f'wrk.headers["authorization"] = "Bearer {key}"\n'
    )
    status, answer = servers._request(
        app.url + "/v1/authz/check-batch", json.loads(body), {"authorization": f"Bearer {key}"}
    )
    if status != 200 or len(answer["data"]["results"]) != BATCH:
        raise SystemExit(f"check-batch answered {status}: {answer}")
    servers.check(app, "/v1/me", {"authorization": f"Bearer {key}"})
    return key, org_id, str(script)


def _measure(
    bare: servers.Target, cases: list[Any], args: argparse.Namespace
) -> list[dict[str, Any]]:
    meter = noise.Meter(lambda: [t.proc.pid for t in (bare,) if t.proc is not None])
    runs: list[dict[str, Any]] = []
    for n in range(1, args.rounds + 1):
        for name, url, headers, script in cases:
            noise.wait_quiet(meter, 0.25, args.quiet_wait)
            base, _ = wrk.run(
                bare.url + "/", duration=args.duration, threads=1, connections=args.connections
            )
            noise.wait_quiet(meter, 0.25, args.quiet_wait)
            got, _ = wrk.run(
                url,
                duration=args.duration,
                threads=1,
                connections=args.connections,
                headers=headers,
                script=script,
            )
            runs.append({"case": name, "round": n, "bare_rps": base.rps, **got.as_dict()})
            print(
                f"  round {n}/{args.rounds} {name:<42} {got.rps:>9,.0f} req/s"
                f"  bare {base.rps:>9,.0f}  ratio {got.rps / base.rps:.2f}"
                f"  non-2xx {got.non_2xx}",
                flush=True,
            )
    return runs


def _table(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| request | req/s | p50 ms | p99 ms | bare req/s | vs bare, per round | decisions/s"
        " | non-2xx/errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in dict.fromkeys(r["case"] for r in runs):
        rows = [r for r in runs if r["case"] == case]
        rps = statistics.median(r["rps"] for r in rows)
        ratio = statistics.median(r["rps"] / r["bare_rps"] for r in rows)
        per = BATCH if "check-batch" in case else 1
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in rows)
        lines.append(
            f"| {case} | {rps:,.0f} | {statistics.median(r['p50_ms'] for r in rows):.2f}"
            f" | {statistics.median(r['p99_ms'] for r in rows):.2f}"
            f" | {statistics.median(r['bare_rps'] for r in rows):,.0f} | {ratio:.2f}"
            f" | {rps * per:,.0f} | {errors} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
