"""The pool's settings reach its connections: statement preparation and pool size."""

from __future__ import annotations

import asyncio

import pytest

from treadle.store.db import Database

QUERY = "SELECT %s::int + 1 AS n"


async def _prepared_after(url: str, threshold: int, runs: int) -> int:
    """How many statements one connection has prepared after running QUERY ``runs`` times."""
    db = Database(url, 1, 1, prepare_threshold=threshold)
    await db.open()
    try:
        async with db.connection() as conn:
            for i in range(runs):
                cur = await conn.execute(QUERY, (i,))
                assert await cur.fetchone() == {"n": i + 1}
            cur = await conn.execute(
                "SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE %s",
                ("%::int + 1 AS n%",),
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row["n"])
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("threshold", "runs", "prepared"),
    [(0, 1, 1), (5, 5, 0), (5, 6, 1), (-1, 20, 0)],
)
def test_prepare_threshold_decides_when_a_statement_is_prepared(
    database_url: str, threshold: int, runs: int, prepared: int
) -> None:
    assert asyncio.run(_prepared_after(database_url, threshold, runs)) == prepared


def test_requests_beyond_the_pool_size_wait_for_a_connection_and_all_finish(
    database_url: str,
) -> None:
    async def run() -> tuple[int, int]:
        db = Database(database_url, 1, 3)
        await db.open()
        busy = peak = 0

        async def one(i: int) -> int:
            nonlocal busy, peak
            async with db.connection() as conn:
                busy += 1
                peak = max(peak, busy)
                cur = await conn.execute("SELECT %s::int AS n, pg_sleep(0.01)", (i,))
                row = await cur.fetchone()
                busy -= 1
            assert row is not None
            return int(row["n"])

        try:
            got = await asyncio.gather(*(one(i) for i in range(30)))
        finally:
            await db.close()
        assert got == list(range(30))
        return peak, len(got)

    peak, done = asyncio.run(run())
    assert done == 30
    assert peak == 3
