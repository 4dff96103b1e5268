"""The address a request came from, for per-client limits.

Forwarded-for headers are believed only when the peer is a configured proxy: the client is
the right-most address in the chain that is not one of ours. Anything to its left was
written by the client itself and proves nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_trusted(value: str) -> tuple[Network, ...]:
    """``"10.0.0.1, 192.168.0.0/16"`` as networks; raises ValueError naming a bad entry."""
    out = []
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or CIDR network") from None
    return tuple(out)


def client_address(
    peer: str, header: Callable[[str], str | None], trusted: tuple[Network, ...]
) -> str:
    """The client's address as text; ``peer`` is the socket's (``ip``, ``ip:port`` or
    ``[ip6]:port``), ``header`` looks a request header up by lower-case name."""
    address = _address(peer)
    if address is None:
        return peer
    if not trusted or not _trusted(address, trusted):
        return str(address)
    forwarded = header("forwarded")
    chain = _forwarded(forwarded) if forwarded else _x_forwarded_for(header("x-forwarded-for"))
    for hop in reversed(chain):
        hop_address = _address(hop)
        if hop_address is None:
            # Garbage a proxy passed on: the last hop we believe is the best we know.
            break
        address = hop_address
        if not _trusted(address, trusted):
            break
    return str(address)


def _trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address in network for network in trusted)


def _x_forwarded_for(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _forwarded(value: str) -> list[str]:
    """The ``for=`` of each element of an RFC 7239 ``Forwarded`` header, in order."""
    hops = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, raw = pair.strip().partition("=")
            if name.lower() == "for":
                hops.append(raw.strip().strip('"'))
    return hops


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
