"""WebSocket routes: declared in the route table like any GET, run through the same kernel.

A WebSocket route is a ``Route`` whose ``status`` is 101. The server adapter turns a
handshake into a ``WebSocketRequest`` and hands it to the kernel, so authentication, rate
limits and the permission check are the ones every request gets. If the handler answers
with ``Upgrade`` the adapter accepts the connection and runs ``Upgrade.session``;
any other answer refuses the handshake with that answer's HTTP status.

Browsers cannot set headers on a WebSocket handshake: on a WebSocket route (and only
there) ``?access_token=`` stands in for a missing ``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from treadle.web.request import BodyReader, Headers, Request
from treadle.web.response import Response

SWITCHING_PROTOCOLS = 101


class WebSocket(Protocol):
    """An accepted connection, as the adapter exposes it to a session."""

    async def send_text(self, text: str) -> None: ...

    async def receive(self) -> str | bytes | None:
        """The next message from the client; ``None`` once the client has closed."""


Session = Callable[[WebSocket], Awaitable[None]]


class Upgrade(Response):
    """The handler's yes to a handshake: accept, then run ``session`` until it returns."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        super().__init__(SWITCHING_PROTOCOLS)
        self.session = session


def is_websocket(route: Any) -> bool:
    return route is not None and route.status == SWITCHING_PROTOCOLS


class WebSocketRequest(Request):
    """A handshake: a GET the kernel handles like any other, marked by its type."""

    __slots__ = ()


def websocket_request(
    path: str,
    query_string: str,
    headers: Headers,
    reader: BodyReader,
    client: str = "",
) -> WebSocketRequest:
    holder: list[WebSocketRequest] = []

    def get(name: str) -> str | None:
        value = headers.get(name)
        if value is None and name == "authorization" and is_websocket(holder[0].route):
            tokens = parse_qs(query_string).get("access_token")
            if tokens and len(tokens) == 1:
                return f"Bearer {tokens[0]}"
        return value

    req = WebSocketRequest("GET", path, query_string, Headers(get, headers.has), reader, client)
    holder.append(req)
    return req
