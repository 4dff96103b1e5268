"""The authorizer's check for a lost invalidation: once the window lapses, one question to
PostgreSQL for every request in flight, none of them waiting for it, and a missed change
found by it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any
from uuid import UUID

import psycopg
import pytest

from tests.support.api import create_org, signup
from tests.support.servers import Server
from treadle.bus.invalidation import Invalidator
from treadle.bus.redis import connect
from treadle.services import authz as authz_module
from treadle.services.authz import Authorizer
from treadle.store.db import Database

WINDOW = 0.3
REQUESTS = 50


def _connections_asked(db: Database) -> int:
    return db.pool.get_stats().get("requests_num", 0)


def _at_once(call: Coroutine[Any, Any, int]) -> int:
    """What ``call`` returns, which it must without waiting for anything."""
    try:
        call.send(None)
    except StopIteration as done:
        return int(done.value)
    call.close()
    raise AssertionError("the call waited")


@pytest.fixture
def org_id(server: Server) -> UUID:
    with server.client() as client:
        return UUID(create_org(client, signup(client))["id"])


def test_many_requests_after_the_window_ask_once_and_wait_for_nobody(
    org_id: UUID, database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(authz_module, "REVALIDATE_SECONDS", WINDOW)

    async def run() -> None:
        db = Database(database_url, 1, 4)
        await db.open()
        redis = connect(redis_url)
        try:
            authz = Authorizer(db, Invalidator(redis, "unused:"))
            revision = await authz.ensure(org_id)  # loads the snapshot
            await asyncio.sleep(WINDOW + 0.1)
            before = _connections_asked(db)
            got = [_at_once(authz.ensure(org_id)) for _ in range(REQUESTS)]
            assert got == [revision] * REQUESTS
            assert len(authz.revalidating) == 1  # one question, not asked yet
            await asyncio.gather(*authz.revalidating.values())
            assert _connections_asked(db) - before == 1
            # Verified: asking again within the window costs nothing.
            await asyncio.gather(*(authz.ensure(org_id) for _ in range(REQUESTS)))
            assert _connections_asked(db) - before == 1
            assert not authz.revalidating
        finally:
            await db.close()
            await redis.aclose()

    asyncio.run(run())


def test_a_change_whose_announcement_was_lost_is_found_by_the_next_question(
    org_id: UUID, database_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(authz_module, "REVALIDATE_SECONDS", WINDOW)

    async def run() -> None:
        db = Database(database_url, 1, 4)
        await db.open()
        redis = connect(redis_url)
        try:
            authz = Authorizer(db, Invalidator(redis, "unused:"))
            revision = await authz.ensure(org_id)
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
                # A change made elsewhere, whose message never arrived.
                await c.execute(
                    "UPDATE organizations SET authz_revision = authz_revision + 1 WHERE id = %s",
                    (org_id,),
                )
            assert await authz.ensure(org_id) == revision  # within the window: trusted
            await asyncio.sleep(WINDOW + 0.1)
            assert _at_once(authz.ensure(org_id)) == revision  # due: asked, not waited for
            await asyncio.gather(*authz.revalidating.values())
            assert await authz.ensure(org_id) == revision + 1
        finally:
            await db.close()
            await redis.aclose()

    asyncio.run(run())
