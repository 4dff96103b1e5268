"""Webhook endpoints: where an organization's events are sent, signed with a secret that
is shown once and kept sealed. Deliveries are made by the relay and sent by
``treadle.workers.webhooks``; here they are listed, redriven and test-sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from treadle import _core
from treadle.errors import ApiError
from treadle.sealing import Sealer
from treadle.services import audit
from treadle.services.principal import Actor
from treadle.services.webhook_urls import ensure_allowed
from treadle.settings import Settings
from treadle.store import events
from treadle.store import webhooks as store
from treadle.store.db import Database, defer

Row = dict[str, Any]
MAX_ENDPOINTS_PER_ORGANIZATION = 100
TEST_TOPIC = "webhook.test"


class Webhooks:
    def __init__(
        self, settings: Settings, db: Database, sealer: Sealer, wake: Callable[[], None]
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.allow_private = settings.webhook_allow_private
        self.wake = wake

    def _seal(self, secret: str, endpoint_id: UUID) -> bytes:
        return self.sealer.seal(secret.encode(), endpoint_id.bytes)

    async def create(self, actor: Actor, org_id: UUID, fields: Row) -> Row:
        await ensure_allowed(fields["url"], self.allow_private)
        endpoint_id = uuid.uuid4()
        secret = _core.webhook_secret()
        async with self.db.transaction() as conn:
            await conn.execute(
                "SELECT 1 FROM organizations WHERE id = %s FOR UPDATE", (org_id,)
            )  # one creation at a time per organization, so the count below holds
            cur = await conn.execute(
                "SELECT count(*) AS n FROM webhook_endpoints WHERE organization_id = %s",
                (org_id,),
            )
            row = await cur.fetchone()
            if row is not None and row["n"] >= MAX_ENDPOINTS_PER_ORGANIZATION:
                raise ApiError.conflict(
                    f"an organization has at most {MAX_ENDPOINTS_PER_ORGANIZATION} webhook"
                    " endpoints; delete one, or widen the topics of another",
                    limit=MAX_ENDPOINTS_PER_ORGANIZATION,
                )
            endpoint = await store.insert_endpoint(
                conn,
                {
                    **fields,
                    "id": endpoint_id,
                    "organization_id": org_id,
                    "secret": self._seal(secret, endpoint_id),
                    "created_by": actor.signed_in.account,
                },
            )
            await audit.record(
                conn,
                actor,
                org_id,
                "webhook.create",
                "webhook",
                endpoint_id,
                after=_shown(endpoint),
            )
        return {**endpoint, "secret": secret}

    async def get(self, endpoint_id: UUID) -> Row:
        async with self.db.connection() as conn:
            endpoint = await store.get_endpoint(conn, endpoint_id)
        if endpoint is None:
            raise ApiError.not_found(f"no webhook with id {endpoint_id}")
        return _shown(endpoint)

    async def in_org(
        self, org_id: UUID, limit: int, before: tuple[datetime, UUID] | None
    ) -> list[Row]:
        async with self.db.connection() as conn:
            return await store.endpoints_in_org(conn, org_id, limit, before)

    async def update(self, actor: Actor, endpoint_id: UUID, changes: Row) -> Row:
        if "url" in changes:
            await ensure_allowed(changes["url"], self.allow_private)
        async with self.db.transaction() as conn:
            before = await self._locked(conn, endpoint_id)
            if changes.get("enabled") is True and not before["enabled"]:
                # Enabled again: the failures that disabled it are forgotten.
                changes = {**changes, "disabled_reason": None, "failing_since": None}
            elif changes.get("enabled") is False and before["enabled"]:
                changes = {**changes, "disabled_reason": "disabled by a user"}
                await store.kill_unfinished(conn, endpoint_id, "the endpoint was disabled")
            after = await store.update_endpoint(conn, endpoint_id, changes) if changes else before
            await audit.record(
                conn,
                actor,
                before["organization_id"],
                "webhook.update",
                "webhook",
                endpoint_id,
                _shown(before),
                _shown(after),
            )
        return _shown(after)

    async def delete(self, actor: Actor, endpoint_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            before = await self._locked(conn, endpoint_id)
            await store.delete_endpoint(conn, endpoint_id)
            await audit.record(
                conn,
                actor,
                before["organization_id"],
                "webhook.delete",
                "webhook",
                endpoint_id,
                before=_shown(before),
            )
        return _shown(before)

    async def rotate(self, actor: Actor, endpoint_id: UUID, overlap_seconds: int) -> Row:
        """A new secret; deliveries are signed with the old one too for the overlap."""
        secret = _core.webhook_secret()
        async with self.db.transaction() as conn:
            before = await self._locked(conn, endpoint_id)
            cur = await conn.execute(
                "SELECT now() + make_interval(secs => %s) AS until", (overlap_seconds,)
            )
            until = await cur.fetchone()
            assert until is not None
            after = await store.update_endpoint(
                conn,
                endpoint_id,
                {
                    "secret": self._seal(secret, endpoint_id),
                    "previous_secret": before["secret"] if overlap_seconds else None,
                    "previous_until": until["until"] if overlap_seconds else None,
                },
            )
            await audit.record(
                conn,
                actor,
                before["organization_id"],
                "webhook.rotate",
                "webhook",
                endpoint_id,
                after={"previous_until": after["previous_until"]},
            )
        return {**after, "secret": secret}

    async def send_test(self, actor: Actor, endpoint_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            endpoint = await self._locked(conn, endpoint_id)
            _enabled(endpoint)
            org_id = endpoint["organization_id"]
            data = {"webhook_id": endpoint_id, "message": "a test event sent on request"}
            body = b'{"id":null,' + events.payload(org_id, TEST_TOPIC, data, None, None)[1:]
            delivery = await store.insert_delivery(
                conn,
                {
                    "id": uuid.uuid4(),
                    "endpoint_id": endpoint_id,
                    "organization_id": org_id,
                    "topic": TEST_TOPIC,
                    "body": body,
                },
            )
            # No live event of its own: it would go to every endpoint taking all topics.
            await audit.record(
                conn, actor, org_id, "webhook.test", "webhook", endpoint_id, event=False
            )
        defer(self.wake)
        return delivery

    async def deliveries(
        self, endpoint_id: UUID, limit: int, before_seq: int | None, statuses: list[str] | None
    ) -> list[Row]:
        async with self.db.connection() as conn:
            return await store.deliveries_of(conn, endpoint_id, limit, before_seq, statuses)

    async def delivery(self, endpoint_id: UUID, delivery_id: UUID) -> Row:
        async with self.db.connection() as conn:
            delivery = await store.get_delivery(conn, delivery_id)
        if delivery is None or delivery["endpoint_id"] != endpoint_id:
            raise ApiError.not_found(f"no delivery with id {delivery_id} for this webhook")
        return delivery

    async def redrive(self, actor: Actor, delivery_id: UUID) -> Row:
        """A dead delivery sent again, with the whole retry schedule ahead of it."""
        async with self.db.transaction() as conn:
            delivery = await store.get_delivery(conn, delivery_id, lock=True)
            if delivery is None:
                raise ApiError.not_found(f"no delivery with id {delivery_id}")
            if delivery["status"] != "dead":
                raise ApiError.conflict(
                    f"this delivery is {delivery['status']}; only a dead one can be retried",
                    status=delivery["status"],
                )
            endpoint = await store.get_endpoint(conn, delivery["endpoint_id"], lock=True)
            assert endpoint is not None
            _enabled(endpoint)
            after = await store.redrive(conn, delivery_id)
            await audit.record(
                conn,
                actor,
                delivery["organization_id"],
                "webhook.delivery.retry",
                "webhook_delivery",
                delivery_id,
                after={"webhook_id": delivery["endpoint_id"], "redrives": after["redrives"]},
            )
        defer(self.wake)
        return after

    async def _locked(self, conn: Any, endpoint_id: UUID) -> Row:
        endpoint = await store.get_endpoint(conn, endpoint_id, lock=True)
        if endpoint is None:
            raise ApiError.not_found(f"no webhook with id {endpoint_id}")
        return endpoint


def _enabled(endpoint: Row) -> None:
    if not endpoint["enabled"]:
        raise ApiError.conflict(
            "this webhook is disabled"
            + (f" ({endpoint['disabled_reason']})" if endpoint["disabled_reason"] else "")
            + "; enable it first (PATCH enabled: true)",
            disabled_reason=endpoint["disabled_reason"],
        )


def _shown(endpoint: Row) -> Row:
    """The endpoint as callers and audit rows see it: no secret, sealed or not."""
    return {k: v for k, v in endpoint.items() if k not in ("secret", "previous_secret")}
