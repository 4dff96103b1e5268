"""What a handler or the kernel hands back to the server adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator

HeaderList = list[tuple[str, str]]

JSON = "application/json"


class Response:
    """A complete response (``body``) or a streamed one (``stream``).

    ``file`` may name the bytes of ``stream`` as a range ``(path, start, end)`` of a file
    (end exclusive): a server that can send a file itself does, reading it only as fast as
    the client takes it (Granian's streams queue whatever is sent, unbounded).
    """

    __slots__ = ("body", "file", "headers", "status", "stream")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: HeaderList | None = None,
        content_type: str = JSON,
        stream: AsyncIterator[bytes] | None = None,
        file: tuple[str, int, int] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: HeaderList = [("content-type", content_type)]
        if headers:
            self.headers.extend(headers)
        self.stream = stream
        self.file = file
