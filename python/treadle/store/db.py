"""The connection pool, and the one way to run a transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
