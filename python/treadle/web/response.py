"""What a handler or the kernel hands back to the server adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

HeaderList = list[tuple[str, str]]

JSON = "application/json"


class Response:
    """A complete response (``body``) or a streamed one (``stream``)."""

    __slots__ = ("body", "headers", "status", "stream")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: HeaderList | None = None,
        content_type: str = JSON,
        stream: AsyncIterator[bytes] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: HeaderList = [("content-type", content_type)]
        if headers:
            self.headers.extend(headers)
        self.stream = stream
