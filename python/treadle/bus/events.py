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
from collections.abc import AsyncGenerator, Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import psycopg
from redis.exceptions import ResponseError

from treadle._core import Hub, Subscription
from treadle.background import Background
from treadle.bus.leases import Lease, Leases
from treadle.bus.pacer import Pacer
from treadle.bus.redis import UNAVAILABLE, Client, connect, run_script, tagged
from treadle.errors import ApiError
from treadle.settings import Settings
from treadle.store import events as outbox
from treadle.store.db import Database

log = logging.getLogger("treadle.events")

# Taken with pg_try_advisory_xact_lock in the relay transaction: one relayer at a time.
RELAY_LOCK = 0x7472_6564_0002
RELAY_BATCH = 1000
POLL_SECONDS = 1.0
READ_COUNT = 1000
BLOCK_MS = 5000
MAX_BACKOFF = 5.0
# After stopping() asks streams to end, writers still blocked on a client that does not
# read are cancelled after this long.
STOP_GRACE = 1.0
# How long startup waits for the first load of the stream, so that a process that says
# it is ready can also serve event streams.
LOAD_WAIT = 2.0
# The origin of a stream relayed before origins existed: it holds all it ever held.
LEGACY_ORIGIN = "0-0"
# How often each open stream's credentials and rights are checked again, and how long
# one check may take before it is given up until the next round.
RIGHTS_SECONDS = 0.5
RIGHTS_TIMEOUT = 2.0


def stream_keys(prefix: str) -> tuple[str, str, str]:
    """The stream, its relay markers (a hash), and its origin: the relay's script
    touches all three, so they share one hash tag (one Redis Cluster slot). Before the tag,
    the stream was ``{prefix}events``: a process upgraded in place starts a fresh stream,
    which feeds and resuming clients take as a gap (PostgreSQL keeps every event; the old
    stream stays until deleted: ``DEL {prefix}events {prefix}events:origin``)."""
    base = tagged(prefix, "events")
    return base, f"{base}:relayed", f"{base}:origin"


# One XADD per outbox row, ever, for a whole batch in one call: the marker hash (KEYS[2])
# maps each outbox id relayed to its stream id. A relayer that dies between this call and
# its commit leaves the markers behind, and the next attempt gets the same stream ids back;
# once the commit records them in PostgreSQL, the markers are deleted.
# The stream's origin (KEYS[3]) is the id up to which it knows nothing: whenever the
# stream is created, the newest id PostgreSQL records as relayed (ARGV[2]; '0-0' on a
# first start), so a stream Redis lost and started afresh never passes for the old one;
# each entry carries it, so feeds notice the change. A stream from before origins
# existed keeps all its history ('0-0'). ARGV[3..] holds six values per row: outbox id,
# organization, topic, job, run, payload.
_XADD_BATCH = """
local origin = redis.call('GET', KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 0 then
  origin = ARGV[2]
  redis.call('SET', KEYS[3], origin)
elseif not origin then
  origin = '0-0'
  redis.call('SET', KEYS[3], origin)
end
local ids = {}
for i = 3, #ARGV, 6 do
  local id = redis.call('HGET', KEYS[2], ARGV[i])
  if not id then
    id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
      'org', ARGV[i + 1], 'topic', ARGV[i + 2], 'job', ARGV[i + 3], 'run', ARGV[i + 4],
      'payload', ARGV[i + 5], 'origin', origin)
    redis.call('HSET', KEYS[2], ARGV[i], id)
  end
  ids[#ids + 1] = id
end
return ids
"""
# How many leftover markers (of relayers that died after committing) one sweep reads.
SWEEP_COUNT = 1000


