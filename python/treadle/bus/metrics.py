"""Request metrics shared between processes: each publishes its series to Redis, and
``/metrics`` adds up every live process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import orjson

from treadle.background import Background
from treadle.bus.redis import UNAVAILABLE, Client
from treadle.web.metrics import Metrics

PUSH_SECONDS = 2.0
STALE_SECONDS = 30


class SharedMetrics(Background):
    def __init__(self, redis: Client, prefix: str, metrics: Metrics) -> None:
        self.redis = redis
        self.key = f"{prefix}metrics"
        self.metrics = metrics
        self.pid = str(os.getpid()).encode()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(PUSH_SECONDS)
            with contextlib.suppress(*UNAVAILABLE):
                await self.publish()

    async def publish(self) -> None:
        value = orjson.dumps({"at": time.time(), "series": self.metrics.snapshot()})
        await self.redis.hset(self.key, self.pid, value)

    async def everywhere(self) -> list[list[list[object]]]:
        """Every live process's series; this process's own are always fresh."""
        snapshots = [self.metrics.snapshot()]
        with contextlib.suppress(*UNAVAILABLE):
            for pid, raw in (await self.redis.hgetall(self.key)).items():
                entry = orjson.loads(raw)
                if pid != self.pid and time.time() - entry["at"] < STALE_SECONDS:
                    snapshots.append(entry["series"])
        return snapshots
