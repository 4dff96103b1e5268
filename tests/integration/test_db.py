"""The pool's settings reach its connections: statement preparation and pool size; a
request transaction in pipeline mode commits all of its statements or none."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import psycopg
import pytest

from treadle.store import db as db_module
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


async def _pipelined(url: str, table: str, fail: bool, commit: bool) -> list[int]:
    """A request transaction that opens with ``pipeline``, COPYs a row, then pipelines the
    rest to its commit; ``fail`` makes the last statement fail. The rows left after it."""
    db = Database(url, 1, 1)
    await db.open()
    try:
        async with db.connection() as conn:
            await conn.execute(f"CREATE TABLE {table} (n int PRIMARY KEY)")
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            async with db.request() as tx:
                async with tx.pipeline() as conn:
                    first = await conn.execute(f"INSERT INTO {table} VALUES (1) RETURNING n")
                assert await first.fetchone() == {"n": 1}
                async with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy:
                    await copy.write(b"2\n")
                await db.pipeline_to_commit()
                await conn.execute(f"INSERT INTO {table} VALUES (3)")
                await conn.execute(f"INSERT INTO {table} VALUES (%s)", (1 if fail else 4,))
                if not commit:
                    tx.rollback()
        async with db.connection() as conn:
            cur = await conn.execute(f"SELECT n FROM {table} ORDER BY n")
            rows = [row["n"] for row in await cur.fetchall()]
            await conn.execute(f"DROP TABLE {table}")
            return rows
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("fail", "commit", "kept"),
    [(False, True, [1, 2, 3, 4]), (True, True, []), (False, False, [])],
)
def test_a_pipelined_request_transaction_keeps_all_or_nothing(
    database_url: str, fail: bool, commit: bool, kept: list[int]
) -> None:
    table = f"pipelined_{uuid.uuid4().hex[:12]}"
    assert asyncio.run(_pipelined(database_url, table, fail, commit)) == kept


def test_a_pipelined_statements_own_error_is_raised_not_the_pipeline_aborted_after_it() -> None:
    # psycopg raises PipelineAborted (an OperationalError, read as "database unavailable")
    # for the statements skipped after a failed one when the failure's result arrives
    # first and theirs later, which depends on timing: CI once saw it for this module's
    # pipelined test under load. The failed statement's own error is what the caller gets.
    def skipped_after(error: psycopg.Error) -> None:
        try:
            raise error
        except psycopg.Error:
            raise psycopg.errors.PipelineAborted("pipeline aborted")  # noqa: B904

    with pytest.raises(psycopg.errors.UniqueViolation), db_module._statement_error():
        skipped_after(psycopg.errors.UniqueViolation("duplicate key"))
    with pytest.raises(psycopg.errors.PipelineAborted), db_module._statement_error():
        raise psycopg.errors.PipelineAborted("pipeline aborted")
