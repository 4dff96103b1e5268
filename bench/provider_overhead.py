"""Providers gateway overhead: the latency of a model call through treadle minus the
latency of the same call straight to the provider, at fixed request rates.

One treadle server (one Granian worker, access log on, rate limits that never refuse)
and a local OpenAI-compatible model server (``tests/support/model_servers.py``, in a
process of its own) that answers at once. Per round and rate, the same paced load goes
first straight to the model server, then through ``POST /v1/providers/execute`` with an
API key (authentication, rate limit, authorization, estimate, the provider call, the
usage record written to PostgreSQL): each request is sent at its slot in the schedule
(open loop: a slow answer does not delay the next request) and its latency runs from
its send to the end of its answer. Overhead = treadle's percentile minus direct's.

Streams: ``--stream-rate`` streamed calls a second, time to first token straight from
the model server (its first content chunk) and through ``POST
/v1/providers/execute/stream`` (its first ``token`` event).

    .venv/bin/python bench/provider_overhead.py [--rates 500,1000] [--seconds 10]
        [--stream-rate 200] [--rounds 3] [--budget]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import runner
import servers
import tenants

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello in five words."},
]
MAX_TOKENS = 16


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = {"TREADLE_PROVIDER_ALLOW_PRIVATE": "true"}
    env.update(kv.split("=", 1) for kv in args.env)
    with runner.unlimited_treadle("provider_overhead", args, env) as bench:
        model = servers.Target(
            "model-server",
            "model server",
            [sys.executable, "-m", "tests.support.model_servers", "--port", "{port}"],
            {"PYTHONPATH": str(ROOT)},
            "/health",
            False,
            Path(bench.app.log_dir),
        )
        error = model.start()
        if error:
            raise SystemExit(f"the model server did not start: {error}")
        try:
            key = _setup(bench.app, model, bench.token, args.budget)
            asyncio.run(_warm(bench.app.url, model.url, key))
            runner.rounds(
                bench,
                args,
                lambda app, _store, _token, a: asyncio.run(
                    _round(app.url, model.url, key, a, _cpu_of(app, model))
                ),
                _line,
                _table,
            )
        finally:
            model.stop()
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rates", default="500,1000", help="requests/s, comma-separated")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each paced run")
    p.add_argument("--stream-rate", type=int, default=200, help="streamed calls/s")
    p.add_argument(
        "--budget",
        action="store_true",
        help="give the organization a monthly budget (a "
        "reservation per call, one more PostgreSQL statement)",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the treadle server (repeatable), to measure its effect",
    )
    return runner.add_common_args(p)


def _setup(app: servers.Target, model: servers.Target, token: str, budget: bool) -> str:
    org = tenants.organization(app, token, [["providers.execute", "providers.read"]])
    user = {"authorization": f"Bearer {token}"}
    config = {
        "kind": "openai",
        "base_url": model.url + "/v1",
        "models": [{"name": "bench", "input_price": 1.0, "output_price": 2.0}],
        "price_version": "bench",
        "timeout_seconds": 10,
    }
    status, made = _put(f"{app.url}/v1/organizations/{org.id}/providers/local", config, user)
    if status != 200:
        raise RuntimeError(f"PUT provider answered {status}: {made}")
    if budget:
        status, made = _put(
            f"{app.url}/v1/organizations/{org.id}/settings", {"monthly_budget": 1e9}, user
        )
        if status != 200:
            raise RuntimeError(f"the settings take no monthly_budget yet ({status}): {made}")
    return org.keys[0]


def _put(url: str, body: object, headers: dict[str, str]) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=orjson.dumps(body), headers=headers, method="PUT")
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")


def _requests(
    treadle: str, model: str, key: str, stream: bool
) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    direct = {"model": "bench", "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    via = {"provider": "local", "model": "bench", "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    if stream:
        direct |= {"stream": True, "stream_options": {"include_usage": True}}
    route = "/v1/providers/execute" + ("/stream" if stream else "")
    json = {"content-type": "application/json"}
    return {
        "direct": (model + "/v1/chat/completions", orjson.dumps(direct), json),
        "treadle": (treadle + route, orjson.dumps(via), {**json, "authorization": f"Bearer {key}"}),
    }


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], stream: bool
) -> tuple[bool, float]:
    """(answered 200, ms to the end of the answer or, streamed, to the first token)."""
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            if not stream:
                await resp.read()
                return resp.status == 200, (time.perf_counter() - started) * 1000
            first = None
            async for line in resp.content:
                # direct: the first chunk with content; treadle: the first token event
                if first is None and (line.startswith(b"event: token") or b'"content":"H' in line):
                    first = (time.perf_counter() - started) * 1000
            return resp.status == 200 and first is not None, first or float("nan")
    except (aiohttp.ClientError, TimeoutError):
        return False, float("nan")


async def _paced(
    url: str, body: bytes, headers: dict[str, str], rate: float, seconds: float, stream: bool
) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=2000, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        total = int(rate * seconds)
        start = time.perf_counter() + 0.05
        tasks = []
        late = 0.0
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay * 1000)
            tasks.append(asyncio.ensure_future(_one(session, url, body, headers, stream)))
        results = await asyncio.gather(*tasks)
    latencies = sorted(ms for ok, ms in results if ok)
    return {
        "requests": total,
        "failures": sum(1 for ok, _ in results if not ok),
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        # How far behind its schedule the load generator fell at worst.
        "client_lag_ms": late,
    }


async def _warm(treadle: str, model: str, key: str) -> None:
    for stream in (False, True):
        for url, body, headers in _requests(treadle, model, key, stream).values():
            await _paced(url, body, headers, 200, 1.0, stream)


def _cpu_of(app: servers.Target, model: servers.Target) -> Any:
    """A function giving the CPU seconds used so far by treadle's processes and by the
    model server's."""
    assert app.proc is not None and model.proc is not None
    server, provider = psutil.Process(app.proc.pid), psutil.Process(model.proc.pid)

    def seconds(proc: psutil.Process) -> float:
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        return total

    return lambda: (seconds(server), seconds(provider))


