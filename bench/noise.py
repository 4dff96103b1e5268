"""How much CPU other processes take while the bench runs, so a shared machine's noise is
visible in the figures instead of silently in them. Linux only (``/proc/stat``); elsewhere
every measure is ``None`` and nothing waits."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

_STAT = Path("/proc/stat")


def _busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot."""
    try:
        first = _STAT.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is inside user)
    ticks = [int(v) for v in first[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _own_seconds(pids: Iterable[int]) -> float:
    """CPU seconds used by this process, its reaped children (wrk) and the process trees
    rooted at ``pids`` (the servers under test)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            for proc in (root, *root.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
    return total


class Meter:
    """Average cores used by everything else between ``start`` and ``stop``."""

    def __init__(self, pids: Callable[[], Iterable[int]]) -> None:
        self.pids = pids
        self._started: tuple[float, float, float] | None = None

    def start(self) -> None:
        busy = _busy_seconds()
        if busy is None:
            self._started = None
            return
        self._started = (time.monotonic(), busy, _own_seconds(self.pids()))

    def stop(self) -> float | None:
        busy = _busy_seconds()
        if self._started is None or busy is None:
            return None
        at, busy_before, own_before = self._started
        elapsed = time.monotonic() - at
        others = (busy - busy_before) - (_own_seconds(self.pids()) - own_before)
        return max(0.0, others / elapsed)


def wait_quiet(meter: Meter, threshold: float, max_wait: float) -> float | None:
    """Wait until others use under ``threshold`` cores (sampled over 1 s), at most
    ``max_wait`` seconds; returns the last sample."""
    deadline = time.monotonic() + max_wait
    while True:
        meter.start()
        time.sleep(1.0)
        others = meter.stop()
        if others is None or others < threshold or time.monotonic() >= deadline:
            return others


class Cpu:
    """CPU seconds used meanwhile by the server (the process tree at ``server``), by the
    ``clients`` processes, by PostgreSQL (its background processes and the backends
    connected to ``database``; every PostgreSQL process when None), by every Redis process,
    and by the whole machine. A process that exits meanwhile is left out of its group."""

    def __init__(
        self, server: int | None, clients: Iterable[int] = (), database: str | None = None
    ) -> None:
        self.server = server
        self.clients = list(clients)
        self.database = database
        self.started = time.monotonic()
        self.before, self.busy = self._sample(), _busy_seconds() or 0.0

    def _sample(self) -> dict[int, tuple[str, float]]:
        """Group and CPU seconds of every process of interest, by pid."""
        procs: list[tuple[str, psutil.Process]] = []
        with contextlib.suppress(psutil.Error):
            if self.server is not None:
                tree = psutil.Process(self.server)
                procs += [("server", p) for p in (tree, *tree.children(recursive=True))]
        for pid in self.clients:
            with contextlib.suppress(psutil.Error):
                procs.append(("clients", psutil.Process(pid)))
        for proc in psutil.process_iter(["name"]):
            name = proc.info["name"] or ""
            if name.startswith("postgres") and self._ours(proc):
                procs.append(("postgres", proc))
            elif name.startswith(("redis", "valkey")):
                procs.append(("redis", proc))
        out = {}
        for group, proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                out[proc.pid] = (group, times.user + times.system)
        return out

    def _ours(self, proc: psutil.Process) -> bool:
        """A background process, or a backend of the bench's database (the machine's
        PostgreSQL may serve other databases meanwhile)."""
        if self.database is None:
            return True
        with contextlib.suppress(psutil.Error):
            title = " ".join(proc.cmdline())
            backend = "127.0.0.1(" in title or "[local]" in title or "::1(" in title
            return not backend or f" {self.database} " in title
        return False

    def stop(self) -> dict[str, float]:
        after = self._sample()
        groups = ["server", "postgres", "redis"] + (["clients"] if self.clients else [])
        used = dict.fromkeys(groups, 0.0)
        for pid, (group, seconds) in after.items():
            used[group] += seconds - self.before.get(pid, (group, 0.0))[1]
        used["machine"] = (_busy_seconds() or 0.0) - self.busy
        used["wall"] = time.monotonic() - self.started
        return used
