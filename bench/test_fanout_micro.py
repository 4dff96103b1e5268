"""Idempotency fingerprint and live-event fan-out: ``treadle._core`` against pure-Python
baselines doing the same job.

Each benchmark checks its answers first, then times one side. Groups:

- ``fingerprint_1k`` / ``fingerprint_64k``: the fingerprint of a 1 KiB job submission and
  a 64 KiB telemetry batch (pretty-printed JSON): Rust, and the reference in
  ``tests/reference/fingerprint.py`` (``json.loads`` + ``json.dumps(sort_keys=True)`` +
  ``hashlib.sha256``).
- ``fanout_publish_1000``: one ``Hub.publish`` to an organization with 1,000 subscribers,
  each with a filter (half take ``job.*``, the rest one of ten ``run.<n>`` topics plus
  a ``job_id`` filter), so each event is queued for 500 of them. ``busy``: consumers
  behind (no waker is due); ``idle``: every matching queue was empty, so each publish
  also calls 500 Python wakers, the steady state at low event rates. The Python
  baseline is a list of (filter, deque) pairs and a loop, for the busy case.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.reference import fingerprint as reference
from treadle._core import Hub, Subscription, canonical_json, fingerprint

SUBSCRIBERS = 1_000
ORG = "org_bench"

# --- fingerprint -------------------------------------------------------------------------


def _job_submission(size: int) -> bytes:
    rng = random.Random(size)
    body: dict[str, Any] = {
        "type": "render.video",
        "priority": 5,
        "max_attempts": 3,
        "input": {"asset_id": "a_7f3c2b1d", "width": 1920, "height": 1080, "fps": 29.97},
        "tags": ["nightly", "customer:acme", "région:eu-west"],
        "params": {},
    }
    n = 0
    while len(json.dumps(body, indent=2).encode()) < size:
        body["params"][f"p{n:03d}"] = rng.choice([rng.random() * 100, rng.randrange(10**6), "x"])
        n += 1
    return json.dumps(body, indent=2, ensure_ascii=False).encode()


def _telemetry_batch(size: int) -> bytes:
    rng = random.Random(size)
    events: list[dict[str, Any]] = []
    batch = {"agent_id": "edge_01", "sent_at": "2026-05-01T12:00:00Z", "events": events}
    while len(json.dumps(batch, indent=2).encode()) < size:
        events.append(
            {
                "ts": 1_777_000_000.0 + len(events) * 0.25,
                "metric": rng.choice(["cpu", "mem", "gpu.util", "net.rx"]),
                "value": round(rng.random() * 100, 3),
                "labels": {"host": f"h{rng.randrange(50)}", "zone": "eu-1"},
                "ok": True,
            }
        )
    return json.dumps(batch, indent=2).encode()


BODIES = {"1k": _job_submission(1 << 10), "64k": _telemetry_batch(64 << 10)}


def _check_fingerprint(body: bytes) -> None:
    fp = fingerprint("POST", "/v1/jobs", body, "application/json")
    assert fp == reference.fingerprint("POST", "/v1/jobs", body, "application/json")
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert fingerprint("POST", "/v1/jobs", compact) == fp
    assert canonical_json(body) == reference.canonical_json(body)
    changed = body.replace(b'"priority": 5', b'"priority": 6').replace(b'"ok": true', b'"ok": 1')
    assert changed != body and fingerprint("POST", "/v1/jobs", changed) != fp


@pytest.mark.parametrize("size", ["1k", "64k"])
def test_fingerprint_rust(benchmark: Any, size: str) -> None:
    body = BODIES[size]
    _check_fingerprint(body)
    benchmark.group = f"fingerprint_{size}"
    benchmark.extra_info["body_bytes"] = len(body)
    benchmark(fingerprint, "POST", "/v1/jobs", body, "application/json")


@pytest.mark.parametrize("size", ["1k", "64k"])
def test_fingerprint_python(benchmark: Any, size: str) -> None:
    body = BODIES[size]
    _check_fingerprint(body)
    benchmark.group = f"fingerprint_{size}"
    benchmark.extra_info["body_bytes"] = len(body)
    benchmark(reference.fingerprint, "POST", "/v1/jobs", body, "application/json")


# --- fan-out -----------------------------------------------------------------------------


def _filter(i: int) -> tuple[list[str], str | None]:
    """Subscriber ``i``'s topics and job filter: even ones take every job event, odd ones
    one run topic of one job."""
    return (["job.*"], None) if i % 2 == 0 else ([f"run.{i % 10}"], f"j{i % 7}")


@dataclass
class PyHub:
    """The baseline: subscribers as (topics, job_id, bounded deque), one loop per publish."""

    queue_size: int
    subs: list[tuple[list[str], str | None, deque[tuple[str, bytes]]]] = field(default_factory=list)

    def subscribe(self, topics: list[str], job_id: str | None) -> deque[tuple[str, bytes]]:
        queue: deque[tuple[str, bytes]] = deque()
        self.subs.append((topics, job_id, queue))
        return queue

    def publish(self, event_id: str, topic: str, payload: bytes, job_id: str | None) -> int:
        item, queued = (event_id, payload), 0
        for topics, want_job, queue in self.subs:
            if want_job is not None and want_job != job_id:
                continue
            if not any(t == topic or (t[-1] == "*" and topic.startswith(t[:-1])) for t in topics):
                continue
            if len(queue) < self.queue_size:
                queue.append(item)
                queued += 1
        return queued


def _rust_hub() -> tuple[Hub, list[Subscription]]:
    hub = Hub(ring_size=10_000, queue_size=100_000)
    subs = []
    for i in range(SUBSCRIBERS):
        topics, job_id = _filter(i)
        subs.append(hub.subscribe(ORG, topics, job_id=job_id))
    return hub, subs


def _ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"1700000000000-{next(counter)}"


PAYLOAD = json.dumps({"type": "job.completed", "job_id": "j_1", "status": "done"}).encode()


def _check_hub(hub: Hub, subs: list[Subscription], next_id: Callable[[], str]) -> None:
    event_id = next_id()
    assert hub.publish(event_id, ORG, "job.completed", PAYLOAD, job_id="j3") == SUBSCRIBERS // 2
    run_id = next_id()
    # run.3 with job j3: odd subscribers with i % 10 == 3 and i % 7 == 3.
    expected = sum(1 for i in range(1, SUBSCRIBERS, 2) if i % 10 == 3 and i % 7 == 3)
    assert hub.publish(run_id, ORG, "run.3", PAYLOAD, job_id="j3") == expected
    for i, sub in enumerate(subs):
        got = sub.drain()
        _, job_id = _filter(i)
        want = [event_id] if i % 2 == 0 else ([run_id] if (i % 10, job_id) == (3, "j3") else [])
        assert [e for e, _ in got] == want
        assert all(p == PAYLOAD for _, p in got)
    assert hub.publish(next_id(), "org_other", "job.completed", PAYLOAD) == 0


@pytest.mark.benchmark(group="fanout_publish_1000")
def test_publish_rust_busy(benchmark: Any) -> None:
    hub, subs = _rust_hub()
    next_id = _ids()
    _check_hub(hub, subs, next_id)
    hub.publish(next_id(), ORG, "job.created", PAYLOAD, job_id="j1")  # queues are not empty
    woken: list[int] = []
    for sub in subs:
        sub.set_waker(lambda: woken.append(1))
    woken.clear()

    def publish() -> int:
        return hub.publish(next_id(), ORG, "job.completed", PAYLOAD, job_id="j1")

    def drain_sometimes() -> None:
        if len(subs[0]) > 50_000:
            for sub in subs:
                sub.drain(max=100_000)
            hub.publish(next_id(), ORG, "job.created", PAYLOAD)

    benchmark.pedantic(publish, setup=drain_sometimes, rounds=20_000, warmup_rounds=100)
    assert hub.stats()["overflowed"] == 0 and len(hub) == SUBSCRIBERS
    assert not woken


@pytest.mark.benchmark(group="fanout_publish_1000")
def test_publish_rust_idle(benchmark: Any) -> None:
    hub, subs = _rust_hub()
    next_id = _ids()
    _check_hub(hub, subs, next_id)
    woken: list[int] = []
    for sub in subs:
        sub.set_waker(lambda: woken.append(1))
    published: list[int] = []

    def publish() -> int:
        published.append(1)
        return hub.publish(next_id(), ORG, "job.completed", PAYLOAD, job_id="j1")

    def drain_all() -> None:
        for sub in subs:
            sub.drain()

    drain_all()
    assert publish() == SUBSCRIBERS // 2 and len(woken) == SUBSCRIBERS // 2
    benchmark.pedantic(publish, setup=drain_all, rounds=2_000, warmup_rounds=10)
    assert len(woken) == (SUBSCRIBERS // 2) * len(published)


@pytest.mark.benchmark(group="fanout_publish_1000")
def test_publish_python_busy(benchmark: Any) -> None:
    hub = PyHub(queue_size=100_000)
    queues = [hub.subscribe(*_filter(i)) for i in range(SUBSCRIBERS)]
    next_id = _ids()
    assert hub.publish(next_id(), "job.completed", PAYLOAD, "j3") == SUBSCRIBERS // 2
    expected = sum(1 for i in range(1, SUBSCRIBERS, 2) if i % 10 == 3 and i % 7 == 3)
    assert hub.publish(next_id(), "run.3", PAYLOAD, "j3") == expected

    def publish() -> int:
        return hub.publish(next_id(), "job.completed", PAYLOAD, "j1")

    def drain_sometimes() -> None:
        if len(queues[0]) > 50_000:
            for queue in queues:
                queue.clear()

    benchmark.pedantic(publish, setup=drain_sometimes, rounds=20_000, warmup_rounds=100)
