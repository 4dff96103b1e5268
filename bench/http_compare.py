"""treadle against the bare server it runs on, side by side, driven alternately with wrk.

For each server (Granian, then Robyn) this starts, with the same worker count and each on
its own free port on 127.0.0.1:

- the bare hello-world app (``hello_granian.py`` / ``hello_robyn.py``),
- treadle as shipped (access log on),
- treadle with ``TREADLE_ACCESS_LOG=false``,

and, beside Granian, the FastAPI peers of ``GET /v1/me`` (``bench/peers/``, on uvicorn with
the same worker count): one ``SELECT`` per request, and caches invalidated through Redis.

It signs up one user for a JWT and makes an organization with one API key, then runs the
rounds: in every round, for each case (``GET /healthz``; ``GET /v1/me`` with the JWT;
``GET /v1/me`` with the API key), wrk drives the bare app, then treadle, then treadle
without the access log, then (``GET /v1/me`` with the JWT only) each peer, so machine noise
lands on all of them alike. It prints the median req/s and p50/p99 latency over the rounds,
the ratio to the bare app, and treadle / FastAPI peer (cache) on ``GET /v1/me``; it writes
every wrk report to ``bench/raw/``.

    .venv/bin/python bench/http_compare.py [--workers 1] [--rounds 5] [--duration 5]
        [--peers select,cache]

PostgreSQL and Redis: ``--database-url`` / ``--redis-url``, else
``TREADLE_BENCH_DATABASE_URL`` / ``TREADLE_BENCH_REDIS_URL``, else embedded servers in a
temporary directory. On a given PostgreSQL the bench creates its own database and drops it
at the end; on a given Redis it uses its own key prefix and deletes those keys.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import noise
import profiling
import servers
import tenants
import wrk
from servers import Target

BENCH = Path(__file__).resolve().parent
RAW = BENCH / "raw"
# What treadle / the peer should at least reach on GET /v1/me with a JWT (issue 9).
PEER_TARGET = 6.0


@dataclass(frozen=True)
class Case:
    name: str  # as the table shows it
    path: str
    credential: str  # "jwt" or "key": which Authorization header wrk sends
    peers: bool = False  # whether the FastAPI peers serve it too


CASES = (
    Case("/healthz", "/healthz", "jwt"),
    Case("/v1/me", "/v1/me", "jwt", peers=True),
    Case("/v1/me (API key)", "/v1/me", "key"),
)


@dataclass
class Run:
    result: wrk.WrkResult
    others: float | None  # cores other processes used meanwhile (see noise.py)
    vs_bare: float | None = None  # req/s over the bare app's run just before, same round


@dataclass
class Row:
    target: Target
    endpoint: str
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(r.result, attr) for r in self.runs))

    def median_vs_bare(self) -> float | None:
        ratios = [r.vs_bare for r in self.runs if r.vs_bare is not None]
        return float(statistics.median(ratios)) if ratios else None

    def max_others(self) -> float | None:
        seen = [r.others for r in self.runs if r.others is not None]
        return max(seen) if seen else None

    @property
    def failures(self) -> int:
        return sum(r.result.non_2xx + r.result.socket_errors for r in self.runs)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not wrk.available():
        print(wrk.INSTALL_HINT, file=sys.stderr)
        return 2
    # SIGTERM to the bench unwinds like Ctrl-C, so every server it started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RAW.mkdir(exist_ok=True)
    report: dict[str, Any] = {"started": stamp, "argv": sys.argv, "args": vars(args)}
    report["tables"] = tables = []
    path = RAW / f"http_compare-{stamp}.json"
    try:
        with (
            tempfile.TemporaryDirectory(prefix="treadle-bench-") as tmp,
            servers.storage(args.database_url, args.redis_url, Path(tmp)) as store,
        ):
            report["machine"] = machine(store)
            print_header(report["machine"], args)
            for kind in args.servers:
                rows, notes = bench_server(kind, args, store, Path(tmp), stamp, report)
                tables.append(table(kind, rows, notes))
                print(tables[-1], flush=True)
    finally:
        # Written even when interrupted: the runs so far are in it.
        path.write_text(json.dumps(report, indent=2, default=str))
        print(f"\nraw results: {path.relative_to(BENCH.parent)}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, default=1, help="worker processes per server")
    p.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of untimed load first")
    p.add_argument("--connections", type=int, default=64, help="wrk -c")
    p.add_argument("--threads", type=int, default=1, help="wrk -t")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument(
        "--servers",
        type=lambda s: [x for x in s.split(",") if x],
        default=["granian", "robyn"],
        help="comma-separated: granian,robyn",
    )
    p.add_argument(
        "--peers",
        type=lambda s: [x for x in s.split(",") if x],
        default=["select", "cache"],
        help="FastAPI peers of GET /v1/me to run beside Granian (comma-separated:\n"
        "select,cache; empty for none)",
    )
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    p.add_argument("--redis-url", default=os.environ.get("TREADLE_BENCH_REDIS_URL", ""))
    p.add_argument(
        "--quiet",
        type=float,
        default=0.25,
        metavar="CORES",
        help="before each run, wait until other processes use fewer cores than this",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="longest wait for --quiet before running anyway (the table shows the noise)",
    )
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="after the rounds, record each server's busiest worker with py-spy under\n"
        "load (treadle: GET /v1/me) for this long (needs py-spy); output in bench/raw/",
    )
    return p


def bench_server(
    kind: str,
    args: argparse.Namespace,
    store: servers.Storage,
    tmp: Path,
    stamp: str,
    report: dict[str, Any],
) -> tuple[list[Row], list[str]]:
    targets = [
        servers.bare(kind, args.workers, tmp),
        servers.treadle(kind, args.workers, store, tmp, access_log=True),
        servers.treadle(kind, args.workers, store, tmp, access_log=False),
    ]
    if kind == "granian":
        # Against bare Granian, as every other row of this table.
        targets += [servers.peer(v, args.workers, store, tmp) for v in args.peers]
    notes: list[str] = []
    runs: list[dict[str, Any]] = report.setdefault("runs", [])
    try:
        for target in targets:
            print(f"starting {target.label} ...", flush=True)
            error = target.start()
            if error:
                tail = target.tail()
                last = tail[-1].strip() if tail else ""
                notes.append(f"{target.label} did not start: {error}: `{last}`")
                print(f"  {target.label} did not start: {error}; its log ends:", flush=True)
                print("\n".join("    " + line for line in tail), flush=True)
        live = [t for t in targets if t.running]
        treadles = [t for t in live if t.is_treadle]
        credentials: dict[str, dict[str, str]] = {"jwt": {}, "key": {}}
        if treadles:
            token = servers.signup(treadles[0])
            key = tenants.organization(treadles[0], token, [["jobs.read"]]).keys[0]
            credentials = {
                "jwt": {"authorization": f"Bearer {token}"},
                "key": {"authorization": f"Bearer {key}"},
            }
            for t in live:
                if t.is_treadle or t.is_peer:
                    servers.check(t, "/v1/me", credentials["jwt"])
                if t.is_treadle:
                    servers.check(t, "/v1/me", credentials["key"])
        # The bare app answers every path alike: one row, measured before each case.
        bare_rows = {t.name: Row(t, "/") for t in live if not (t.is_treadle or t.is_peer)}
        rows = {(t.name, c.name): Row(t, c.name) for c in CASES for t in live if _serves(t, c)}
        meter = noise.Meter(lambda: [t.proc.pid for t in live if t.proc is not None])
        for t in live:
            for case in CASES:
                if t.name in bare_rows or _serves(t, case):
                    path = "/" if t.name in bare_rows else case.path
                    wrk.run(
                        t.url + path,
                        duration=args.warmup,
                        threads=args.threads,
                        connections=args.connections,
                        headers=credentials[case.credential],
                    )
                if t.name in bare_rows:
                    break
        for n in range(1, args.rounds + 1):
            for case in CASES:
                bare_rps: float | None = None
                for t in live:
                    bare = t.name in bare_rows
                    if not (bare or _serves(t, case)):
                        continue
                    path = "/" if bare else case.path
                    waited = noise.wait_quiet(meter, args.quiet, args.quiet_wait)
                    meter.start()
                    result, raw = wrk.run(
                        t.url + path,
                        duration=args.duration,
                        threads=args.threads,
                        connections=args.connections,
                        headers=None if bare else credentials[case.credential],
                    )
                    run = Run(result, meter.stop())
                    if bare:
                        bare_rps = result.rps
                        bare_rows[t.name].runs.append(run)
                    else:
                        run.vs_bare = result.rps / bare_rps if bare_rps else None
                        rows[(t.name, case.name)].runs.append(run)
                    runs.append(
                        {
                            "server": kind,
                            "target": t.name,
                            "case": "/" if bare else case.name,
                            "endpoint": path,
                            "round": n,
                            **result.as_dict(),
                            "others_before": waited,
                            "others_during": run.others,
                            "vs_bare": run.vs_bare,
                            "wrk": raw,
                        }
                    )
                    print(
                        f"  round {n}/{args.rounds} {t.label:<36} {'/' if bare else case.name:<16}"
                        f" {result.rps:>10,.0f} req/s  p50 {result.p50_ms:.2f} ms"
                        f"  p99 {result.p99_ms:.2f} ms  others {_cores(run.others)}",
                        flush=True,
                    )
        for t in live if args.profile else ():
            bare = t.name in bare_rows
            out = RAW / f"profile-{t.name}-{stamp}"
            path, headers = ("/", {}) if bare else ("/v1/me", credentials["jwt"])
            summary = profiling.record(t, path, headers, args, out)
            report.setdefault("profiles", {})[t.name] = summary
            print(summary["text"], flush=True)
        return [*bare_rows.values(), *rows.values()], notes
    finally:
        for target in reversed(targets):
            target.stop()


def _serves(target: Target, case: Case) -> bool:
    return target.is_treadle or (target.is_peer and case.peers)


def table(kind: str, rows: list[Row], notes: list[str]) -> str:
    bare = next((r for r in rows if not (r.target.is_treadle or r.target.is_peer)), None)
    bare = bare if bare is not None and bare.runs else None
    lines = [
        f"\n### {kind.capitalize()}",
        "",
        "| target | endpoint | req/s | p50 ms | p99 ms | vs bare | vs bare, per round"
        " | others, max cores | non-2xx/errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if not row.runs:
            continue
        rps = row.median("rps")
        ratio = rps / bare.median("rps") if bare else None
        per_round = row.median_vs_bare() if row is not bare else 1.0
        lines.append(
            f"| {row.target.label} | {row.endpoint} | {rps:,.0f} | {row.median('p50_ms'):.2f}"
            f" | {row.median('p99_ms'):.2f} | {_ratio(ratio)} | {_ratio(per_round)}"
            f" | {_cores(row.max_others())} | {row.failures} |"
        )
    for row in rows:
        if row.failures:
            notes.append(
                f"{row.target.label} {row.endpoint}: {row.failures} non-2xx answers or socket"
                " errors; its figures do not measure the same work (see the raw wrk output)"
            )
    lines += ["", *_peer_ratios(rows), *(f"- {note}" for note in notes)]
    return "\n".join(lines).rstrip()


def _peer_ratios(rows: list[Row]) -> list[str]:
    """treadle / FastAPI peer (cache) on GET /v1/me with a JWT: the ratio of the medians,
    and the median of the ratios within a round (the two runs closest in time)."""
    me = {r.target.name: r for r in rows if r.endpoint == "/v1/me" and r.runs}
    peer = me.get("peer-cache")
    lines = []
    for row in me.values() if peer is not None else ():
        if not row.target.is_treadle:
            continue
        per_round = [a.result.rps / b.result.rps for a, b in zip(row.runs, peer.runs, strict=False)]
        ratio = row.median("rps") / peer.median("rps")
        verdict = "meets" if ratio >= PEER_TARGET else "misses"
        lines.append(
            f"{row.target.label} / {peer.target.label}, GET /v1/me with a JWT:"
            f" **{ratio:.2f}x** (per round {statistics.median(per_round):.2f}x;"
            f" {verdict} the {PEER_TARGET:g}x target)"
        )
    return [*lines, ""] if lines else []


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cores(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def machine(store: servers.Storage) -> dict[str, Any]:
    from treadle import _core

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "granian": version("granian"),
        "robyn": version("robyn"),
        "fastapi": _version("fastapi"),
        "uvicorn": _version("uvicorn"),
        "pyjwt": _version("PyJWT"),
        "treadle": f"{version('treadle')} (_core {_core.__version__}, commit {_commit()})",
        "wrk": wrk.version(),
    }
    info.update(store.versions())
    return info


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    out = subprocess.run(
        ["git", "-C", str(BENCH), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unknown"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_header(info: dict[str, Any], args: argparse.Namespace) -> None:
    print(f"date     {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for key, value in info.items():
        print(f"{key:<8} {value}")
    print(
        f"method   workers={args.workers}, wrk -t{args.threads} -c{args.connections}"
        f" -d{args.duration:g}s --latency, {args.rounds} interleaved rounds after a"
        f" {args.warmup:g}s warm-up; medians over rounds",
        flush=True,
    )
    peers = getattr(args, "peers", None)  # the other HTTP benches share this header
    if peers and "granian" in args.servers:
        print(
            f"peers    FastAPI on uvicorn --workers {args.workers} (uvloop, httptools, no access"
            f" log), sessions: {', '.join(peers)}",
            flush=True,
        )
    print(flush=True)


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"done in {time.monotonic() - start:.0f}s")
    sys.exit(code)
