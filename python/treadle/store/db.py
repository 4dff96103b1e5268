"""The connection pool, and the one way to run a transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from treadle.web.errors import ApiError

Conn = psycopg.AsyncConnection[dict[str, Any]]


class Database:
    def __init__(self, url: str, min_size: int = 2, max_size: int = 10) -> None:
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            open=False,
            timeout=5.0,
            reconnect_timeout=0,
        )

    async def open(self) -> None:
        # Not waiting: the process serves /healthz and 503s while PostgreSQL is away.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close(timeout=5.0)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        try:
            async with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            # Includes the pool's own timeout: PostgreSQL is down or saturated.
            raise ApiError.unavailable("the database is unavailable; retry shortly", 2) from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self, timeout: float = 1.0) -> None:
        async with self.pool.connection(timeout=timeout) as conn:
            await conn.execute("SELECT 1")


async def paged(
    conn: Conn, sql: str, args: Sequence[Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Run ``sql`` (which selects ``count(*) OVER () AS total`` and ends before LIMIT)
    for one page; returns the rows without ``total``, and the total."""
    cur = await conn.execute(f"{sql} LIMIT %s OFFSET %s", (*args, limit, offset))
    rows = await cur.fetchall()
    if not rows and offset > 0:
        # Past the end: the page is empty, but the total is still wanted.
        cur = await conn.execute(f"{sql} LIMIT 1", tuple(args))
        first = await cur.fetchone()
        return [], int(first["total"]) if first else 0
    total = int(rows[0]["total"]) if rows else 0
    for row in rows:
        del row["total"]
    return rows, total
