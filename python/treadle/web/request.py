"""The server-agnostic request every adapter builds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from treadle.web.errors import ApiError

# Reads at most `limit` bytes of body; raises ApiError(413) past it without reading the rest.
BodyReader = Callable[[int], Awaitable[bytes]]
# Yields the body as it arrives, at most `limit` bytes in all; raises ApiError(413) past it.
ChunkReader = Callable[[int], AsyncIterator[bytes]]


class Headers:
    """Read-only header access by lower-case name, over whatever the server hands us."""

    __slots__ = ("_get", "_has")

    def __init__(
        self,
        getter: Callable[[str], str | None],
        contains: Callable[[str], bool] | None = None,
    ) -> None:
        self._get = getter
        self._has = contains

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._get(name)
        return default if value is None else value

    def has(self, name: str) -> bool:
        """Present at all: a server may hide a value that is not visible ASCII from ``get``."""
        if self._has is not None:
            return self._has(name)
        return self._get(name) is not None


class Request:
    __slots__ = (
        "_body",
        "_chunks",
        "_query",
        "_reader",
        "app",
        "client",
        "correlation_id",
        "data",
        "headers",
        "idempotency",
        "method",
        "params",
        "path",
        "principal",
        "query_string",
        "request_id",
        "response_headers",
        "route",
        "scope",
        "trace_id",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: Headers,
        reader: BodyReader,
        client: str = "",
        chunks: ChunkReader | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.client = client
        self._reader = reader
        self._chunks = chunks
        self._body: bytes | None = None
        self._query: dict[str, list[str]] | None = None
        self.params: dict[str, str] = {}
        self.route: Any = None
        self.request_id = ""
        self.correlation_id = ""
        self.trace_id = ""
        self.principal: Any = None
        # Set by the kernel: the application services, and the decoded body.
        self.app: Any = None
        self.data: Any = None
        # Set by the permission check: the organization and resource acted on.
        self.scope: Any = None
        # Headers every answer to this request carries (the rate-limit fields).
        self.response_headers: list[tuple[str, str]] = []
        # Set by the idempotency step: (Idempotency-Key, request fingerprint), for handlers
        # that store them with what they create so that a retry after a crash finds it.
        self.idempotency: tuple[str, str] | None = None

    async def body(self, limit: int) -> bytes:
        if self._body is None:
            self._body = await self._reader(limit)
        return self._body

    def stream(self, limit: int) -> AsyncIterator[bytes]:
        """The body in chunks as it arrives (routes with ``stream_body``), at most ``limit``
        bytes (413 past it, raised while streaming). A server that hands over the whole
        body already read (Robyn) gives it as one chunk."""
        if self._chunks is not None and self._body is None:
            return self._chunks(limit)
        return self._whole(limit)

    async def _whole(self, limit: int) -> AsyncIterator[bytes]:
        body = await self.body(limit)
        if body:
            yield body

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            query = parse_qs(self.query_string, keep_blank_values=True)
            for name, values in query.items():
                # PostgreSQL refuses NUL in text: refused here, once, for every handler.
                if "\x00" in name or any("\x00" in v for v in values):
                    raise ApiError.validation(
                        "query parameters may not contain NUL (%00)", f"query.{name}"
                    )
            self._query = query
        return self._query

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise ApiError.bad_request(f"query parameter '{name}' was given more than once")
        return values[0]


def read_whole(data: bytes) -> BodyReader:
    """A reader for servers that hand over the body already read."""

    async def reader(limit: int) -> bytes:
        if len(data) > limit:
            raise ApiError.payload_too_large(limit)
        return data

    return reader


def header_map(items: Mapping[str, str]) -> Headers:
    lowered = {k.lower(): v for k, v in items.items()}
    return Headers(lowered.get)
