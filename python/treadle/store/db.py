"""The connection pool, and the one way to run a transaction.

A request that changes state runs inside one *request transaction* (``Database.request``):
the handler's transactions become savepoints in it, and it commits only once the answer is
encoded (and, with an Idempotency-Key, stored), so a crash, an error or an answer that cannot
be encoded never leaves half a change behind, and a stored answer exists exactly when the
change does. It opens lazily, on the first ``transaction()``. Invalidations and wake-ups
wait for its commit (``after_commit``, ``defer``); reads that fill process-wide caches use
``committed()`` so they never see what may still roll back.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import AsyncConnectionPool

from treadle import encoding
from treadle.errors import ApiError

Conn = psycopg.AsyncConnection[dict[str, Any]]


def _json_dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=encoding.default)


_decode_json = msgspec.json.Decoder().decode


def _json_loads(data: str | bytes) -> Any:
    try:
        # exact for integers beyond 64 bits too (which rows stored before inputs were
        # bounded may hold), where orjson would turn them into floats
        return _decode_json(data)
    except msgspec.DecodeError:
        # numbers beyond a double's range, which jsonb keeps: read as the standard
        # library always read them
        return json.loads(data)


# jsonb written with orjson and read with msgspec rather than the standard library's json:
# several times faster, and job rows (inputs, labels, pricing, results) are decoded on
# every claim.
set_json_dumps(_json_dumps)
set_json_loads(_json_loads)
Callback = Callable[[], Awaitable[Any] | Any]


class RequestTransaction:
    """One request's transaction: opened on first use, committed or rolled back at the end."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: Conn | None = None
        self.after: list[Callback] = []
        self.active = True
        self.commit_wanted = True
        self._stack = AsyncExitStack()
        # Pipeline mode kept from ``pipeline_to_commit`` to the end (see there).
        self._tail: AbstractAsyncContextManager[Any] | None = None
        self._committing = False

    def rollback(self) -> None:
        """Roll back at the end instead of committing (the answer is a server error)."""
        self.commit_wanted = False

    async def begin(self) -> Conn:
        if self.conn is None:
            conn = await self._open()
            await self._stack.enter_async_context(conn.transaction())
            self.conn = conn
        return self.conn

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[Conn]:
        """The transaction's connection in pipeline mode for the block: the block's
        statements, and the BEGIN when the transaction opens here, are sent without waiting
        for one another, and all their results come back in one round trip as the block
        ends. Read them after the block: a read inside waits a round trip of its own."""
        with _statement_error():
            if self.conn is not None:
                async with self.conn.pipeline():
                    yield self.conn
                return
            conn = await self._open()
            async with conn.pipeline():
                # Not conn.transaction(), which in pipeline mode waits for its BEGIN.
                await self._stack.enter_async_context(psycopg.AsyncTransaction(conn))
                self.conn = conn
                yield conn

    async def pipeline_to_commit(self) -> None:
        """Pipeline mode from here to the end: the statements still to come are sent
        without waiting, and their results come back with the COMMIT's, in one round trip
        (an error in any of them fails the commit, so nothing is kept). For a request's
        last writes: no COPY after this, and no result read (each read waits)."""
        conn = await self.begin()
        if self._tail is None:
            tail = conn.pipeline()
            await tail.__aenter__()
            self._tail = tail

    async def _open(self) -> Conn:
        conn = await self._stack.enter_async_context(self.db.pool.connection())
        # Runs after the transaction's end (the stack unwinds last in, first out), so that
        # a pipelined COMMIT is sent and waited for here, before the connection goes back.
        self._stack.push_async_exit(self._end_tail)
        return conn

    async def _end_tail(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        tail, self._tail = self._tail, None
        if tail is None:
            return False
        try:
            with _statement_error():
                await tail.__aexit__(kind, exc, tb)
        except psycopg.Error:
            if self._committing:
                raise
            # Rolling back: this is the error that made us roll back, or the ROLLBACK that
            # it made the server skip; the pool rolls back a connection left in a failed
            # transaction.
        return False

    async def finish(self, commit: bool) -> None:
        """Commit (or roll back), then run what waited for the commit."""
        self.active = False
        self._committing = commit
        try:
            with _unavailable():
                if commit:
                    await self._stack.aclose()
                else:
                    await self._stack.__aexit__(psycopg.Rollback, psycopg.Rollback(), None)
        except BaseException:
            self.after.clear()
            raise
        callbacks, self.after = (self.after if commit else []), []
        for callback in callbacks:
            result = callback()
            if inspect.isawaitable(result):
                await result


_request: ContextVar[RequestTransaction | None] = ContextVar("treadle_request_tx", default=None)


def _open_request() -> RequestTransaction | None:
    tx = _request.get()
    return tx if tx is not None and tx.active and tx.conn is not None else None


@contextlib.contextmanager
def _statement_error() -> Iterator[None]:
    """The error of the pipelined statement that failed, not the PipelineAborted of the
    ones the server skipped after it. psycopg raises the latter when the failed result
    arrives before the pipeline's end and the skipped ones with it (a matter of timing);
    PipelineAborted is an OperationalError, which would read as "database unavailable"
    (a 503) when it is a unique violation (a 409) or the like."""
    try:
        yield
    except psycopg.errors.PipelineAborted as exc:
        cause = exc.__context__
        while isinstance(cause, psycopg.errors.PipelineAborted):
            cause = cause.__context__
        if isinstance(cause, psycopg.Error):
            raise cause from None
        raise


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        raise _unavailable_error() from exc


def _unavailable_error() -> ApiError:
    # Includes the pool's own timeout: PostgreSQL is down or saturated.
    return ApiError.unavailable("the database is unavailable; retry shortly", 2)


class _Use:
    """A connection for one block: the request transaction's, or one borrowed from the
    pool. Every read takes one, so it is a plain class rather than stacked generator
    context managers, and it skips what ``pool.connection()`` adds around ``getconn``: a
    commit of an autocommit connection and usage timing. ``putconn`` still rolls back
    (or replaces) a connection left in a transaction or broken."""

    __slots__ = ("borrowed", "conn", "pool")

    def __init__(self, pool: AsyncConnectionPool[Conn], conn: Conn | None) -> None:
        self.pool = pool
        self.conn = conn
        self.borrowed = False

    async def __aenter__(self) -> Conn:
        if self.conn is None:
            try:
                self.conn = await self.pool.getconn()
            except psycopg.OperationalError as exc:
                raise _unavailable_error() from exc
            self.borrowed = True
        return self.conn

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if self.borrowed:
            assert self.conn is not None
            self.borrowed = False
            await self.pool.putconn(self.conn)
        if isinstance(exc, psycopg.OperationalError):
            raise _unavailable_error() from exc


async def after_commit(callback: Callback) -> None:
    """Run ``callback`` once the request's transaction has committed (at once outside one);
    dropped if it rolls back."""
    tx = _open_request()
    if tx is not None:
        tx.after.append(callback)
        return
    result = callback()
    if inspect.isawaitable(result):
        await result


def defer(callback: Callable[[], object]) -> None:
    """``after_commit`` for a plain function, callable where nothing can be awaited."""
    tx = _open_request()
    if tx is not None:
        tx.after.append(callback)
    else:
        callback()


class Database:
    def __init__(
        self,
        url: str,
        min_size: int = 2,
        max_size: int = 10,
        prepare_threshold: int = 5,
        connection_class: type[Conn] = psycopg.AsyncConnection,
    ) -> None:
        self.pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            connection_class=connection_class,
            min_size=min_size,
            max_size=max_size,
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,
                # psycopg's None (never prepare) is -1 in the settings, which hold ints.
                "prepare_threshold": None if prepare_threshold < 0 else prepare_threshold,
            },
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
    async def request(self) -> AsyncIterator[RequestTransaction]:
        """The request transaction around a handler. It commits when the block ends, unless
        the block raises or calls ``rollback``."""
        tx = RequestTransaction(self)
        token = _request.set(tx)
        try:
            try:
                yield tx
            except psycopg.OperationalError as exc:
                # A statement run on tx.conn itself (not in a savepoint), e.g. storing an
                # idempotent answer, when PostgreSQL goes away: a 503 like any other.
                await tx.finish(commit=False)
                raise _unavailable_error() from exc
            except BaseException:
                await tx.finish(commit=False)
                raise
            await tx.finish(commit=tx.commit_wanted)
        finally:
            tx.active = False
            _request.reset(token)

    def connection(self) -> _Use:
        """A connection: inside an open request transaction, that one (its writes are seen)."""
        tx = _open_request()
        return _Use(self.pool, tx.conn if tx is not None else None)

    async def pipeline_to_commit(self) -> None:
        """``RequestTransaction.pipeline_to_commit`` of the open request transaction."""
        tx = _open_request()
        assert tx is not None, "only inside a request transaction"
        await tx.pipeline_to_commit()

    def in_request(self) -> bool:
        """Whether a request transaction is open here: writes on ``connection()`` then
        commit with the request's answer, or not at all."""
        return _open_request() is not None

    def committed(self) -> _Use:
        """A connection of its own, outside any request transaction: for reads whose result
        outlives the request (caches, snapshots), which must not see uncommitted writes."""
        return _Use(self.pool, None)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """A transaction; inside a request transaction, a savepoint in it (an error rolls
        back this block alone, as a transaction of its own would)."""
        tx = _request.get()
        with _unavailable():
            if tx is not None and tx.active:
                conn = await tx.begin()
                async with conn.transaction():
                    yield conn
                return
            async with self.pool.connection() as conn, conn.transaction():
                yield conn

    async def ping(self, timeout: float = 1.0) -> None:
        async with self.pool.connection(timeout=timeout) as conn:
            await conn.execute("SELECT 1")


def after_cursor(alias: str = "") -> str:
    """SQL for "after the cursor" in a list newest first by (created_at, id), taking the
    three parameters of ``cursor_args``: the same text with or without a cursor, so one
    prepared statement serves every page."""
    p = f"{alias}." if alias else ""
    return f"(%s::timestamptz IS NULL OR ({p}created_at, {p}id) < (%s::timestamptz, %s::uuid))"


def cursor_args(before: tuple[datetime, UUID] | None) -> tuple[Any, Any, Any]:
    at, ident = before if before is not None else (None, None)
    return at, at, ident


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
