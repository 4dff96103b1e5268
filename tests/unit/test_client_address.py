"""Which address a request is charged to, and when forwarded-for headers are believed."""

from __future__ import annotations

import pytest

from treadle.settings import Settings, SettingsError
from treadle.web.client_address import client_address, parse_trusted

PROXIES = parse_trusted("10.0.0.0/8, 192.0.2.1, 2001:db8:ffff::/48")


def _address(peer: str, **headers: str) -> str:
    lookup = {k.replace("_", "-"): v for k, v in headers.items()}
    return client_address(peer, lookup.get, PROXIES)


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # No trusted peer: the socket's address, whatever the headers say.
        ("198.51.100.1:5000", {"x_forwarded_for": "203.0.113.5"}, "198.51.100.1"),
        ("[2001:db8::7]:443", {}, "2001:db8::7"),
        ("198.51.100.1", {}, "198.51.100.1"),
        # Through a trusted proxy: the right-most hop that is not ours.
        ("10.1.2.3:80", {"x_forwarded_for": "203.0.113.5"}, "203.0.113.5"),
        ("10.1.2.3:80", {"x_forwarded_for": "1.2.3.4, 203.0.113.5, 192.0.2.1"}, "203.0.113.5"),
        ("10.1.2.3:80", {}, "10.1.2.3"),
        ("10.1.2.3:80", {"x_forwarded_for": "10.9.9.9, 192.0.2.1"}, "10.9.9.9"),
        # Garbage from the proxy: the last hop we believe.
        ("10.1.2.3:80", {"x_forwarded_for": "203.0.113.5, nonsense"}, "10.1.2.3"),
        # RFC 7239 wins over X-Forwarded-For when both are there.
        (
            "10.1.2.3:80",
            {
                "forwarded": 'for=1.1.1.1, for="[2001:db8::1]:4711";proto=https',
                "x_forwarded_for": "9.9.9.9",
            },
            "2001:db8::1",
        ),
    ],
)
def test_client_address(peer: str, headers: dict[str, str], expected: str) -> None:
    assert _address(peer, **headers) == expected


def test_bad_trusted_proxies_are_refused_at_startup() -> None:
    with pytest.raises(SettingsError, match="not-an-ip"):
        Settings.from_env({"TREADLE_TRUSTED_PROXIES": "10.0.0.1, not-an-ip"})
    with pytest.raises(SettingsError, match="rate_limit_anonymous"):
        Settings.from_env({"TREADLE_RATE_LIMIT_ANONYMOUS": "lots"})
