"""Load loops and process helpers for fault tests: a few clients, bounded in time."""

from __future__ import annotations

import resource
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil

from tests.support.servers import Server


def server_workers(server: Server) -> list[psutil.Process]:
    """The Granian worker processes under a server's main process."""
    main = psutil.Process(server.proc.pid)
    return [
        child
        for child in main.children(recursive=False)
        if "resource_tracker" not in " ".join(child.cmdline())
    ]


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class SubmitLoop:
    """Clients submitting jobs with an Idempotency-Key each; records every answer."""

    server: Server
    headers: dict[str, str]
    clients: int = 2
    pause: float = 0.02
    bound: float = 5.0  # an answer slower than this counts as a hang
    acked: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    # Each connection error: when (time.monotonic()) and what.
    connection_errors: list[tuple[float, str]] = field(default_factory=list)
    slow: list[float] = field(default_factory=list)
    unavailable_without_retry_after: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> SubmitLoop:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.server.url, timeout=15.0) as client:
            while not self._stop.is_set():
                headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
                started = time.monotonic()
                try:
                    response = client.post("/v1/jobs", json={"type": "render"}, headers=headers)
                except httpx.TransportError as exc:
                    with self._lock:
                        self.connection_errors.append((time.monotonic(), repr(exc)))
                    continue
                took = time.monotonic() - started
                with self._lock:
                    self.statuses.append(response.status_code)
                    if took > self.bound:
                        self.slow.append(took)
                    if response.status_code == 503 and "retry-after" not in response.headers:
                        self.unavailable_without_retry_after += 1
                    if response.status_code == 201:
                        self.acked.append(response.json()["data"]["id"])
                time.sleep(self.pause)


def wait_workers_started(server: Server, count: int, timeout: float = 30.0) -> None:
    """Ready answers once one worker is up; a worker still booting misses a SIGTERM, so
    tests that signal wait for all of them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if all(f"Started worker-{i} runtime" in log for i in range(1, count + 1)):
            return
        time.sleep(0.05)
    raise AssertionError(f"not all {count} workers started:\n{server.log()[-3000:]}")
