"""Telemetry ingest: a batch parsed and validated in ``treadle._core`` (the GIL released),
its accepted events written with one binary COPY into the day's partition, in the same
transaction as the batch's record and the request's stored answer (``Database.request``):
a crash keeps both or neither, so a retry with the same Idempotency-Key either replays the
committed batch or writes it for the first time, never twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any
from uuid import UUID

from treadle import _core, clock
from treadle.errors import ApiError
from treadle.services.edge_agents import EdgeAgents, agent_of
from treadle.services.principal import Principal
from treadle.settings import Settings
from treadle.store import telemetry as telemetry_store
from treadle.store.db import Database

Row = dict[str, Any]
MEDIA_TYPES = {"application/json": False, "application/x-ndjson": True}
ENCODINGS = ("identity", "gzip", "zstd")
# Below this a batch is parsed on the event loop's thread: the hop to a worker thread
# costs more than the parse.
INLINE_BYTES = 16 * 1024
# The error of each way a body can fail as a whole.
_CODE = {
    "too_large": "payload_too_large",
    "too_many_events": "payload_too_large",
    "bad_encoding": "bad_request",
    "not_json": "bad_request",
}


class Telemetry:
    def __init__(self, settings: Settings, db: Database, agents: EdgeAgents) -> None:
        self.settings = settings
        self.db = db
        self.agents = agents
        self._partitions: set[tuple[UUID, date]] | None = None

    async def ingest(
        self, principal: Principal, body: bytes, media_type: str, encoding: str
    ) -> Row:
        agent_id = agent_of(principal)
        org_id = principal.organization_id
        assert org_id is not None
        if media_type not in MEDIA_TYPES:
            raise ApiError.unsupported_media_type(
                "send a JSON array of events (application/json) or one event per line"
                " (application/x-ndjson)"
            )
        if encoding not in ENCODINGS:
            raise ApiError.unsupported_media_type(
                f"Content-Encoding may be {', '.join(ENCODINGS)}, not {encoding!r}"
            )
        policy, _ = await self.agents.policy_of_org(org_id)
        received = clock.now()
        batch_id = uuid.uuid4()
        limits = self.settings
        arguments = {
            "ndjson": MEDIA_TYPES[media_type],
            "encoding": encoding,
            "max_bytes": policy["max_batch_bytes"],
            "max_events": policy["max_batch_events"],
            "max_attributes": limits.telemetry_max_attributes,
            "max_key_bytes": limits.telemetry_max_key_bytes,
            "max_value_bytes": limits.telemetry_max_value_bytes,
            "allowed_types": policy["allowed_types"] or None,
            "organization_id": org_id.bytes,
            "agent_id": agent_id.bytes,
            "batch_id": batch_id.bytes,
            "received_at_us": int(received.timestamp() * 1_000_000),
            "max_age_seconds": limits.telemetry_max_age_seconds,
            "max_future_seconds": limits.telemetry_max_future_seconds,
        }
        try:
            if len(body) < INLINE_BYTES:
                accepted, rejected, data = _core.parse_telemetry(body, **arguments)
            else:
                accepted, rejected, data = await asyncio.to_thread(
                    _core.parse_telemetry, body, **arguments
                )
        except _core.IngestError as exc:
            async with self.db.transaction() as conn:
                await telemetry_store.record_failure(conn, org_id, agent_id, exc.message)
            raise ApiError(_CODE[exc.code], exc.message, {"reason": exc.code}) from None
        day = received.date()  # the clock is UTC: the partitions are UTC days
        if accepted:
            await self._partition(org_id, day)
        rejections = [{"index": i, "code": code, "message": m} for i, code, m in rejected]
        batch = {
            "id": batch_id,
            "organization_id": org_id,
            "agent_id": agent_id,
            "accepted": accepted,
            "rejected": len(rejections),
            "rejections": rejections,
            "bytes": len(body),
            "created_at": received,
        }
        # The route requires an Idempotency-Key, so this is the request's transaction: the
        # COPY, the batch and the stored answer commit together. No savepoint of its own
        # (two round trips a batch): an error here rolls the whole request back.
        assert self.db.in_request(), "ingest writes in its request's transaction"
        async with self.db.connection() as conn:
            if accepted:
                await telemetry_store.copy_events(conn, org_id, day, data)
            first_error = (
                f"event {rejections[0]['index']}: {rejections[0]['message']}"
                if rejections
                else None
            )
            # The batch's row, the stored answer and the COMMIT: one round trip.
            await self.db.pipeline_to_commit()
            await telemetry_store.record_batch(conn, batch, first_error)
        return {
            "batch_id": batch_id,
            "accepted": accepted,
            "rejected": rejections,
            "received_at": received,
        }

    async def _partition(self, org_id: UUID, day: date) -> None:
        """Make sure the organization has a partition for ``day`` (and for the next day, so
        that midnight finds it made). Its own transaction, not the request's: DDL locks are
        held until commit."""
        if self._partitions is None:
            async with self.db.committed() as conn:
                self._partitions = await telemetry_store.known_partitions(conn)
        for wanted in (day, day + timedelta(days=1)):
            if (org_id, wanted) in self._partitions:
                continue
            async with self.db.committed() as conn, conn.transaction():
                await telemetry_store.create_partition(conn, org_id, wanted)
            self._partitions.add((org_id, wanted))

    async def events(self, org_id: UUID, limit: int, **filters: Any) -> list[Row]:
        async with self.db.connection() as conn:
            return await telemetry_store.events(conn, org_id, limit, **filters)

    async def batches(self, org_id: UUID, limit: int, **filters: Any) -> list[Row]:
        async with self.db.connection() as conn:
            return await telemetry_store.batches(conn, org_id, limit, **filters)

    async def status(self, org_id: UUID) -> list[Row]:
        async with self.db.connection() as conn:
            return await telemetry_store.status(conn, org_id)