class Relay(Background):
    """Moves pending outbox rows to the stream when PostgreSQL notifies, or every second:
    a batch at a time, each one transaction, one script call and one statement."""

    def __init__(self, settings: Settings, db: Database, redis: Client) -> None:
        self.url = settings.database_url
        self.db = db
        self.redis = redis
        self.stream, self.marker, self.origin = stream_keys(settings.redis_prefix)
        self.maxlen = settings.event_stream_max
        self.script = redis.register_script(_XADD_BATCH)
        # Markers may be left behind by a relayer that died after its commit.
        self._sweep = True
        # Called after a relay's commit made webhook deliveries: wakes this process's sender.
        self.deliveries_made: Callable[[], None] = _nothing

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
                self._sweep = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _serve(self, listener: psycopg.AsyncConnection[Any]) -> None:
        backoff = 0.5
        while True:
            try:
                if self._sweep:
                    await self.sweep_markers()
                while await self.relay_pending() == RELAY_BATCH:
                    pass
                backoff = 0.5
            except UNAVAILABLE:
                # Redis away: the transaction rolled back, the rows wait for the next pass.
                self._sweep = True
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
            origin = await outbox.last_relayed(conn) or LEGACY_ORIGIN
            args: list[Any] = [self.maxlen, origin]
            for row in rows:
                args += (
                    row["id"],
                    str(row["organization_id"]),
                    row["topic"],
                    str(row["job_id"] or ""),
                    str(row["run_id"] or ""),
                    bytes(row["payload"]),
                )
            # Safe to send twice (run_script may): the markers make each row one XADD.
            (stream_ids,) = await run_script(
                self.redis, self.script, [([self.stream, self.marker, self.origin], args)]
            )
            made = await outbox.mark_relayed(
                conn,
                [(row["id"], _text(sid)) for row, sid in zip(rows, stream_ids, strict=True)],
            )
        if made:
            self.deliveries_made()
        try:
            await self.redis.hdel(self.marker, *(row["id"] for row in rows))
        except UNAVAILABLE:
            self._sweep = True  # committed: the markers are only litter now
        return len(rows)

    async def sweep_markers(self) -> int:
        """Delete the markers of rows PostgreSQL records as relayed; how many."""
        swept = 0
        cursor = 0
        while True:
            cursor, found = await self.redis.hscan(self.marker, cursor, count=SWEEP_COUNT)
            ids = [int(k) for k in found]
            if ids:
                async with self.db.connection() as conn:
                    done = await outbox.relayed_among(conn, ids)
                if done:
                    swept += await self.redis.hdel(self.marker, *done)
            if cursor == 0:
                break
        self._sweep = False
        return swept


class Feed(Background):
    """Reads the stream into this process's hub: the whole stream at start (so clients
    can resume across a restart), then whatever is added."""

    def __init__(self, settings: Settings, events: Events) -> None:
        self.events = events
        self.stream, _, self.origin_key = stream_keys(settings.redis_prefix)
        # The origin of the stream the hub was loaded from (None: no stream then).
        self.origin: str | None = None
        # Its own client: a blocking read outlasts the shared client's 2 s socket timeout.
        # On a cluster it is a cluster client too: XREAD goes to the node of the stream's slot.
        self.client = connect(settings.redis_url, socket_timeout=BLOCK_MS / 1000 + 5)

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
                if not replies and await self._recreated():
                    last = None  # the stream was lost and started afresh meanwhile
                    continue
                for entries in _entries(replies):
                    for entry_id, fields in entries:
                        if self._foreign(fields):
                            # An entry of a new stream: what the old one held after our
                            # last entry is lost; reload, so resuming clients get a gap.
                            last = None
                            break
                        last = self._publish(self.events.hub, entry_id, fields)
                    if last is None:
                        break
                backoff = 0.5
            except Exception as exc:
                if not isinstance(exc, UNAVAILABLE):
                    log.exception("event feed failed")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                with contextlib.suppress(*UNAVAILABLE):
                    horizon = await self._horizon()
                    if last is not None and (
                        (horizon is not None and _newer(horizon, last)) or await self._recreated()
                    ):
                        # Entries this process never saw were trimmed while it was away,
                        # or Redis came back without the stream.
                        last = None

    def _foreign(self, fields: dict[bytes, bytes]) -> bool:
        origin = fields.get(b"origin")
        if origin is None:
            return False  # relayed before origins existed
        if self.origin is None:
            self.origin = origin.decode()  # the stream was created after we loaded
            return False
        return origin.decode() != self.origin

    async def _recreated(self) -> bool:
        """Whether the stream's origin is no longer the one the hub was loaded from."""
        if self.origin is None:
            return False
        origin = await self.client.get(self.origin_key)
        if origin is None:
            # No origin yet is fine for a stream from before origins; not for no stream.
            return not await self.client.exists(self.stream)
        return _text(origin) != self.origin

    async def _load(self) -> str:
        origin = await self.client.get(self.origin_key)
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
        held = await self._horizon()
        if held is None:
            # Nothing is held: whatever was relayed is lost (a first start has relayed
            # nothing; a Redis that lost its data had).
            self.origin = None
            async with self.events.db.connection() as conn:
                horizon = await outbox.last_relayed(conn) or LEGACY_ORIGIN
        else:
            self.origin = LEGACY_ORIGIN if origin is None else _text(origin)
            horizon = max(held, self.origin, key=_split)
        settings = self.events.settings
        hub = Hub(settings.event_ring_size, settings.event_queue_size, horizon)
        last = "0-0"
        for entry_id, fields in entries:
            last = self._publish(hub, entry_id, fields)
        self.events.swap(hub)
        log.info("event feed loaded", extra={"events": len(entries), "horizon": horizon})
        return last

    async def _horizon(self) -> str | None:
        """The id after which the stream still holds every entry; None: no stream."""
        try:
            info = await self.client.xinfo_stream(self.stream)
        except ResponseError:
            return None
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


