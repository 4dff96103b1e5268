"""Periodically deletes records older than each organization's retention settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from treadle.store import retention
from treadle.store.db import Database
from treadle.web.errors import ApiError

log = logging.getLogger("treadle.retention")


class Sweeper:
    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self.db.transaction() as conn:
                    deleted = await retention.sweep(conn)
                if any(deleted.values()):
                    log.info("retention sweep", extra={"deleted": deleted})
            except (psycopg.Error, ApiError):
                pass  # PostgreSQL away: the next sweep catches up.
