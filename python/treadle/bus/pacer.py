"""Wake event streams in rounds, at most one round per interval.

Each wake of a stream costs about the same whatever it carries: a trip through its task,
one send, one write on the socket, one read at the client. When every event woke every
stream at once, a burst of events made as many rounds of wakes, each carrying one event.
The pacer gathers the streams the hub marks ready and wakes them together: at once when
the last round is older than the interval (an idle server adds no latency), else when it
is due, so that the streams carry whatever arrived in between in one send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Pacer:
    """Calls the wakes handed to ``ready`` in rounds at least ``interval`` seconds apart
    (0: at the loop's next turn, every time)."""

    __slots__ = ("_handle", "_last", "_ready", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._ready: list[Callable[[], object]] = []
        self._handle: asyncio.Handle | None = None
        self._last = float("-inf")

    def ready(self, wake: Callable[[], object]) -> None:
        """Call ``wake`` with the next round. The hub calls this on its publishing thread,
        which is the loop's (the feed publishes from it)."""
        self._ready.append(wake)
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        due = self._last + self.interval - loop.time()
        if due > 0:
            self._handle = loop.call_later(due, self._round, loop)
        else:
            self._handle = loop.call_soon(self._round, loop)

    def _round(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        self._last = loop.time()
        ready, self._ready = self._ready, []
        for wake in ready:
            wake()

    def close(self) -> None:
        """Forget the waiting wakes: their streams are being ended by other means."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._ready = []
