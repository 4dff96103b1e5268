"""The ``Pacer`` that wakes event streams in rounds: an idle pacer wakes at the loop's next
turn, wakes that come within the interval wait for one round at its end, every wake is
called once and in order, and closing forgets what waits."""

from __future__ import annotations

import asyncio

from treadle._core import Hub
from treadle.bus.pacer import Pacer

INTERVAL = 0.2


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_an_idle_pacer_wakes_at_the_next_turn_then_waits_for_the_interval() -> None:
    async def scenario() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(INTERVAL)
        calls: list[tuple[str, float]] = []

        def wake(name: str) -> None:
            calls.append((name, loop.time()))

        start = loop.time()
        pacer.ready(lambda: wake("a"))
        await _settle()
        # The first round ran at once; these three come within its interval.
        for name in ("b", "c", "d"):
            pacer.ready(lambda name=name: wake(name))
        await _settle()
        assert [name for name, _ in calls] == ["a"]
        await asyncio.sleep(INTERVAL * 1.5)
        return [(name, at - start) for name, at in calls]

    calls = asyncio.run(scenario())
    assert [name for name, _ in calls] == ["a", "b", "c", "d"]
    assert calls[0][1] < INTERVAL / 2
    # b, c and d went in one round, an interval after the first. One round runs them one
    # after another, so their times differ only by how long each took (not rounded: two
    # calls a microsecond apart can round to different milliseconds).
    times = [at for _, at in calls[1:]]
    assert max(times) - min(times) < INTERVAL / 4
    assert INTERVAL * 0.9 <= min(times) < INTERVAL * 1.5


def test_a_pacer_with_no_interval_wakes_every_turn() -> None:
    async def scenario() -> list[int]:
        pacer = Pacer(0)
        woken: list[int] = []
        for turn in range(3):
            pacer.ready(lambda turn=turn: woken.append(turn))
            pacer.ready(lambda turn=turn: woken.append(turn))
            await _settle()
            assert len(woken) == 2 * (turn + 1)
        return woken

    assert asyncio.run(scenario()) == [0, 0, 1, 1, 2, 2]


def test_close_forgets_the_waiting_wakes() -> None:
    async def scenario() -> list[str]:
        pacer = Pacer(INTERVAL)
        woken: list[str] = []
        pacer.ready(lambda: woken.append("first"))
        await _settle()
        pacer.ready(lambda: woken.append("second"))
        pacer.close()
        await asyncio.sleep(INTERVAL * 1.5)
        return woken

    assert asyncio.run(scenario()) == ["first"]


def test_hub_wakers_through_a_pacer_deliver_every_event_in_order() -> None:
    """Subscribers woken by rounds drain everything published meanwhile, in order, with
    one wake per round rather than one per event."""

    async def scenario() -> tuple[list[list[str]], int, float]:
        loop = asyncio.get_running_loop()
        hub = Hub()
        pacer = Pacer(0.05)
        wake = asyncio.Event()
        wakes = 0

        def woken() -> None:
            nonlocal wakes
            wakes += 1
            wake.set()

        sub = hub.subscribe("org_a")
        sub.set_waker(lambda: pacer.ready(woken))
        batches: list[list[str]] = []

        async def consume() -> None:
            while sum(map(len, batches)) < 40:
                await wake.wait()
                wake.clear()
                while items := sub.drain():
                    batches.append([event_id for event_id, _ in items])

        consumer = asyncio.ensure_future(consume())
        start = loop.time()
        for n in range(1, 41):
            hub.publish(f"{n}-0", "org_a", "job.created", b"{}")
            await asyncio.sleep(0.005)
        await asyncio.wait_for(consumer, 5)
        return batches, wakes, loop.time() - start

    batches, wakes, elapsed = asyncio.run(scenario())
    assert [event_id for batch in batches for event_id in batch] == [f"{n}-0" for n in range(1, 41)]
    # 40 events over about 0.2 s (more on a busy machine), rounds 0.05 s apart: one wake
    # per round, not one per event.
    assert wakes == len(batches)
    assert 2 <= wakes <= min(20, elapsed / 0.05 + 2)
