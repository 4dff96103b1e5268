"""The SSRF guard's address rules and URL syntax, and sealing of secrets at rest."""

from __future__ import annotations

import ipaddress

import pytest

from treadle.sealing import Sealer
from treadle.services.webhook_urls import UrlRefused, parse, refusal


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fd00:ec2::254", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "private"),
        ("100.64.0.1", "not a public address"),
        ("192.0.2.1", "private"),
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_only_public_addresses_are_allowed(address: str, why: str | None) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert (found is None) == (why is None), found
    if why is not None:
        assert found is not None and found.startswith(why.split(" ")[0])


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "http:///nohost",
        "http://u:p@example.com/",
        "http://example.com/#x",
        "http://exa mple.com/",
        "http://example.com:99999/",
        "javascript:alert(1)",
        "http://example.com/" + "a" * 3000,
    ],
)
def test_urls_webhooks_cannot_name(url: str) -> None:
    with pytest.raises(UrlRefused):
        parse(url)


def test_ports_default_by_scheme() -> None:
    assert parse("https://example.com/x") == ("https", "example.com", 443)
    assert parse("http://example.com:8080/x") == ("http", "example.com", 8080)


def test_a_sealed_secret_opens_only_under_its_key_and_for_its_record() -> None:
    sealer = Sealer("k" * 64, "webhook secrets")
    sealed = sealer.seal(b"whsec_abc", b"endpoint-1")
    assert b"whsec_abc" not in sealed
    assert sealer.open(sealed, b"endpoint-1") == b"whsec_abc"
    assert sealer.seal(b"whsec_abc", b"endpoint-1") != sealed  # a fresh nonce each time
    with pytest.raises(ValueError):
        sealer.open(sealed, b"endpoint-2")
    with pytest.raises(ValueError):
        Sealer("j" * 64, "webhook secrets").open(sealed, b"endpoint-1")
    with pytest.raises(ValueError):
        Sealer("k" * 64, "other purpose").open(sealed, b"endpoint-1")
    with pytest.raises(ValueError):
        sealer.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), b"endpoint-1")
