"""Record treadle's busiest worker with py-spy under wrk load, and summarise where time goes."""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import wrk
from servers import Target

INSTALL_HINT = "py-spy is not installed: .venv/bin/pip install py-spy"
TOP = 25
SHARE_SECONDS = 3.0
# py-spy counts a thread pool thread parked in its queue as active (checked with per-thread
# CPU times: it uses none); those samples are not time spent serving requests.
IDLE_LEAVES = frozenset({"_worker (concurrent/futures/thread.py)"})
# The access log's writer thread, asleep between batches (it uses no CPU there either).
IDLE_TAILS = (
    (
        "AccessLog._run (treadle/web/access_log.py)",
        "Event.wait (threading.py)",
        "Condition.wait (threading.py)",
    ),
)
_LINENO = re.compile(r":\d+\)$")
_OURS = "(treadle/"
_CLI = "(treadle/cli.py"


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def record(
    target: Target, path: str, headers: dict[str, str], args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    """Drive ``GET path`` on ``target`` and record its busiest process twice: a raw
    collapsed-stack file (summarised here) and a flame graph."""
    spy = py_spy()
    if spy is None:
        return {"text": INSTALL_HINT}
    seconds = args.profile
    load = subprocess.Popen(
        [
            "wrk",
            f"-t{args.threads}",
            f"-c{args.connections}",
            f"-d{2 * seconds + 8 + SHARE_SECONDS:g}s",
            "--latency",
            *(x for k, v in headers.items() for x in ("-H", f"{k}: {v}")),
            target.url + path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        pid = busiest(target)
        raw = out.with_suffix(".txt")
        svg = out.with_suffix(".svg")
        # Measured before py-spy attaches: it pauses the process at every sample.
        before = thread_times(pid)
        time.sleep(SHARE_SECONDS)
        threads = thread_share(before, thread_times(pid), SHARE_SECONDS)
        main = f"thread {pid} is the main thread"
        common = [spy, "record", "--pid", str(pid), "--duration", f"{seconds:g}", "--rate", "200"]
        subprocess.run(
            [*common, "--format", "raw", "-o", str(raw)],
            check=True,
            capture_output=True,
        )
        subprocess.run([*common, "-o", str(svg)], check=True, capture_output=True)
        report, _ = load.communicate(timeout=2 * seconds + 60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    under = wrk.parse(report)
    summary = summarise(raw.read_text())
    text = (
        f"\npy-spy on pid {pid} ({target.label})"
        f" during GET {path} at {under.rps:,.0f} req/s (with the profiler attached)\n"
        f"CPU per thread before the profiler attached (% of one core; {main}): {threads}\n"
        f"{summary}\nflame graph: {svg}\nraw stacks: {raw}"
    )
    return {
        "pid": pid,
        "rps_under_profiler": under.rps,
        "threads": threads,
        "raw": str(raw),
        "svg": str(svg),
        "summary": summary,
        "text": text,
    }


def thread_times(pid: int) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def thread_share(before: dict[int, float], after: dict[int, float], seconds: float) -> str:
    """Busy threads as ``tid: percent``; the first one listed is the busiest."""
    used = {tid: 100 * (t - before.get(tid, 0.0)) / seconds for tid, t in after.items()}
    busy = sorted(((p, tid) for tid, p in used.items() if p >= 1), reverse=True)
    return ", ".join(f"{tid}: {p:.0f}%" for p, tid in busy) or "none"


def busiest(target: Target) -> int:
    """The process in the target's tree that uses the most CPU over half a second."""
    assert target.proc is not None
    root = psutil.Process(target.proc.pid)
    procs = [root, *root.children(recursive=True)]
    before: dict[int, float] = {p.pid: sum(p.cpu_times()[:2]) for p in procs}
    time.sleep(0.5)
    after: dict[int, float] = {p.pid: sum(p.cpu_times()[:2]) for p in procs if p.is_running()}
    return max(after, key=lambda pid: after[pid] - before[pid])


def summarise(raw: str, top: int = TOP) -> str:
    """Self and inclusive time per function, and the hottest lines, from py-spy's raw
    collapsed stacks (frames ``function (file:line)``)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    own_lines: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        functions = [_LINENO.sub(")", frame) for frame in frames]
        if functions[-1] in IDLE_LEAVES or any(
            tuple(functions[-len(tail) :]) == tail for tail in IDLE_TAILS
        ):
            idle += n
            continue
        total += n
        own[functions[-1]] += n
        own_lines[frames[-1]] += n
        for function in set(functions):
            inclusive[function] += n
    if not total:
        return "(no samples)"

    def pct(n: int) -> str:
        return f"{100 * n / total:6.1f}"

    out = [f"{total} samples ({idle} from idle executor and access log threads left out)", ""]
    out += ["self %  incl %  function (file)"]
    out += [f"{pct(n)}  {pct(inclusive[f])}  {f}" for f, n in own.most_common(top)]
    out += ["", "treadle code, inclusive:", "incl %  function (file)"]
    ours = [(f, n) for f, n in inclusive.most_common() if _OURS in f and _CLI not in f]
    out += [f"{pct(n)}  {f}" for f, n in ours[:top]]
    out += ["", "hottest lines, self:", "self %  function (file:line)"]
    out += [f"{pct(n)}  {f}" for f, n in own_lines.most_common(top // 2)]
    return "\n".join(out)
