"""A bare Granian RSGI app doing treadle's one-row read: the baseline of http_db_read.py.

``GET /v1/organizations/{id}`` selects the organization's row (the same columns and
statement as ``treadle.store.orgs.get``) through a psycopg async pool and answers it as
JSON; ``GET /`` answers without PostgreSQL (the readiness check). No authentication, no
envelope, no access log: what is left is Granian, the pool, psycopg and one round trip.

    HELLO_PG_DATABASE_URL=postgresql://... HELLO_PG_POOL_MAX=10 \\
        granian --interface rsgi --workers 1 hello_granian_pg:app

``HELLO_PG_POOL_MIN`` / ``HELLO_PG_POOL_MAX`` size the pool (treadle's defaults if unset);
``HELLO_PG_PREPARE_THRESHOLD`` is psycopg's ``prepare_threshold`` ("none": never prepare).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import orjson
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

SQL = (
    "SELECT id, name, slug, settings, authz_revision, created_by, created_at, updated_at,"
    " archived_at FROM organizations WHERE id = %s"
)
PREFIX = "/v1/organizations/"
HEADERS = [("content-type", "application/json")]
NOT_FOUND = b'{"error":"not found"}'
COLUMNS = ("id", "name", "slug", "created_by", "created_at", "updated_at")


def _threshold() -> int | None:
    raw = os.environ.get("HELLO_PG_PREPARE_THRESHOLD", "5")
    return None if raw.lower() == "none" else int(raw)


async def _configure(conn: AsyncConnection[Any]) -> None:
    conn.prepare_threshold = _threshold()


class App:
    def __init__(self) -> None:
        self.pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self.opening: asyncio.Lock | None = None

    async def _pool(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        if self.pool is None:
            if self.opening is None:
                self.opening = asyncio.Lock()
            async with self.opening:
                if self.pool is None:
                    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
                        os.environ["HELLO_PG_DATABASE_URL"],
                        min_size=int(os.environ.get("HELLO_PG_POOL_MIN", "2")),
                        max_size=int(os.environ.get("HELLO_PG_POOL_MAX", "10")),
                        kwargs={"autocommit": True},
                        configure=_configure,
                        open=False,
                    )
                    await pool.open(wait=True)
                    self.pool = pool
        return self.pool

    async def __call__(self, scope: Any, proto: Any) -> None:
        path = scope.path
        if not path.startswith(PREFIX):
            proto.response_bytes(200, HEADERS, b'{"status":"ok"}')
            return
        try:
            org_id = uuid.UUID(path[len(PREFIX) :])
        except ValueError:
            proto.response_bytes(404, HEADERS, NOT_FOUND)
            return
        pool = await self._pool()
        async with pool.connection() as conn:
            cur = await conn.execute(SQL, (org_id,))
            row = await cur.fetchone()
        if row is None:
            proto.response_bytes(404, HEADERS, NOT_FOUND)
            return
        names = [c.name for c in cur.description or ()]
        record = dict(zip(names, row, strict=True))
        out = {name: record[name] for name in COLUMNS}
        out["archived"] = record["archived_at"] is not None
        proto.response_bytes(200, HEADERS, orjson.dumps({"data": out}))


app = App()
