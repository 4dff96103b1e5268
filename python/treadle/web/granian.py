"""Granian RSGI adapter: translate Granian's scope/protocol to and from the kernel's types.

Served as ``treadle.web.granian:app``; each worker process builds its own kernel.
"""

from __future__ import annotations

import asyncio
from typing import Any

from treadle.web.errors import ApiError
from treadle.web.request import BodyReader, Headers, Request
from treadle.web.response import Response


def _reader(scope: Any, proto: Any) -> BodyReader:
    async def read(limit: int) -> bytes:
        declared = scope.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise ApiError.bad_request("Content-Length is not a number") from None
            # Refuse before reading: the client may be sending gigabytes.
            if size > limit:
                raise ApiError.payload_too_large(limit)
            whole: bytes = await proto()
            return whole
        body = bytearray()
        async for chunk in proto:
            body += chunk
            if len(body) > limit:
                raise ApiError.payload_too_large(limit)
        return bytes(body)

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

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.kernel.shutdown())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
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
        )
        response: Response = await self.kernel.handle(req)
        if response.stream is None:
            proto.response_bytes(response.status, response.headers, response.body)
            return
        transport = proto.response_stream(response.status, response.headers)
        async for chunk in response.stream:
            await transport.send_bytes(chunk)


app = GranianApp()
