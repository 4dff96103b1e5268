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
    Raises ``AuthzError`` for an unknown role name or an empty action.
    """

    def __new__(
        cls, org_roles: dict[str, list[str]], team_roles: dict[str, list[str]]
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
    ) -> Decision:
        """May ``subject`` (``user:<id>``, ``team:<id>`` or ``api_key:<id>``) perform
        ``action`` on the resource? Raises ``AuthzError`` for a malformed subject."""
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
    ``negative_ttl_seconds``. At ``capacity``, expired entries go first, then about an
    eighth of the rest.

    ``get`` returns ``(True, record)`` for a positive hit, ``(True, None)`` for a
    negative hit and ``(False, None)`` for a miss. To keep a fill from racing an
    invalidation, read ``generation`` before loading the record and pass it to
    ``put``/``put_missing``: the put is dropped if anything was invalidated meanwhile.
    """

    def __new__(
        cls, ttl_seconds: float, negative_ttl_seconds: float, capacity: int
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
