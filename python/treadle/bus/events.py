"""Live events across processes: the outbox relay, and each process's feed into its hub.

The relay moves committed outbox rows (``treadle.store.events``) to one Redis stream; one
process relays at a time. Every process runs a feed that reads that stream into its own
``_core.Hub``, from which SSE and WebSocket subscribers are served. Stream ids are the
event ids clients resume from, so any process can resume any client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from treadle._core import Hub, Subscription
from treadle.background import Background
from treadle.settings import Settings
from treadle.store import events as outbox
from treadle.store.db import Database
from treadle.web.errors import ApiError

log = logging.getLogger("treadle.events")

# Taken with pg_try_advisory_xact_lock in the relay transaction: one relayer at a time.
RELAY_LOCK = 0x7472_6564_0002
RELAY_BATCH = 500
POLL_SECONDS = 1.0
MARKER_SECONDS = 86400
READ_COUNT = 1000
BLOCK_MS = 5000
MAX_BACKOFF = 5.0
# After stopping() asks streams to end, writers still blocked on a client that does not
# read are cancelled after this long.
STOP_GRACE = 1.0
# How long startup waits for the first load of the stream, so that a process that says
# it is ready can also serve event streams.
LOAD_WAIT = 2.0

# One XADD per outbox row, ever: a relayer that dies between the XADD and its commit
# leaves the marker behind, and the next attempt gets the first stream id back.
_XADD_ONCE = """
local done = redis.call('GET', KEYS[2])
if done then return done end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
  'org', ARGV[2], 'topic', ARGV[3], 'job', ARGV[4], 'run', ARGV[5], 'payload', ARGV[6])
