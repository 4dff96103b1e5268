"""Where webhooks may be sent: the SSRF guard.

Only ``http`` and ``https``, and only to public addresses: a URL whose host is, or
resolves to, a loopback, private, link-local (cloud metadata included), multicast,
reserved or otherwise non-global address is refused when the endpoint is created and
again at every delivery. At delivery the check lives in the HTTP client's resolver
(``GuardedResolver``), so the connection goes to the very addresses that were checked:
no second lookup an attacker's DNS could answer differently.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from treadle.errors import ApiError

MAX_URL_CHARS = 2048
RESOLVE_SECONDS = 5.0
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(Exception):
    """A webhook URL treadle will not send to; the message says why."""


def parse(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a URL webhooks may name (syntax only)."""
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"the URL is longer than {MAX_URL_CHARS} characters")
    if any(c <= " " or c == "\x7f" for c in url):
        raise UrlRefused("the URL holds spaces or control characters")
    if not url.isascii():
        raise UrlRefused("the URL must be ASCII: give an international name in its xn-- form")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"the URL is not valid: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("the URL must start with http:// or https://")
    if not parts.hostname:
        raise UrlRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL must not carry a user name or password")
    if parts.fragment:
        raise UrlRefused("the URL must not have a #fragment")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refusal(address: IP) -> str | None:
    """Why webhooks may not go to ``address``, or None when they may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local (cloud metadata lives there)"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not a public address"
    return None


def literal(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_address(host: str, address: str, allow_private: bool) -> None:
    if allow_private:
        return
    why = refusal(ipaddress.ip_address(address.split("%", 1)[0]))
    if why is not None:
        raise UrlRefused(f"{host} is, or resolves to, a {why} address ({address})")


async def resolve(host: str, port: int, allow_private: bool) -> list[ResolveResult]:
    """Every address of ``host``, each checked; ``UrlRefused`` if any is refused (a name
    with one public and one private address is refused: which one a client picks is
    not ours to say)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_SECONDS
        )
    except (OSError, TimeoutError) as exc:
        raise UrlRefused(f"{host} does not resolve: {exc or 'timed out'}") from None
    results: list[ResolveResult] = []
    for family, _, proto, _, sockaddr in infos:
        address = str(sockaddr[0])
        check_address(host, address, allow_private)
        results.append(
            ResolveResult(
                hostname=host,
                host=address,
                port=int(sockaddr[1]),
                family=family,
                proto=proto,
                flags=_NUMERIC,
            )
        )
    if not results:
        raise UrlRefused(f"{host} has no address")
    return results


async def ensure_allowed(url: str, allow_private: bool) -> None:
    """Refuse (400 ``url_refused``) a URL webhooks may not name or reach."""
    try:
        _, host, port = parse(url)
        address = literal(host)
        if address is not None:
            check_address(host, str(address), allow_private)
        else:
            await resolve(host, port, allow_private)
    except UrlRefused as exc:
        raise ApiError(
            "url_refused",
            f"webhooks cannot be sent to this URL: {exc}; give a public http(s) URL",
            {"field": "$.url"},
        ) from None


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for deliveries: resolves, checks every address, and hands the
    connector exactly those (it connects to nothing else)."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            return await resolve(host, port, self.allow_private)
        except UrlRefused as exc:
            # aiohttp wraps OSError into ClientConnectorError, whose text is the strerror:
            # the delivery fails saying why.
            raise OSError(errno.EACCES, str(exc)) from None

    async def close(self) -> None:
        pass