# What listen() hands its encoder: events, a gap, the end, or None for a keep-alive.
Item = list[tuple[str, bytes]] | Gap | End | None
T = TypeVar("T")


class Guard(Protocol):
    """Whether a stream's caller may still receive it; streams whose guards share a
    ``key`` (the same credential, organization and action) are checked once for all."""

    @property
    def key(self) -> Hashable: ...

    async def check(self) -> str | None:
        """Why the stream must end now, or None while its caller keeps the right."""


UNAUTHORIZED = "unauthorized"


@dataclass(eq=False)
class _Stream:
    wake: asyncio.Event
    task: asyncio.Task[Any] | None
    guard: Guard | None = None
    end: End | None = field(default=None)
    # Set by the keep-alive ticker; ``quiet`` says nothing was sent since the last tick.
    tick: bool = False
    quiet: bool = True


class Events:
    """This process's live events: the hub, the feed filling it, the relay, the streams."""

    def __init__(self, settings: Settings, db: Database, redis: Client) -> None:
        self.settings = settings
        self.db = db
        self.hub: Hub | None = None
        self.feed = Feed(settings, self)
        self.relay = Relay(settings, db, redis) if settings.event_relay else None
        self.leases = Leases(
            redis,
            settings.redis_prefix,
            settings.event_streams_per_principal,
            settings.event_streams_per_organization,
            settings.event_streams_per_process or settings.connections_per_worker // 2,
        )
        self._streams: set[_Stream] = set()
        self._pacer = Pacer(settings.event_wake_ms / 1000)
        self._stopping = False
        self._loaded = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._rights: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.feed.start()
        if self.relay is not None:
            self.relay.start()
        self.leases.start()
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        self._rights = asyncio.get_running_loop().create_task(self._recheck())
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
        for task in (self._ticker, self._rights):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.leases.stop()
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
        run_id: str | None = None,
    ) -> Subscription:
        hub = self.hub
        if hub is None or self._stopping:
            raise ApiError.unavailable("live events are not available yet; retry shortly", 2)
        return hub.subscribe(org_id, topics, job_id, run_id, after)

    async def admit(self, principal: str, org_id: str) -> Lease:
        """A place for one more stream of this principal in this organization."""
        lease = await self.leases.acquire(principal, org_id)
        if isinstance(lease, Lease):
            return lease
        cap = {
            "principal": f"this caller already holds {self.settings.event_streams_per_principal}",
            "organization": "this organization already holds"
            f" {self.settings.event_streams_per_organization}",
            "process": f"this server process already serves {self.leases.per_process}",
        }[lease]
        raise ApiError(
            "too_many_streams",
            f"{cap} open event streams: close one, or combine topics in one stream",
            {"retry_after_seconds": STREAM_RETRY_SECONDS, "limit": lease},
            retry_after=STREAM_RETRY_SECONDS,
        )

    def release(self, lease: Lease | None) -> None:
        if lease is not None:
            self.leases.release_soon(lease)

    async def listen(
        self,
        sub: Subscription,
        after: str | None,
        encode: Callable[[Item], T],
        guard: Guard | None = None,
        lease: Lease | None = None,
    ) -> AsyncGenerator[T, None]:
        """The subscription's items, each as ``encode`` makes it: events in batches (SSE
        frames); ``None`` when a keep-alive is due; a final ``End`` when the subscriber
        fell behind, lost the right to the stream (``guard``) or the server stops.
        ``lease`` is given back at the end. Encoding here, rather than in a generator
        around this one, saves a generator resumption per wake of every stream."""
        stream = _Stream(asyncio.Event(), asyncio.current_task(), guard)
        if lease is not None:
            lease.started = True
        self._streams.add(stream)
        # The hub calls wakers on the publishing thread, which is this loop's (the feed
        # publishes from it): the pacer needs no thread hand-off.
        sub.set_waker(partial(self._pacer.ready, stream.wake.set))
        last = after
        try:
            if sub.gap:
                yield encode(Gap(after or "0-0"))
            while True:
                if stream.end is not None:
                    unauthorized = stream.end.code == UNAUTHORIZED
                    yield encode(stream.end if unauthorized else _resume(stream.end, last))
                    return
                stream.wake.clear()
                items = sub.drain()
                if items:
                    last = items[-1][0]
                    stream.quiet = False
                    yield encode(items)
                    continue
                if sub.overflowed:
                    yield encode(_resume(End("slow_consumer", _SLOW), last))
                    return
                if stream.tick:
                    stream.tick = False
                    if stream.quiet:
                        yield encode(None)
                    stream.quiet = True
                    continue
                await stream.wake.wait()
        finally:
            self._streams.discard(stream)
            sub.close()
            self.release(lease)

    async def _tick(self) -> None:
        """Wake every stream once a keep-alive period: one timer for all of them, where a
        timeout per wait would cost a timer (and a task) per event per subscriber."""
        while True:
            await asyncio.sleep(self.settings.event_keepalive_seconds)
            for stream in self._streams:
                stream.tick = True
                stream.wake.set()

    async def _recheck(self) -> None:
        """Check every stream's right to its events each ``RIGHTS_SECONDS``: once per
        credential, organization and action, however many streams share them."""
        while True:
            await asyncio.sleep(RIGHTS_SECONDS)
            groups: dict[Hashable, list[_Stream]] = {}
            guards: dict[Hashable, Guard] = {}
            for stream in self._streams:
                if stream.guard is not None and stream.end is None:
                    groups.setdefault(stream.guard.key, []).append(stream)
                    guards.setdefault(stream.guard.key, stream.guard)
            if not guards:
                continue
            answers = await asyncio.gather(*(_ask(guard) for guard in guards.values()))
            for key, why in zip(guards, answers, strict=True):
                if why is None:
                    continue
                for stream in groups[key]:
                    if stream.end is None:
                        stream.end = End(UNAUTHORIZED, why)
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
# What a caller refused for too many streams is told to wait before trying again.
STREAM_RETRY_SECONDS = 5


async def _ask(guard: Guard) -> str | None:
    try:
        return await asyncio.wait_for(guard.check(), RIGHTS_TIMEOUT)
    except Exception:
        # PostgreSQL or Redis away, or slow: the caller keeps the stream until the next
        # round can tell; only a definite answer ends it.
        log.debug("stream rights not checked this round", exc_info=True)
        return None


def _resume(end: End, last: str | None) -> End:
    where = f"Last-Event-ID: {last}" if last else "Last-Event-ID (the id of the last event)"
    return End(end.code, f"{end.message}; reconnect and resume with {where}")


def _entries(replies: Any) -> list[Any]:
    # RESP2 answers [[key, entries]], RESP3 {key: entries}.
    if isinstance(replies, dict):
        return list(replies.values())
    return [entries for _key, entries in replies or ()]


def _nothing() -> None:
    pass


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
