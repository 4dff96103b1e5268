"""Periodically deletes records older than each organization's retention settings."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from treadle.background import Background
from treadle.store import retention
from treadle.store.db import Database
from treadle.web.errors import ApiError

log = logging.getLogger("treadle.retention")


class Sweeper(Background):
    def __init__(self, db: Database, interval: float, event_outbox_keep_hours: int) -> None:
        self.db = db
        self.interval = interval
        self.event_outbox_keep_hours = event_outbox_keep_hours

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self.db.transaction() as conn:
                    deleted = await retention.sweep(conn, self.event_outbox_keep_hours)
                if any(deleted.values()):
                    log.info("retention sweep", extra={"deleted": deleted})
            except (psycopg.Error, ApiError):
                pass  # PostgreSQL away: the next sweep catches up.