redis.call('SET', KEYS[2], id, 'EX', ARGV[7])
return id
"""


class Relay(Background):
    """Moves pending outbox rows to the stream when PostgreSQL notifies, or every second."""

    def __init__(self, settings: Settings, db: Database, redis: Redis) -> None:
        self.url = settings.database_url
        self.db = db
        self.redis = redis
        self.stream = f"{settings.redis_prefix}events"
        self.marker = f"{settings.redis_prefix}events:relayed:"
        self.maxlen = settings.event_stream_max
        self.script = redis.register_script(_XADD_ONCE)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5
                ) as listener:
                    await listener.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                    backoff = 0.5
                    await self._serve(listener)
            except Exception as exc:
                # PostgreSQL away: rows stay in the outbox until it is back.
                if not isinstance(exc, psycopg.Error | ApiError | OSError):
                    log.exception("event relay failed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _serve(self, listener: psycopg.AsyncConnection[Any]) -> None:
        backoff = 0.5
        while True:
            try:
                while await self.relay_pending() == RELAY_BATCH:
                    pass
                backoff = 0.5
            except (RedisError, OSError):
                # Redis away: the transaction rolled back, the rows wait for the next pass.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            async for _ in listener.notifies(timeout=POLL_SECONDS, stop_after=1):
                pass

    async def relay_pending(self) -> int:
        """Relay one batch, if no other process is relaying; how many rows moved."""
        async with self.db.transaction() as conn:
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (RELAY_LOCK,))
            row = await cur.fetchone()
            if not row or not row["got"]:
                return 0
            rows = await outbox.pending(conn, RELAY_BATCH)
            if not rows:
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for row in rows:
                await self.script(
                    keys=[self.stream, f"{self.marker}{row['id']}"],
                    args=[
                        self.maxlen,
                        str(row["organization_id"]),
                        row["topic"],
                        str(row["job_id"] or ""),
                        str(row["run_id"] or ""),
                        bytes(row["payload"]),
                        MARKER_SECONDS,
                    ],
                    client=pipe,
                )
            stream_ids = await pipe.execute()
            await outbox.mark_relayed(
                conn, [(row["id"], sid.decode()) for row, sid in zip(rows, stream_ids, strict=True)]
            )
        return len(rows)


class Feed(Background):
    """Reads the stream into this process's hub: the whole stream at start (so clients
    can resume across a restart), then whatever is added."""

    def __init__(self, settings: Settings, events: Events) -> None:
        self.events = events
        self.stream = f"{settings.redis_prefix}events"
        # Its own client: a blocking read outlasts the shared client's 2 s socket timeout.
        self.client = Redis.from_url(
            settings.redis_url,
            socket_timeout=BLOCK_MS / 1000 + 5,
            socket_connect_timeout=1.0,
            retry_on_timeout=False,
        )

    async def run(self) -> None:
        backoff = 0.5
        last: str | None = None
        while True:
            try:
                if last is None:
                    last = await self._load()
                replies = await self.client.xread(
                    {self.stream: last}, count=READ_COUNT, block=BLOCK_MS
                )
                for entries in _entries(replies):
                    for entry_id, fields in entries:
                        last = self._publish(self.events.hub, entry_id, fields)
                backoff = 0.5
            except Exception as exc:
                if not isinstance(exc, RedisError | OSError):
                    log.exception("event feed failed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                with contextlib.suppress(RedisError, OSError):
                    if last is not None and _newer(await self._horizon(), last):
                        # Entries this process never saw were trimmed while it was away.
                        last = None

    async def _load(self) -> str:
        entries: list[tuple[Any, dict[bytes, bytes]]] = []
        start = "-"
        while True:
            chunk: list[Any] = (
                await self.client.xrange(self.stream, min=start, count=READ_COUNT) or []
            )
            entries += chunk
            if len(chunk) < READ_COUNT:
                break
            start = "(" + _text(chunk[-1][0])
        # Read after the range: whatever was trimmed meanwhile lies before this horizon.
        horizon = await self._horizon()
        settings = self.events.settings
        hub = Hub(settings.event_ring_size, settings.event_queue_size, horizon)
        last = "0-0"
        for entry_id, fields in entries:
            last = self._publish(hub, entry_id, fields)
        self.events.swap(hub)
        log.info("event feed loaded", extra={"events": len(entries), "horizon": horizon})
        return last

    async def _horizon(self) -> str:
        """The id after which the stream still holds every entry."""
        try:
            info = await self.client.xinfo_stream(self.stream)
        except ResponseError:
            return "0-0"  # no stream yet
        deleted = info.get("max-deleted-entry-id")
        if deleted is not None:
            return _text(deleted)
        first = info.get("first-entry")
        # Before Redis 7 there is no record of trimming: assume what precedes the first.
        return _before(_text(first[0])) if first else "0-0"

    @staticmethod
    def _publish(hub: Hub | None, entry_id: Any, fields: dict[bytes, bytes]) -> str:
        event_id = _text(entry_id)
        if hub is not None:
            hub.publish(
                event_id,
                fields[b"org"].decode(),
                fields[b"topic"].decode(),
                sse_frame(event_id, fields[b"topic"], fields[b"payload"]),
                fields.get(b"job", b"").decode() or None,
                fields.get(b"run", b"").decode() or None,
            )
        return event_id


def sse_frame(event_id: str, topic: bytes, payload: bytes) -> bytes:
    """The event as a Server-Sent Events frame. The hub holds events in this form, made
    once here rather than once per subscriber; ``event_json`` cuts the payload back out."""
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), topic, payload)


_DATA = b"\ndata: "


def event_json(frame: bytes) -> bytes:
    """The event's JSON object, from its SSE frame."""
    return frame[frame.index(_DATA) + len(_DATA) : -2]


@dataclass(frozen=True, slots=True)
class Gap:
    """History after ``after`` was lost before the subscription began."""

    after: str


@dataclass(frozen=True, slots=True)
class End:
    """The last word of a stream: why it ends, and what the client should do."""

    code: str
    message: str


# What listen() yields: events, a gap, the end, or None for a keep-alive.
Item = list[tuple[str, bytes]] | Gap | End | None


@dataclass(eq=False)
class _Stream:
    wake: asyncio.Event
    task: asyncio.Task[Any] | None
    end: End | None = field(default=None)
    # Set by the keep-alive ticker; ``quiet`` says nothing was sent since the last tick.
    tick: bool = False
    quiet: bool = True


