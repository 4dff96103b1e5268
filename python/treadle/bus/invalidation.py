"""Cross-process cache invalidation over Redis pub/sub.

A write changes PostgreSQL first, then publishes ``kind:id``; every process drops that
entry from its caches. Caches also expire on their own, which bounds staleness should a
message be lost; while the subscription is down, every local cache is cleared on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio.client import PubSub

from treadle.background import Background
from treadle.bus.redis import UNAVAILABLE, Client, pubsub
from treadle.store.db import after_commit

log = logging.getLogger("treadle.bus")

Listener = Callable[[str], object]


class Invalidator(Background):
    def __init__(self, redis: Client, prefix: str) -> None:
        self.redis = redis
        self.channel = f"{prefix}invalidate"
        self._listeners: dict[str, list[Listener]] = {}
        self._clearers: list[Callable[[], None]] = []
        self.ready = asyncio.Event()

    def on(self, kind: str, listener: Listener, clear: Callable[[], None]) -> None:
        self._listeners.setdefault(kind, []).append(listener)
        self._clearers.append(clear)

    async def publish(self, kind: str, ident: object) -> None:
        """Drop locally, then tell the other processes; inside a request transaction, once
        it commits (a process that refilled its cache before would keep the old value)."""
        await after_commit(lambda: self._send(kind, ident))

    async def _send(self, kind: str, ident: object) -> None:
        self._deliver(f"{kind}:{ident}")
        try:
            await self.redis.publish(self.channel, f"{kind}:{ident}")
        except UNAVAILABLE:
            # The caches' own expiry bounds how long other processes can lag.
            log.warning("invalidation not published; other processes catch up on expiry")

    def _deliver(self, message: str) -> None:
        kind, _, ident = message.partition(":")
        for listener in self._listeners.get(kind, ()):
            listener(ident)

    async def run(self) -> None:
        while True:
            subscriber: PubSub | None = None
            try:
                subscriber = await pubsub(self.redis)
                await subscriber.subscribe(self.channel)
                # Whatever changed while we were not listening is unknown: start clean.
                for clear in self._clearers:
                    clear()
                self.ready.set()
                async for message in subscriber.listen():
                    if message["type"] == "message":
                        self._deliver(message["data"].decode())
            except UNAVAILABLE:
                self.ready.clear()
                await asyncio.sleep(0.5)
            finally:
                if subscriber is not None:
                    with contextlib.suppress(Exception):
                        await subscriber.aclose()  # type: ignore[no-untyped-call,unused-ignore]
