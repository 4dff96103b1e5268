"""Type stubs for the compiled ``treadle._core`` extension (built from crates/treadle-py)."""

from typing import final

__all__ = [
    "CoreError",
    "RouteError",
    "Router",
    "TokenError",
    "__version__",
    "constant_time_eq",
    "derive_key",
    "jwt_decode",
    "jwt_encode",
    "keyed_hash",
    "random_token",
    "request_id",
]

__version__: str

class CoreError(Exception):
    """Base class of every error raised by ``treadle._core``."""

class RouteError(CoreError):
    """A route template is invalid or conflicts with one already added."""

class TokenError(CoreError):
    """A JWT failed verification. ``reason`` is one of ``malformed``,
    ``bad_signature``, ``expired``, ``not_yet_valid``, ``unsupported_algorithm``."""

    reason: str

@final
class Router:
    """Path router for the route table.

    Templates use ``{name}`` segments (a whole segment each, e.g.
    ``/v1/users/{id}/unlock``). Static segments win over parameters.
    """

    def __init__(self) -> None: ...
    def add(self, method: str, template: str, route_id: int) -> None:
        """Register ``route_id`` for ``method`` + ``template``.
        Raises ``RouteError`` for a malformed template or a duplicate method+template."""
    def lookup(self, method: str, path: str) -> tuple[int, dict[str, str]] | list[str]:
        """Match a request.

        - matched: ``(route_id, params)``
        - the path exists but not for this method: the sorted list of allowed methods
        - no such path: ``[]``
        """
    def __len__(self) -> int: ...

def jwt_encode(claims: bytes, key: bytes) -> str:
    """HS256-sign ``claims`` (a JSON object, UTF-8 bytes) and return the compact JWT."""

def jwt_decode(token: str, key: bytes, now: int, leeway: int = 0) -> bytes:
    """Verify an HS256 JWT (constant-time MAC check) and return its claims as JSON bytes.

    ``exp`` (required) must be > now - leeway; ``nbf`` (optional) must be <= now + leeway.
    Raises ``TokenError``."""

def derive_key(context: str, secret: bytes) -> bytes:
    """BLAKE3 ``derive_key`` mode: a 32-byte subkey of ``secret`` for ``context``."""

def keyed_hash(key: bytes, data: bytes) -> str:
    """Keyed BLAKE3 of ``data`` (``key`` is 32 bytes), hex-encoded (64 chars)."""

def random_token(nbytes: int = 32) -> str:
    """``nbytes`` from the OS CSPRNG, URL-safe base64 without padding."""

def request_id() -> str:
    """A fresh request id: 32 lowercase hex chars (128 random bits)."""

