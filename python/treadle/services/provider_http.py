"""One HTTP exchange with a provider (aiohttp): a whole answer, or a stream opened and read
as server-sent events, each failure turned into an ``Upstream`` error.

Reading a stream is pull-based: the next event is read from the provider only when the
gateway's client has taken the previous one, so a slow client slows the provider's
connection (TCP backpressure) rather than filling memory here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from treadle import retry_after
from treadle.services.provider_resilience import Upstream, from_status

# The largest answer (or error body) read from a provider, and the largest event.
MAX_ANSWER_BYTES = 8 * 1024 * 1024
MAX_EVENT_BYTES = 1024 * 1024
# An error body is read only this far: its status is what matters.
MAX_ERROR_BYTES = 4096
Headers = list[tuple[str, str]]
_CONNECTION = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError)


def timeout_error(seconds: float) -> Upstream:
    return Upstream(
        "provider_timeout",
        f"the provider did not answer within {seconds:g} s",
        retriable=False,  # another wait as long would double the caller's
    )


def connection_error(exc: BaseException) -> Upstream:
    # The exception's class, not its text: texts may carry URLs and addresses.
    return Upstream(
        "provider_error",
        f"the connection to the provider failed ({type(exc).__name__})",
        retriable=True,
        reason="connection_failed",
    )


async def _read(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65_536):
        size += len(chunk)
        if size > limit:
            raise Upstream("provider_error", f"the provider's answer is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _refusal(resp: aiohttp.ClientResponse) -> Upstream:
    asked = retry_after.parse(resp.headers.get("retry-after"))
    try:
        await resp.content.read(MAX_ERROR_BYTES)
    except (*_CONNECTION, TimeoutError):
        pass
    return from_status(resp.status, asked)


async def post(
    session: aiohttp.ClientSession,
    url: str,
    headers: Headers,
    body: bytes,
    timeout: float,
    connect_timeout: float,
) -> bytes:
    """The body of a 200 answer to ``POST url``; ``Upstream`` otherwise."""
    limits = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
    try:
        async with session.post(url, data=body, headers=headers, timeout=limits) as resp:
            if resp.status != 200:
                raise await _refusal(resp)
            return await _read(resp, MAX_ANSWER_BYTES)
    except TimeoutError:
        raise timeout_error(timeout) from None
    except _CONNECTION as exc:
        raise connection_error(exc) from None


async def open_stream(
    session: aiohttp.ClientSession,
    url: str,
    headers: Headers,
    body: bytes,
    timeout: float,
    connect_timeout: float,
) -> aiohttp.ClientResponse:
    """A 200 answer to ``POST url`` whose body is still to read (the caller closes it);
    ``timeout`` bounds the wait for the answer and then for each read of its body."""
    limits = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=timeout)
    try:
        resp = await session.post(url, data=body, headers=headers, timeout=limits)
    except TimeoutError:
        raise timeout_error(timeout) from None
    except _CONNECTION as exc:
        raise connection_error(exc) from None
    if resp.status != 200:
        try:
            raise await _refusal(resp)
        finally:
            resp.release()
    return resp


async def events(resp: aiohttp.ClientResponse, timeout: float) -> AsyncIterator[tuple[Any, bytes]]:
    """The ``(event name or None, data)`` of each server-sent event of ``resp``, in order;
    ends at the end of the body. ``Upstream`` when reading fails or stalls."""
    event: str | None = None
    data: list[bytes] = []
    size = 0
    while True:
        try:
            line = await resp.content.readline()
        except TimeoutError:
            raise timeout_error(timeout) from None
        except ValueError:
            # aiohttp's own bound on a line
            raise Upstream("provider_error", "the provider sent an event line too long") from None
        except (*_CONNECTION, asyncio.IncompleteReadError) as exc:
            raise connection_error(exc) from None
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield event, b"\n".join(data)
            event, data, size = None, [], 0
            continue
        if line.startswith(b":"):
            continue  # a comment (keep-alive)
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            size += len(value)
            if size > MAX_EVENT_BYTES:
                raise Upstream(
                    "provider_error", f"the provider sent an event over {MAX_EVENT_BYTES} bytes"
                )
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")[:64]
