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
