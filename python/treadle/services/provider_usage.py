"""Provider call records written in batches, off the answer's path.

A call's record (``provider_calls``), its two usage records and its settlement of the
month's spend are queued when the call ends and written by one statement per batch, at
most ``provider_usage_flush_seconds`` later: the caller does not wait for PostgreSQL, and
at a thousand calls a second PostgreSQL sees tens of statements, not thousands. What is
queued is written before the process stops; a crash loses at most that interval's records
(a budget's reservations are written before the call, so a crash never lets a budget be
overrun, at worst it keeps estimates charged). While PostgreSQL is away, records wait and
are retried, up to ``MAX_QUEUED`` of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import date
from decimal import Decimal
from typing import Any

import psycopg

from treadle.background import Background
from treadle.store import providers as store
from treadle.store.db import Database
from treadle.web.errors import ApiError

log = logging.getLogger("treadle.providers")
Row = dict[str, Any]
BATCH = 1000
MAX_QUEUED = 100_000
RETRY_SECONDS = 1.0


class UsageWriter(Background):
    def __init__(self, db: Database, flush_seconds: float) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self.queue: list[Row] = []
        self._full = asyncio.Event()

    def add(
        self, call: Row, input_cost: Decimal, output_cost: Decimal, month: date, spend: Decimal
    ) -> None:
        if len(self.queue) >= MAX_QUEUED:
            dropped = self.queue.pop(0)
            log.error(
                "provider usage queue full; a record is lost",
                extra={"call_id": str(dropped["id"]), "cost": str(dropped["cost"])},
            )
        self.queue.append(
            {
                **call,
                "input_cost": input_cost,
                "output_cost": output_cost,
                "month": month,
                "spend": spend,
            }
        )
        if len(self.queue) >= BATCH:
            self._full.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.flush_seconds)
            self._full.clear()
            if not await self.flush():
                await asyncio.sleep(RETRY_SECONDS)

    async def flush(self) -> bool:
        """Write what is queued, a batch at a time; False if PostgreSQL refused."""
        while self.queue:
            batch = self.queue[:BATCH]
            try:
                async with self.db.committed() as conn:
                    await store.record_many(conn, batch)
            except (psycopg.OperationalError, ApiError):
                log.warning("provider usage not written yet; retrying", exc_info=True)
                return False
            except Exception:
                # A batch PostgreSQL will never take must not hold up every later one.
                log.exception(
                    "provider usage refused; batch dropped", extra={"records": len(batch)}
                )
            del self.queue[: len(batch)]
        return True

    async def stop(self) -> None:
        await super().stop()
        if not await self.flush() and self.queue:
            log.error("provider usage lost at shutdown", extra={"records": len(self.queue)})
