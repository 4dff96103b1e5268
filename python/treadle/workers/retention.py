"""Periodically deletes records older than each organization's retention settings, and
platform-wide records older than the platform's."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from treadle.background import Background
from treadle.errors import ApiError
from treadle.settings import Settings
from treadle.store import retention
from treadle.store.db import Database

log = logging.getLogger("treadle.retention")


class Sweeper(Background):
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.interval = settings.retention_sweep_seconds
        self.keep = retention.Keep(
            event_outbox_hours=settings.event_outbox_keep_hours,
            mail_days=settings.mail_keep_days,
            platform_audit_days=settings.platform_audit_keep_days,
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                async with self.db.transaction() as conn:
                    deleted = await retention.sweep(conn, self.keep)
                if any(deleted.values()):
                    log.info("retention sweep", extra={"deleted": deleted})
            except (psycopg.Error, ApiError):
                pass  # PostgreSQL away: the next sweep catches up.
