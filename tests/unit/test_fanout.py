"""The live-event fan-out ``Hub``: filters and wildcards, bounded queues that overflow,
replay and resume with and without a gap, numeric id order, isolation between
organizations, and wakers (once per empty → non-empty, usable from asyncio)."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import pytest

from treadle._core import CoreError, FanoutError, Hub, Subscription


def ids(items: list[tuple[str, bytes]]) -> list[str]:
    return [event_id for event_id, _ in items]


def publish_n(hub: Hub, org: str, ms: range, topic: str = "job.created") -> None:
    for n in ms:
        hub.publish(f"{n}-0", org, topic, b'{"n":%d}' % n)


def test_subscribers_get_id_and_payload_in_order() -> None:
    hub = Hub()
    sub = hub.subscribe("org_a")
    assert hub.publish("1700000000000-0", "org_a", "job.created", b'{"a":1}', job_id="j1") == 1
    assert hub.publish("1700000000000-1", "org_a", "job.started", b'{"a":2}') == 1
    assert sub.drain() == [("1700000000000-0", b'{"a":1}'), ("1700000000000-1", b'{"a":2}')]
    assert sub.drain() == []
    assert sub.org_id == "org_a" and len(sub) == 0 and len(hub) == 1


def test_organizations_never_see_each_other() -> None:
    hub = Hub()
    a, b = hub.subscribe("org_a"), hub.subscribe("org_b")
    a_jobs = hub.subscribe("org_a", ["*"])
    hub.publish("1-0", "org_a", "job.created", b"a1")
    hub.publish("2-0", "org_b", "job.created", b"b2")
    hub.publish("3-0", "org_a", "job.created", b"a3")
    assert [p for _, p in a.drain()] == [b"a1", b"a3"]
    assert [p for _, p in a_jobs.drain()] == [b"a1", b"a3"]
    assert [p for _, p in b.drain()] == [b"b2"]
    assert [p for _, p in hub.replay("org_b", "0-0")[0]] == [b"b2"]
    assert hub.replay("org_c", "0-0") == ([], False)
    resumed = hub.subscribe("org_b", after_id="0-0")
    assert [p for _, p in resumed.drain()] == [b"b2"]


def test_topic_filters_and_wildcards() -> None:
    hub = Hub()
    jobs = hub.subscribe("o", ["job.*"])
    exact = hub.subscribe("o", ["key.revoked", "audit"])
    steps = hub.subscribe("o", ["job.step.*"])
    every = hub.subscribe("o", ["*"])
    topics = ["job.created", "job.step.done", "job", "jobs.x", "key.revoked", "audit", "audit.x"]
    for n, topic in enumerate(topics, start=1):
        hub.publish(f"{n}-0", "o", topic, topic.encode())
    assert [p for _, p in jobs.drain()] == [b"job.created", b"job.step.done"]
    assert [p for _, p in exact.drain()] == [b"key.revoked", b"audit"]
    assert [p for _, p in steps.drain()] == [b"job.step.done"]
    assert len(every.drain(max=100)) == len(topics)


def test_job_and_run_filters() -> None:
    hub = Hub()
    job = hub.subscribe("o", job_id="j1")
    run = hub.subscribe("o", ["run.*"], run_id="r1")
    both = hub.subscribe("o", job_id="j1", run_id="r1")
    assert hub.publish("1-0", "o", "job.created", b"1", job_id="j1") == 1
    assert hub.publish("2-0", "o", "run.step", b"2", job_id="j1", run_id="r1") == 3
    assert hub.publish("3-0", "o", "run.step", b"3", run_id="r1") == 1
    assert hub.publish("4-0", "o", "job.created", b"4", job_id="j2") == 0
    assert ids(job.drain()) == ["1-0", "2-0"]
    assert ids(run.drain()) == ["2-0", "3-0"]
    assert ids(both.drain()) == ["2-0"]


@pytest.mark.parametrize("topics", [[""], ["*.job"], ["job*"], ["job.*.x"], [".*"], []])
def test_malformed_topic_patterns_are_refused(topics: list[str]) -> None:
    with pytest.raises(FanoutError):
        Hub().subscribe("o", topics)
    with pytest.raises(FanoutError):
        Hub().replay("o", "0-0", topics)


@pytest.mark.parametrize("bad", ["", "1", "1-", "-1", "1-2-3", "+1-0", " 1-0", "a-b", "1.5-0"])
def test_malformed_event_ids_are_refused(bad: str) -> None:
    hub = Hub()
    with pytest.raises(FanoutError, match="invalid event id"):
        hub.publish(bad, "o", "t", b"")
    with pytest.raises(FanoutError):
        hub.replay("o", bad)
    with pytest.raises(FanoutError):
        hub.subscribe("o", after_id=bad)
    assert issubclass(FanoutError, CoreError)


def test_sizes() -> None:
    with pytest.raises(FanoutError):
        Hub(queue_size=0)
    with pytest.raises(OverflowError):
        Hub(ring_size=-1)
    with pytest.raises(TypeError):
        Hub().subscribe("o", "job.*")  # a str is not a list of topics


def test_a_full_queue_overflows_the_subscriber_not_the_publisher() -> None:
    hub = Hub(queue_size=3)
    slow, fast = hub.subscribe("o"), hub.subscribe("o")
    for n in range(1, 6):
        assert hub.publish(f"{n}-0", "o", "t", b"") == (2 if n <= 3 else 1)
        assert ids(fast.drain()) == [f"{n}-0"]
    assert slow.overflowed and not fast.overflowed
    assert len(hub) == 1
    # What was queued before the overflow is still there; nothing more comes.
    assert ids(slow.drain()) == ["1-0", "2-0", "3-0"]
    hub.publish("6-0", "o", "t", b"")
    assert slow.drain() == []
    assert hub.stats()["overflowed"] == 1


def test_drain_takes_at_most_max() -> None:
    hub = Hub()
    sub = hub.subscribe("o")
    publish_n(hub, "o", range(1, 11))
    assert len(sub) == 10
    assert ids(sub.drain(max=4)) == ["1-0", "2-0", "3-0", "4-0"]
    assert sub.drain(max=0) == []
    assert len(sub.drain()) == 6


def test_replay_without_and_with_a_gap() -> None:
    hub = Hub(ring_size=3)
    publish_n(hub, "o", range(1, 6))
    assert hub.replay("o", "2-0") == (
        [("3-0", b'{"n":3}'), ("4-0", b'{"n":4}'), ("5-0", b'{"n":5}')],
        False,
    )
    events, gap = hub.replay("o", "1-0")
    assert ids(events) == ["3-0", "4-0", "5-0"] and gap
    assert hub.replay("o", "4-0") == ([("5-0", b'{"n":5}')], False)
    assert hub.replay("o", "5-0") == ([], False)
    assert hub.replay("o", "99-0") == ([], False)
    assert ids(hub.replay("o", "0-0", ["other"])[0]) == []
    assert hub.stats()["ring_events"] == 3


def test_replay_compares_ids_as_numbers() -> None:
    hub = Hub()
    for event_id in ["9-0", "9-2", "9-10", "10-0", "100-0"]:
        hub.publish(event_id, "o", "t", b"")
    # As text, "9-2" > "10-0" and "9-10" < "9-2"; as stream ids they are in order.
    assert ids(hub.replay("o", "9-2")[0]) == ["9-10", "10-0", "100-0"]
    assert ids(hub.replay("o", "10-0")[0]) == ["100-0"]
    assert ids(hub.replay("o", "9-9")[0]) == ["9-10", "10-0", "100-0"]


def test_an_older_or_repeated_id_is_ignored() -> None:
    hub = Hub()
    sub = hub.subscribe("o")
    assert hub.publish("10-0", "o", "t", b"") == 1
    assert hub.publish("10-0", "o", "t", b"") == 0
    assert hub.publish("9-5", "o", "t", b"") == 0
    assert hub.publish("9-5", "other", "t", b"") == 0  # no subscriber, but accepted
    assert ids(sub.drain()) == ["10-0"]
    stats = hub.stats()
    assert (stats["stale"], stats["published"], stats["orgs"]) == (2, 2, 2)


def test_resume_replays_then_goes_live_without_gap_or_repeat() -> None:
    hub = Hub(ring_size=100, queue_size=2)
    publish_n(hub, "o", range(1, 11))
    sub = hub.subscribe("o", after_id="4-0")
    assert not sub.gap
    assert len(sub) == 6  # the backlog is bounded by the ring, not the queue
    publish_n(hub, "o", range(11, 13))
    assert ids(sub.drain()) == [f"{n}-0" for n in range(5, 13)]
    assert not sub.overflowed


def test_resume_after_trimmed_history_reports_a_gap() -> None:
    hub = Hub(ring_size=3)
    publish_n(hub, "o", range(1, 6))
    sub = hub.subscribe("o", after_id="1-0")
    assert sub.gap
    assert ids(sub.drain()) == ["3-0", "4-0", "5-0"]
    assert not hub.subscribe("o").gap


def test_horizon_marks_where_the_feed_started() -> None:
    hub = Hub(horizon="1700000000000-5")
    assert hub.replay("o", "1700000000000-4") == ([], True)
    assert hub.replay("o", "1700000000000-5") == ([], False)
    hub.publish("1700000000001-0", "o", "t", b"")
    assert hub.subscribe("o", after_id="1699999999999-0").gap
    with pytest.raises(FanoutError):
        Hub(horizon="later")


def test_waker_is_called_once_per_empty_to_non_empty() -> None:
    hub = Hub()
    sub = hub.subscribe("o")
    calls: list[int] = []
    sub.set_waker(lambda: calls.append(1))
    assert calls == []
    publish_n(hub, "o", range(1, 4))
    assert len(calls) == 1
    sub.drain(max=1)
    publish_n(hub, "o", range(4, 5))
    assert len(calls) == 1  # the queue was not empty
    sub.drain()
    publish_n(hub, "o", range(5, 7))
    assert len(calls) == 2
    hub.publish("7-0", "o", "other.topic", b"")
    sub.drain()
    hub.subscribe("o")  # a second subscriber does not wake the first
    assert len(calls) == 2
    sub.set_waker(None)
    publish_n(hub, "o", range(8, 9))
    assert len(calls) == 2


def test_a_waker_set_while_events_wait_is_called_at_once() -> None:
    hub = Hub()
    sub = hub.subscribe("o")
    publish_n(hub, "o", range(1, 2))
    calls: list[int] = []
    sub.set_waker(lambda: calls.append(1))
    assert calls == [1]
    with pytest.raises(TypeError, match="callable"):
        sub.set_waker(42)  # type: ignore[arg-type]


def test_a_failing_waker_does_not_stop_the_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    hub = Hub()
    bad, good = hub.subscribe("o"), hub.subscribe("o")
    woken: list[int] = []
    bad.set_waker(lambda: 1 / 0)
    good.set_waker(lambda: woken.append(1))
    assert hub.publish("1-0", "o", "t", b"x") == 2
    assert woken == [1]
    assert len(reported) == 1 and isinstance(reported[0].exc_value, ZeroDivisionError)
    assert ids(bad.drain()) == ["1-0"]


def test_a_waker_may_call_the_hub() -> None:
    hub = Hub()
    sub = hub.subscribe("o")
    seen: list[list[tuple[str, bytes]]] = []
    sub.set_waker(lambda: seen.append(sub.drain()))
    hub.publish("1-0", "o", "t", b"x")
    assert seen == [[("1-0", b"x")]]
    sub.set_waker(None)  # break the cycle through the lambda


def test_asyncio_consumer_with_a_publishing_thread() -> None:
    async def consume(hub: Hub, total: int) -> list[str]:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        got: list[str] = []
        with hub.subscribe("o", ["job.*"]) as sub:
            sub.set_waker(lambda: loop.call_soon_threadsafe(ready.set))
            publisher = threading.Thread(target=publish_n, args=(hub, "o", range(1, total + 1)))
            publisher.start()
            while len(got) < total:
                ready.clear()
                items = sub.drain()
                if not items:
                    await asyncio.wait_for(ready.wait(), timeout=10)
                got += ids(items)
            publisher.join()
        assert sub.closed
        return got

    hub = Hub(queue_size=100_000)
    got = asyncio.run(consume(hub, 5_000))
    assert got == [f"{n}-0" for n in range(1, 5_001)]
    assert len(hub) == 0


def test_close_context_manager_and_garbage_collection_unsubscribe() -> None:
    hub = Hub()
    a = hub.subscribe("o")
    with hub.subscribe("o") as b:
        assert isinstance(b, Subscription)
        assert len(hub) == 2
    assert b.closed and len(hub) == 1
    hub.publish("1-0", "o", "t", b"")
    a.close()
    a.close()
    assert a.closed and a.drain() == [] and len(hub) == 0


def test_dropping_the_last_reference_unsubscribes() -> None:
    hub = Hub()
    hub.subscribe("o")
    assert len(hub) == 0
    sub = hub.subscribe("o")
    assert len(hub) == 1
    del sub
    assert len(hub) == 0


def test_stats() -> None:
    hub = Hub(ring_size=2, queue_size=1)
    subs = [hub.subscribe("a"), hub.subscribe("a", ["nothing"]), hub.subscribe("b")]
    publish_n(hub, "a", range(1, 4))
    assert hub.stats() == {
        "orgs": 2,
        "subscribers": 2,
        "ring_events": 2,
        "published": 3,
        "queued": 1,
        "overflowed": 1,
        "stale": 0,
    }
    assert len(subs) == 3


def test_many_threads_publish_and_drain() -> None:
    hub = Hub(queue_size=10_000)
    orgs = [f"org_{i}" for i in range(4)]
    subs = {org: [hub.subscribe(org) for _ in range(3)] for org in orgs}
    barrier = threading.Barrier(len(orgs))

    def feed(org: str) -> None:
        barrier.wait()
        for n in range(1, 2_001):
            hub.publish(f"{n}-0", org, "t", org.encode())

    threads = [threading.Thread(target=feed, args=(org,)) for org in orgs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for org, org_subs in subs.items():
        for sub in org_subs:
            items = sub.drain(max=10_000)
            assert ids(items) == [f"{n}-0" for n in range(1, 2_001)]
            assert {p for _, p in items} == {org.encode()}