async def _round(
    treadle: str, model: str, key: str, args: argparse.Namespace, cpu: Any
) -> dict[str, Any]:
    run: dict[str, Any] = {"rates": {}}
    for rate in [int(r) for r in args.rates.split(",")]:
        measured = {}
        for side, (url, body, headers) in _requests(treadle, model, key, False).items():
            before = cpu()
            measured[side] = await _paced(url, body, headers, rate, args.seconds, False)
            after = cpu()
            # CPU per call: treadle's processes, and the model server's (for scale).
            calls = measured[side]["requests"]
            measured[side]["server_cpu_us"] = (after[0] - before[0]) / calls * 1e6
            measured[side]["model_cpu_us"] = (after[1] - before[1]) / calls * 1e6
        measured["overhead_p50_ms"] = measured["treadle"]["p50_ms"] - measured["direct"]["p50_ms"]
        measured["overhead_p99_ms"] = measured["treadle"]["p99_ms"] - measured["direct"]["p99_ms"]
        run["rates"][str(rate)] = measured
    streamed = {}
    for side, (url, body, headers) in _requests(treadle, model, key, True).items():
        streamed[side] = await _paced(url, body, headers, args.stream_rate, args.seconds, True)
    streamed["overhead_p50_ms"] = streamed["treadle"]["p50_ms"] - streamed["direct"]["p50_ms"]
    streamed["overhead_p99_ms"] = streamed["treadle"]["p99_ms"] - streamed["direct"]["p99_ms"]
    run["stream"] = streamed
    return run


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def _line(run: dict[str, Any]) -> str:
    parts = []
    for rate, m in run["rates"].items():
        parts.append(
            f"{rate}/s: direct p99 {m['direct']['p99_ms']:.2f}, treadle p99 "
            f"{m['treadle']['p99_ms']:.2f}, overhead p50 {m['overhead_p50_ms']:.2f} p99 "
            f"{m['overhead_p99_ms']:.2f} ms, failures {m['treadle']['failures']}"
            f"+{m['direct']['failures']}, CPU per call: treadle "
            f"{m['treadle']['server_cpu_us']:.0f} µs, model server "
            f"{m['direct']['model_cpu_us']:.0f} µs"
        )
    s = run["stream"]
    parts.append(
        f"TTFT overhead p50 {s['overhead_p50_ms']:.2f} p99 {s['overhead_p99_ms']:.2f} ms"
        f" (failures {s['treadle']['failures']})"
    )
    return "; ".join(parts)


def _table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}"

    rows = [
        "| case | direct p50 / p99 ms | treadle p50 / p99 ms | overhead p50 / p99 ms "
        "(median of rounds) | failures |",
        "| --- | --- | --- | --- | --- |",
    ]
    cases = [
        (f"execute at {rate}/s", [r["rates"][rate] for r in runs]) for rate in runs[0]["rates"]
    ]
    cases.append((f"stream TTFT at {args.stream_rate}/s", [r["stream"] for r in runs]))
    for name, ms in cases:
        rows.append(
            f"| {name} | {med([m['direct']['p50_ms'] for m in ms])} / "
            f"{med([m['direct']['p99_ms'] for m in ms])} | "
            f"{med([m['treadle']['p50_ms'] for m in ms])} / "
            f"{med([m['treadle']['p99_ms'] for m in ms])} | "
            f"{med([m['overhead_p50_ms'] for m in ms])} / {med([m['overhead_p99_ms'] for m in ms])}"
            f" | {sum(m['treadle']['failures'] + m['direct']['failures'] for m in ms)} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
