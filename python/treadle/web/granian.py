"""Granian RSGI adapter: translate Granian's scope/protocol to and from the kernel's types.

Served as ``treadle.web.granian:app``; each worker process builds its own kernel.

Long-lived answers need two things RSGI leaves to the application: a streamed response
is stopped when ``client_disconnect`` resolves (the transport would otherwise accept
chunks for a client that is gone), and on SIGTERM the kernel hears ``stopping`` at once,
because Granian waits for every open connection before it calls ``__rsgi_del__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from treadle.web.errors import ApiError
from treadle.web.request import BodyReader, ChunkReader, Headers, Request, read_whole
from treadle.web.response import Response
from treadle.web.websocket import Upgrade, websocket_request


def _declared(scope: Any, limit: int) -> int | None:
    declared = scope.headers.get("content-length")
    if declared is None:
        return None
    try:
        size = int(declared)
    except ValueError:
        raise ApiError.bad_request("Content-Length is not a number") from None
    # Refuse before reading: the client may be sending gigabytes.
    if size > limit:
        raise ApiError.payload_too_large(limit)
    return size


def _reader(scope: Any, proto: Any) -> BodyReader:
    async def read(limit: int) -> bytes:
        if _declared(scope, limit) is not None:
            whole: bytes = await proto()
            return whole
        body = bytearray()
        async for chunk in proto:
            body += chunk
            if len(body) > limit:
                raise ApiError.payload_too_large(limit)
        return bytes(body)

    return read


def _chunks(scope: Any, proto: Any) -> ChunkReader:
    async def read(limit: int) -> AsyncIterator[bytes]:
        _declared(scope, limit)
        seen = 0
        async for chunk in proto:
            seen += len(chunk)
            if seen > limit:
                raise ApiError.payload_too_large(limit)
            yield chunk

    return read


class GranianApp:
    def __init__(self) -> None:
        self.kernel: Any = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from treadle import logs
        from treadle.app import build_kernel
        from treadle.settings import Settings

        settings = Settings.from_env()
        logs.setup(settings.log_level)
        self.kernel = build_kernel(settings)
        loop.run_until_complete(self.kernel.startup())
        _on_stop_signal(loop, self.kernel.stopping)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.kernel.shutdown())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto == "ws":
            await self._websocket(scope, proto)
            return
        if scope.proto != "http":
            proto.close(1003)
            return
        req = Request(
            scope.method,
            scope.path,
            scope.query_string,
            Headers(scope.headers.get, scope.headers.__contains__),
            _reader(scope, proto),
            scope.client,
            _chunks(scope, proto),
        )
        response: Response = await self.kernel.handle(req)
        if response.stream is None:
            proto.response_bytes(response.status, response.headers, response.body)
            return
        if response.file is not None:
            await _close(response.stream)
            proto.response_file_range(response.status, response.headers, *response.file)
            return
        transport = proto.response_stream(response.status, response.headers)
        await _stream(response.stream, transport, proto)

    async def _websocket(self, scope: Any, proto: Any) -> None:
        req = websocket_request(
            scope.path,
            scope.query_string,
            Headers(scope.headers.get, scope.headers.__contains__),
            read_whole(b""),
            scope.client,
        )
        response: Response = await self.kernel.handle(req)
        if not isinstance(response, Upgrade):
            if response.stream is not None:
                await _close(response.stream)
            # Refused before accepting: the client gets this HTTP status, no body. A
            # route that is not a WebSocket has nothing to upgrade to.
            proto.close(response.status if response.status >= 400 else 404)
            return
        try:
            socket = _Socket(await proto.accept())
        except Exception:
            return  # the handshake did not complete: the client is gone
        try:
            await response.session(socket)
        finally:
            proto.close()
            # The transport holds the connection's read half: the TCP connection closes
            # only once it is gone, and tracebacks of the session's tasks keep the socket
            # alive until the garbage collector runs.
            socket.transport = None


class _Socket:
    """An accepted RSGI WebSocket as ``treadle.web.websocket.WebSocket``."""

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    async def send_text(self, text: str) -> None:
        await self.transport.send_str(text)

    async def receive(self) -> str | bytes | None:
        try:
            message = await self.transport.receive()
        except Exception:
            return None  # the connection broke: the same as a close, to a session
        if message.kind == 0:
            return None
        data: str | bytes = message.data
        return data


async def _stream(stream: AsyncIterator[bytes], transport: Any, proto: Any) -> None:
    """Send the chunks until the stream ends or the client leaves, whichever is first."""

    async def send() -> None:
        async for chunk in stream:
            await transport.send_bytes(chunk)

    async def disconnected() -> None:
        # A task of our own: Granian's awaitable is not a complete asyncio future.
        await proto.client_disconnect()

    sending = asyncio.ensure_future(send())
    gone = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({sending, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, gone):
            task.cancel()
        await asyncio.gather(sending, gone, return_exceptions=True)
        await _close(stream)


async def _close(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def _on_stop_signal(loop: asyncio.AbstractEventLoop, stopping: Callable[[], None]) -> None:
    """Call ``stopping`` on the loop at SIGTERM/SIGINT, then Granian's own handler."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(stopping)
            if callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)


app = GranianApp()