class Events:
    """This process's live events: the hub, the feed filling it, the relay, the streams."""

    def __init__(self, settings: Settings, db: Database, redis: Redis) -> None:
        self.settings = settings
        self.hub: Hub | None = None
        self.feed = Feed(settings, self)
        self.relay = Relay(settings, db, redis) if settings.event_relay else None
        self._streams: set[_Stream] = set()
        self._stopping = False
        self._loaded = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.feed.start()
        if self.relay is not None:
            self.relay.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loaded.wait(), LOAD_WAIT)

    async def stop(self) -> None:
        self.stopping()
        # Servers that did not call stopping() earlier (Robyn): let the streams send
        # their last word before they are cut.
        deadline = time.monotonic() + STOP_GRACE / 2
        while self._streams and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for stream in list(self._streams):
            if stream.task is not None:
                stream.task.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self.relay is not None:
            await self.relay.stop()
        await self.feed.stop()
        await self.feed.client.aclose()

    def stopping(self) -> None:
        """End every stream: the server is going away (clients resume elsewhere)."""
        if self._stopping:
            return
        self._stopping = True
        self._end_all(End("shutting_down", "the server is stopping"))
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(STOP_GRACE, self._cancel_all)

    def swap(self, hub: Hub) -> None:
        """Serve from a freshly loaded hub; streams of the old one must resume."""
        old, self.hub = self.hub, hub
        self._loaded.set()
        if old is not None:
            self._end_all(End("resync", "this server reloaded its event history"))

    def subscribe(
        self,
        org_id: str,
        topics: list[str] | None,
        job_id: str | None,
        after: str | None,
    ) -> Subscription:
        hub = self.hub
        if hub is None or self._stopping:
            raise ApiError.unavailable("live events are not available yet; retry shortly", 2)
        return hub.subscribe(org_id, topics, job_id, None, after)

    async def listen(self, sub: Subscription, after: str | None) -> AsyncGenerator[Item, None]:
        """The subscription's events in batches (SSE frames); ``None`` when a keep-alive
        is due; a final ``End`` when the subscriber fell behind or the server stops."""
        stream = _Stream(asyncio.Event(), asyncio.current_task())
        self._streams.add(stream)
        # The hub calls wakers on the publishing thread, which is this loop's (the feed
        # publishes from it): setting the event directly needs no thread hand-off.
        sub.set_waker(stream.wake.set)
        last = after
        try:
            if sub.gap:
                yield Gap(after or "0-0")
            while True:
                if stream.end is not None:
                    yield _resume(stream.end, last)
                    return
                stream.wake.clear()
                items = sub.drain()
                if items:
                    last = items[-1][0]
                    stream.quiet = False
                    yield items
                    continue
                if sub.overflowed:
                    yield _resume(End("slow_consumer", _SLOW), last)
                    return
                if stream.tick:
                    stream.tick = False
                    if stream.quiet:
                        yield None
                    stream.quiet = True
                    continue
                await stream.wake.wait()
        finally:
            self._streams.discard(stream)
            sub.close()

    async def _tick(self) -> None:
        """Wake every stream once a keep-alive period: one timer for all of them, where a
        timeout per wait would cost a timer (and a task) per event per subscriber."""
        while True:
            await asyncio.sleep(self.settings.event_keepalive_seconds)
            for stream in self._streams:
                stream.tick = True
                stream.wake.set()

    def _end_all(self, end: End) -> None:
        for stream in self._streams:
            stream.end = end
            stream.wake.set()

    def _cancel_all(self) -> None:
        for stream in list(self._streams):
            if stream.task is not None:
                stream.task.cancel()


_SLOW = "this subscriber fell too far behind and was dropped"


def _resume(end: End, last: str | None) -> End:
    where = f"Last-Event-ID: {last}" if last else "Last-Event-ID (the id of the last event)"
    return End(end.code, f"{end.message}; reconnect and resume with {where}")


def _entries(replies: Any) -> list[Any]:
    # RESP2 answers [[key, entries]], RESP3 {key: entries}.
    if isinstance(replies, dict):
        return list(replies.values())
    return [entries for _key, entries in replies or ()]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _split(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def _newer(a: str, b: str) -> bool:
    return _split(a) > _split(b)


def _before(event_id: str) -> str:
    ms, seq = _split(event_id)
    if seq:
        return f"{ms}-{seq - 1}"
    return f"{ms - 1}-18446744073709551615" if ms else "0-0"
