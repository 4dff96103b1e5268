"""Provider call records written in batches (group commit) before the call is answered.

A call's record (``provider_calls``), its two usage records and its settlement of the
month's spend are queued when the call ends and written by one statement per batch: a
batch is written ``provider_usage_flush_seconds`` after its first record (and not before
the one before it has committed), so a thousand calls a second make a few hundred
statements at most, not thousands.

``add`` gives a future that is done once the record is committed, and the gateway
answers (or sends a stream's ``done`` event) only then: an answered call's usage survives
a crash of the API process (committed with ``synchronous_commit`` off, see ``flush``). It
waits at most ``provider_usage_wait_seconds``; past that (PostgreSQL away) the call is
answered anyway and its record stays queued, retried until written, up to ``MAX_QUEUED``
records. A budget's reservations are written before the call, so a budget is never
overrun even then.
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
from treadle.errors import ApiError
from treadle.store import providers as store
from treadle.store.db import Database

log = logging.getLogger("treadle.providers")
Row = dict[str, Any]
BATCH = 1000
MAX_QUEUED = 100_000
RETRY_SECONDS = 1.0


class UsageWriter(Background):
    def __init__(self, db: Database, gather_seconds: float, wait_seconds: float) -> None:
        self.db = db
        self.gather_seconds = gather_seconds
        self.wait_seconds = wait_seconds
        self.queue: list[tuple[Row, asyncio.Future[None]]] = []
        self._queued = asyncio.Event()

    def add(
        self, call: Row, input_cost: Decimal, output_cost: Decimal, month: date, spend: Decimal
    ) -> asyncio.Future[None]:
        """Queue the call's records; the future is done once they are committed."""
        if len(self.queue) >= MAX_QUEUED:
            dropped, waiting = self.queue.pop(0)
            _done(waiting)
            log.error(
                "provider usage queue full; a record is lost",
                extra={"call_id": str(dropped["id"]), "cost": str(dropped["cost"])},
            )
        record = {
            **call,
            "input_cost": input_cost,
            "output_cost": output_cost,
            "month": month,
            "spend": spend,
        }
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.append((record, written))
        self._queued.set()
        return written

    async def written(self, future: asyncio.Future[None]) -> None:
        """Wait for a record, at most ``wait_seconds`` (after which it stays queued)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), self.wait_seconds)

    async def run(self) -> None:
        while True:
            await self._queued.wait()
            # Let the records of concurrent calls gather: a batch per call costs this
            # process (and PostgreSQL's one hot spend row) more than the wait costs them.
            await asyncio.sleep(self.gather_seconds)
            self._queued.clear()
            if not await self.flush():
                await asyncio.sleep(RETRY_SECONDS)
                self._queued.set()

    async def flush(self) -> bool:
        """Write what is queued, a batch at a time; False if PostgreSQL refused."""
        while self.queue:
            batch = self.queue[:BATCH]
            try:
                async with self.db.committed() as conn, conn.pipeline(), conn.transaction():
                    # Committed once PostgreSQL has the records, without waiting for its
                    # disk: a crash of this process loses nothing, one of PostgreSQL's
                    # host at most its WAL writer's last few hundred milliseconds; the
                    # answer waits a round trip, not an fsync.
                    await conn.execute("SET LOCAL synchronous_commit TO off")
                    await store.record_many(conn, [record for record, _ in batch])
            except (psycopg.OperationalError, ApiError):
                log.warning("provider usage not written yet; retrying", exc_info=True)
                return False
            except Exception:
                # A batch PostgreSQL will never take must not hold up every later one.
                log.exception(
                    "provider usage refused; batch dropped", extra={"records": len(batch)}
                )
            del self.queue[: len(batch)]
            for _, written in batch:
                _done(written)
        return True

    async def stop(self) -> None:
        await super().stop()
        if not await self.flush() and self.queue:
            log.error("provider usage lost at shutdown", extra={"records": len(self.queue)})


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