def constant_time_eq(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time independent of where they differ."""

# --- authorization, API keys, rate limits ------------------------------------------------

from collections.abc import Iterable, Sequence  # noqa: E402

__all__ += [
    "GCRA_LUA",
    "Authz",
    "AuthzError",
    "Decision",
    "KeyCache",
    "Policy",
    "RateLimiter",
    "Snapshot",
    "api_key_check",
    "api_key_generate",
]

class AuthzError(CoreError):
    """A policy, snapshot or check was given something malformed: an unknown role, a
    subject that is not ``user:<id>``, ``team:<id>`` or ``api_key:<id>``, an effect
    other than ``allow``/``deny``, an empty field or a duplicate ACL entry id."""

@final
class Policy:
    """What each organization role (``owner > admin > member > viewer``) and team role
    (``admin > member > viewer``) may do.

    Roles are cumulative: a role also grants every action of the roles below it. ``"*"``
    grants every action. ``actions`` is every action the policy names, sorted.
    ``owner_shielded`` actions are ones no deny ACL entry takes from an owner.
    Raises ``AuthzError`` for an unknown role name or an empty action.
    """

    def __new__(
        cls,
        org_roles: dict[str, list[str]],
        team_roles: dict[str, list[str]],
        owner_shielded: list[str] = ...,
    ) -> Policy: ...
    @property
    def actions(self) -> list[str]:
        """Every action the policy names (not ``"*"``), sorted."""

@final
class Snapshot:
    """An immutable, indexed view of one organization at ``revision``.

    ``members`` maps user id to organization role; ``team_members`` maps
    ``(team_id, user_id)`` to team role (seats of non-members are ignored); ``acl`` holds
    ``(entry_id, resource_type, resource_id, action, subject, effect)`` tuples, where
    ``resource_id`` and ``action`` may be ``"*"``, ``subject`` is ``user:<id>``,
    ``team:<id>`` or ``api_key:<id>`` and ``effect`` is ``allow`` or ``deny``.
    Raises ``AuthzError`` for anything malformed.
    """

    def __new__(
        cls,
        org_id: str,
        revision: int,
        members: dict[str, str],
        team_members: dict[tuple[str, str], str],
        acl: Iterable[tuple[str, str, str, str, str, str]],
    ) -> Snapshot: ...
    @property
    def org_id(self) -> str:
        """The organization this snapshot describes."""
    @property
    def revision(self) -> int:
        """The revision it was built at; a larger revision is newer."""
    @property
    def member_count(self) -> int:
        """The number of organization members."""
    @property
    def acl_count(self) -> int:
        """The number of ACL entries."""

@final
class Decision:
    """The outcome of one check.

    ``reason`` is one of ``acl_deny``, ``acl_allow``, ``team_role``, ``org_role``,
    ``key_scope``, ``not_member``, ``no_grant``, ``unknown_organization``,
    ``invalid_item``. ``decided_by`` is the deciding ACL entry's id, ``org_role:<role>``,
    ``team_role:<team_id>:<role>``, ``scope:<scope>``, or ``None``.
    """

    @property
    def allowed(self) -> bool:
        """Whether the action is allowed."""
    @property
    def reason(self) -> str:
        """Why, as a stable snake_case code."""
    @property
    def decided_by(self) -> str | None:
        """The ACL entry id, role or scope that decided; ``None`` when nothing did."""
    def __eq__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Authz:
    """The authorization evaluator: a ``Policy`` plus the newest ``Snapshot`` loaded per
    organization, swapped atomically.

    Precedence: a user who is not a member gets ``not_member``; then deny ACL > allow ACL
    > role (the team role when ``team_id`` names a team the user sits in, then the
    organization role). An ``api_key`` subject has no roles: its ``scopes`` grant
    instead (the first that is ``"*"`` or the action), and ACL entries on the key still
    apply. ``scopes`` are ignored for users and teams. ACL entries apply to the
    principal and, for a user, to each team they are in; when several match, the
    smallest entry id is reported.
    """

    def __new__(cls, policy: Policy) -> Authz: ...
    def load(self, snapshot: Snapshot) -> bool:
        """Install ``snapshot`` unless its organization already has the same or a newer
        revision. Returns whether it was installed."""
    def revision(self, org_id: str) -> int | None:
        """The revision loaded for ``org_id``, or ``None``."""
    def drop(self, org_id: str) -> bool:
        """Forget ``org_id``'s snapshot; the next ``load`` installs any revision.
        Returns whether one was loaded."""
    def check(
        self,
        org_id: str,
        subject: str,
        action: str,
        resource_type: str,
        resource_id: str,
        team_id: str | None = None,
        scopes: Sequence[str] | None = None,
        excluding: str | None = None,
    ) -> Decision:
        """May ``subject`` (``user:<id>``, ``team:<id>`` or ``api_key:<id>``) perform
        ``action`` on the resource? With ``excluding``, decide as if the ACL entry with
        that id were not there. Raises ``AuthzError`` for a malformed subject."""
    def check_batch(
        self,
        org_id: str,
        items: Iterable[tuple[str, str, str, str, str | None]],
        scopes: Sequence[str] | None = None,
    ) -> list[Decision]:
        """Decide every ``(subject, action, resource_type, resource_id, team_id | None)``
        against one snapshot, answers in request order. An item that is not such a tuple,
        or whose subject is malformed, gets ``reason == "invalid_item"``. Large batches
        run with the GIL released."""
    def permissions(
        self,
        org_id: str,
        subject: str,
        resource_type: str,
        resource_id: str,
        team_id: str | None = None,
        scopes: Sequence[str] | None = None,
    ) -> list[str]:
        """Every action in the policy that ``subject`` may perform on the resource, sorted
        (the actions ``check`` would allow), in one pass. ``[]`` for an unknown
        organization. Raises ``AuthzError`` for a malformed subject."""
    def __len__(self) -> int: ...

def api_key_generate(environment: str) -> tuple[str, str]:
    """A new API key for ``environment`` (``"live"`` or ``"test"``):
    ``(raw_key, display_prefix)``, e.g. ``("trd_live_<32 base62><6 checksum>",
    "trd_live_AbCd1234")``. Show the raw key once; store its keyed hash and the prefix.
    Raises ``CoreError`` for another environment."""

def api_key_check(raw: str) -> bool:
    """Whether ``raw`` is a well-formed API key (prefix, length, alphabet, checksum),
    decided without any I/O. A well-formed key may still be unknown or revoked."""

@final
class KeyCache:
    """Verification cache keyed by an API key's keyed hash, holding any Python object (the
    key's record) for ``ttl_seconds``, or a negative entry ("no such key") for
    ``negative_ttl_seconds``. Positive entries (at most ``capacity``) and negative ones
    (at most ``negative_capacity``, by default ``capacity``) are bounded apart, so a flood
    of unknown keys cannot evict valid ones; at its bound, a side drops its expired entries
    first, then about an eighth of the rest.

    ``get`` returns ``(True, record)`` for a positive hit, ``(True, None)`` for a
    negative hit and ``(False, None)`` for a miss. To keep a fill from racing an
    invalidation, read ``generation`` before loading the record and pass it to
    ``put``/``put_missing``: the put is dropped if anything was invalidated meanwhile.
    """

    def __new__(
        cls,
        ttl_seconds: float,
        negative_ttl_seconds: float,
        capacity: int,
        negative_capacity: int | None = None,
    ) -> KeyCache: ...
    def get(self, key_hash: str) -> tuple[bool, object | None]:
        """``(hit, record)``: ``(True, record)``, ``(True, None)`` for a cached unknown key,
        ``(False, None)`` for a miss."""
    def put(self, key_hash: str, record: object, generation: int | None = None) -> bool:
        """Cache ``record`` (not ``None``; use ``put_missing``) for ``key_hash``. Returns
        whether it was stored (not when ``generation`` is stale or capacity is 0)."""
    def put_missing(self, key_hash: str, generation: int | None = None) -> bool:
        """Remember that no key has ``key_hash``. Returns whether it was stored."""
    def invalidate(self, key_hash: str) -> bool:
        """Forget ``key_hash`` and bump ``generation``. Returns whether it was cached."""
    def clear(self) -> None:
        """Forget everything and bump ``generation``."""
    @property
    def generation(self) -> int:
        """Bumped by every invalidation; pass the value read before a load to ``put``."""
    @property
    def negative_len(self) -> int:
        """How many negative entries are held (expired ones not yet purged included)."""
    def __len__(self) -> int: ...

@final
class RateLimiter:
    """In-process GCRA rate limiting: ``limit`` requests per ``period_seconds`` per key,
    bursts of up to ``limit``."""

    def __init__(self) -> None: ...
    def check(
        self,
        key: str,
        limit: int,
        period_seconds: float,
        cost: int = 1,
        now: float | None = None,
    ) -> tuple[bool, int, int, float, float]:
        """Decide a request costing ``cost`` (0 only reads) against ``key`` at ``now`` (UNIX
        seconds; default: the system clock). Returns ``(allowed, limit, remaining,
        reset_after_seconds, retry_after_seconds)``; ``retry_after_seconds`` is 0.0 when
        allowed. Raises ``CoreError`` for a limit of 0 or a period that is not positive."""
    def clear(self) -> None:
        """Forget every key."""
    def __len__(self) -> int: ...

GCRA_LUA: str
"""The same GCRA as a Redis Lua script, for ``EVALSHA``. ``KEYS[1]``: the state key;
``ARGV``: limit, period in integer microseconds, cost, and optionally now in UNIX
microseconds (omit it to use the server's ``TIME``). Returns ``[allowed (0/1), limit,
remaining, reset_after_us, retry_after_us]`` as integers, equal to what ``RateLimiter``
computes for the same inputs (divide the microseconds by 1e6)."""

# --- idempotency fingerprint, live-event fan-out -----------------------------------------

from collections.abc import Callable  # noqa: E402
from types import TracebackType  # noqa: E402

__all__ += [
    "FanoutError",
    "Hub",
    "Subscription",
    "canonical_json",
    "fingerprint",
]

def fingerprint(
    method: str, path: str, body: bytes, content_type: str | None = None, canonical: bool = True
) -> str:
    """SHA-256 fingerprint of a request (64 lowercase hex chars) for ``Idempotency-Key``
    checks: method and path exactly as given, the media type, and the body.

    The media type is ``content_type`` before any ``;``, trimmed and ASCII-lowercased;
    absent or empty means ``application/json``. A JSON body (``application/json`` or
    ``application/<x>+json``) is hashed in its canonical form (``canonical_json``), so
    key order, whitespace and escapes do not count but every value does; ``1`` and
    ``1.0`` differ. Any other body, or one ``canonical_json`` refuses, is hashed as it
    came (raw and canonical bodies never collide); with ``canonical=False`` every body is
    (a route whose bytes are the request). Bodies over 64 KiB release the GIL."""

def canonical_json(body: bytes) -> bytes | None:
    """The canonical form of a JSON body: byte for byte ``json.dumps(json.loads(body),
    sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()``. Keys sorted
    by code point (the last of duplicate keys wins); integers keep their digits (``-0``
    is ``0``); floats as ``repr(float)`` writes them (``1.0``, ``1e+16``, ``1e-05``).

    ``None`` when ``body`` is empty, not UTF-8 (a BOM included), malformed, uses
    ``NaN``/``Infinity``, has a float beyond a double, an integer over 4,300 digits, an
    unpaired surrogate escape or containers nested deeper than 128."""

class FanoutError(CoreError):
    """An event id is not a Redis stream id (``<ms>-<seq>``), a topic pattern is not a
    topic, a ``prefix.*`` or ``*``, a topic list is empty, or a hub queue size is 0."""

@final
class Subscription:
    """One subscriber of a ``Hub``: a bounded queue of ``(event_id, payload)`` pairs for
    the events of one organization that pass its filters. Made by ``Hub.subscribe``.

    Waiting without polling: install a waker with ``set_waker``. The hub calls it, with
    no arguments, each time the queue goes from empty to non-empty, so after a wake
    drain until the queue is empty before waiting again. In asyncio::

        ready = asyncio.Event()
        sub.set_waker(lambda: loop.call_soon_threadsafe(ready.set))
        while not sub.overflowed:
            ready.clear()
            if not (items := sub.drain()):
                await ready.wait()
            ...  # send items

    Overflow: when the queue is full at a publish, the subscription is marked
    ``overflowed`` and dropped from the hub: what is queued can still be drained, then
    nothing more comes. Send a final error event; the client resumes with the last id
    it got.

    ``close()`` (or leaving a ``with`` block; garbage collection also does it) removes
    the subscription from the hub, drops what is queued and releases the waker, which
    breaks any reference cycle through it."""

    def drain(self, max: int = 256) -> list[tuple[str, bytes]]:
        """Up to ``max`` queued ``(event_id, payload)`` pairs, oldest first, without
        blocking: first the events replayed at subscription, then live ones."""
    def set_waker(self, waker: Callable[[], object] | None) -> None:
        """Install the callable the hub calls when the queue goes from empty to non-empty
        (``None`` removes it). If events are already waiting it is called at once, here.
        Raises ``TypeError`` when ``waker`` is not callable."""
    def close(self) -> None:
        """Stop: the hub forgets the subscription, queued events are dropped, the waker is
        released. Closing twice does nothing."""
    @property
    def overflowed(self) -> bool:
        """Whether the queue filled up; what was queued can still be drained."""
    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
    @property
    def gap(self) -> bool:
        """Whether history after ``after_id`` was lost before the subscription was made
        (always ``False`` without ``after_id``)."""
    @property
    def org_id(self) -> str:
        """The organization subscribed to."""
    def __len__(self) -> int: ...
    def __enter__(self) -> Subscription: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

@final
class Hub:
    """The live-event hub of one server process: per organization, a replay ring of the
    newest ``ring_size`` events (0 keeps none) and the subscribers, each with filters and
    a queue of at most ``queue_size`` live events.

    Event ids are Redis stream ids, ``<ms>-<seq>``, compared as numbers (``9-0`` comes
    before ``10-0``). ``horizon`` is the id after which the hub sees every event: the
    stream position its feed starts after (``"0-0"``: the whole stream). Organizations
    never see each other's events.

    Filters: ``topics`` is ``None`` for every topic, or patterns of which one must match:
    a topic (exact), a prefix ending in ``.*`` (``"job.*"`` matches ``"job.created"`` and
    ``"job.step.done"``, not ``"job"``) or ``"*"``. ``job_id`` / ``run_id``, when given,
    must equal the event's (an event without one never matches). Raises ``FanoutError``
    for a malformed pattern, an empty ``topics`` list or a malformed id.

    Threading: every method is thread-safe and never blocks on a slow subscriber (one
    lock per organization, one per subscriber queue). Wakers run inside ``publish``, on
    the publishing thread, with the GIL held and no hub lock held, so they may call the
    hub; they must be quick and must not block: hand off with
    ``loop.call_soon_threadsafe``. An exception in a waker goes to
    ``sys.unraisablehook`` and the publish goes on.
    """

    def __new__(
        cls, ring_size: int = 10_000, queue_size: int = 1_000, horizon: str = "0-0"
    ) -> Hub: ...
    def publish(
        self,
        event_id: str,
        org_id: str,
        topic: str,
        payload: bytes,
        job_id: str | None = None,
        run_id: str | None = None,
    ) -> int:
        """Append the event to ``org_id``'s ring (dropping the oldest) and queue
        ``(event_id, payload)`` for each matching subscriber; return how many it was
        queued for. A subscriber whose queue is full is marked overflowed instead. Calls
        the wakers of subscribers whose queue was empty.

        An organization's events must come in increasing id order: an event whose id is
        not above the last one published for its organization is ignored and returns 0
        (a redelivery; counted in ``stats()["stale"]``)."""
    def subscribe(
        self,
        org_id: str,
        topics: Sequence[str] | None = None,
        job_id: str | None = None,
        run_id: str | None = None,
        after_id: str | None = None,
    ) -> Subscription:
        """Subscribe to ``org_id``'s events that pass the filters.

        With ``after_id`` (a client's ``Last-Event-ID``) the subscription resumes: the
        ring's matching events after it are queued first (bounded by the ring, not by
        ``queue_size``) and ``gap`` says whether history after it was lost. Replay and
        registration happen under one lock, so no event is missed or repeated between
        the replayed and the live ones."""
    def replay(
        self,
        org_id: str,
        after_id: str,
        topics: Sequence[str] | None = None,
        job_id: str | None = None,
        run_id: str | None = None,
    ) -> tuple[list[tuple[str, bytes]], bool]:
        """``(events, gap)``: the ring's ``(event_id, payload)`` pairs of ``org_id`` after
        ``after_id`` that pass the filters, oldest first, and ``gap``: ``True`` when
        events after ``after_id`` may be missing, because the ring trimmed them or they
        came before ``horizon`` (also when the lost events would not have matched)."""
    def stats(self) -> dict[str, int]:
        """Counts: ``orgs``, ``subscribers`` (live), ``ring_events`` (held in all rings),
        ``published`` (accepted events), ``queued`` (deliveries), ``overflowed``
        (subscriptions), ``stale`` (ignored redeliveries)."""
    def __len__(self) -> int:
        """The number of live subscriptions (not closed, not overflowed)."""

# --- telemetry ingest --------------------------------------------------------------------

__all__ += ["IngestError", "parse_telemetry"]

class IngestError(ValueError):
    """A telemetry batch refused as a whole. ``code`` is ``too_large``, ``bad_encoding``,
    ``too_many_events`` or ``not_json``; ``message`` says what to fix."""

    code: str
    message: str

def parse_telemetry(
    body: bytes,
    *,
    ndjson: bool = False,
    encoding: str = "identity",
    max_bytes: int = 8388608,
    max_events: int = 10000,
    max_attributes: int = 64,
    max_key_bytes: int = 128,
    max_value_bytes: int = 4096,
    allowed_types: Sequence[str] | None = None,
    organization_id: bytes,
    agent_id: bytes,
    batch_id: bytes,
    received_at_us: int,
    max_age_seconds: int = 604800,
    max_future_seconds: int = 300,
) -> tuple[int, list[tuple[int, str, str]], bytes]:
    """Checks a telemetry batch (a JSON array of events, or NDJSON when ``ndjson``) and
    returns ``(accepted, rejected, copy_data)``: ``rejected`` lists ``(index, code,
    message)`` in batch order, ``copy_data`` is a binary COPY stream with one row per
    accepted event for ``COPY telemetry_events (organization_id, agent_id, batch_id, seq,
    event_id, type, ts, attributes, received_at) FROM STDIN (FORMAT BINARY)``.

    ``encoding`` is the Content-Encoding (``identity``, ``gzip`` or ``zstd``); the body
    may take at most ``max_bytes`` once decoded. The ids are ``uuid.UUID.bytes``;
    ``received_at_us`` is the server's time in Unix microseconds, and an event's
    timestamp may be at most ``max_age_seconds`` before it and ``max_future_seconds``
    after. Raises ``IngestError`` when the batch as a whole is refused. The work runs with
    the GIL released (except for small uncompressed bodies)."""

# --- Standard Webhooks signatures ----------------------------------------------------------

__all__ += ["webhook_secret", "webhook_sign", "webhook_verify"]

def webhook_secret() -> str:
    """A new endpoint secret, ``whsec_`` and base64 of 32 random bytes."""

def webhook_sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header for ``body``: one ``v1,`` signature per secret (in
    the order given: a rotation's overlap signs with both), separated by spaces. Raises
    ``ValueError`` for a secret that is not ``whsec_`` and base64 of 24 to 64 bytes."""

def webhook_verify(secret_: str, msg_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """Whether one of the ``v1`` signatures in ``header`` is ``secret_``'s for the message
    (constant-time); the timestamp's age is the caller's to check."""

# --- content digests -----------------------------------------------------------------------

__all__ += ["ContentDigest"]

@final
class ContentDigest:
    """BLAKE3 of the chunks fed so far, as ``blake3:<64 hex>`` (assets hash their content
    while it streams in)."""

    def __init__(self) -> None: ...
    def update(self, chunk: bytes) -> None:
        """Feed the next chunk (chunks of 64 KiB or more are hashed with the GIL released)."""
    @property
    def size(self) -> int:
        """Bytes fed so far."""
    def finish(self) -> str:
        """``blake3:`` and 64 lowercase hex digits, of what was fed so far."""

# --- token estimates (providers gateway) ---------------------------------------------------

__all__ += ["estimate_chat_tokens", "estimate_tokens"]

def estimate_tokens(text: str) -> int:
    """The estimated number of tokens in ``text`` (a heuristic after byte-pair encoders,
    erring high; see ``treadle_core::tokens``). The GIL is released for large texts."""

def estimate_chat_tokens(contents: Sequence[str]) -> int:
    """The estimated prompt tokens of a chat request whose messages hold ``contents``: each
    one's tokens, 4 per message for its framing and 3 for the reply's priming. The GIL is
    released when the contents are large."""
