"""``treadle._core`` against small pure-Python references doing the same job.

Each benchmark first checks that both sides give the right answer, then times one side.
Groups: ``router`` (one pass over the ``REQUESTS`` mix), ``jwt_decode``, ``request_id``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

import pytest

from treadle._core import Router, TokenError, jwt_decode, request_id
from treadle.web.routing import Route

# --- pure-Python references -------------------------------------------------------------

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RegexRouter:
    """One compiled regex per template, tried in the trie's order: at each segment a
    static piece before a parameter. The method is checked only on the matched path."""

    def __init__(self, table: list[Route]) -> None:
        by_template: dict[str, dict[str, int]] = {}
        for index, route in enumerate(table):
            by_template.setdefault(route.path, {})[route.method] = index
        ordered = sorted(
            by_template, key=lambda t: [_PARAM.fullmatch(s) is not None for s in t.split("/")]
        )
        self.templates = [(self._compile(t), by_template[t]) for t in ordered]

    @staticmethod
    def _compile(template: str) -> re.Pattern[str]:
        pieces = [
            f"(?P<{m.group(1)}>[^/]+)" if (m := _PARAM.fullmatch(s)) else re.escape(s)
            for s in template.split("/")
        ]
        return re.compile("/".join(pieces))

    def lookup(self, method: str, path: str) -> tuple[int, dict[str, str]] | list[str]:
        for pattern, methods in self.templates:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method in methods:
                return methods[method], match.groupdict()
            return sorted(methods)
        return []


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()


def py_jwt_decode(token: str, key: bytes, now: int, leeway: int = 0) -> bytes:
    """HS256 verify with hmac, base64 and json: the checks ``_core.jwt_decode`` makes."""
    signed, _, signature = token.rpartition(".")
    header, _, payload = signed.partition(".")
    if not signed or not payload or "." in payload:
        raise ValueError("malformed")
    if header != _HEADER and json.loads(_b64decode(header)).get("alg") != "HS256":
        raise ValueError("unsupported_algorithm")
    try:
        tag = _b64decode(signature)
    except binascii.Error:
        raise ValueError("bad_signature") from None
    expected = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(tag, expected):
        raise ValueError("bad_signature")
    claims_bytes = _b64decode(payload)
    claims = json.loads(claims_bytes)
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int | float):
        raise ValueError("malformed")
    if claims["exp"] <= now - leeway:
        raise ValueError("expired")
    if "nbf" in claims and claims["nbf"] > now + leeway:
        raise ValueError("not_yet_valid")
    return claims_bytes


def py_request_id() -> str:
    return secrets.token_hex(16)


# --- router -----------------------------------------------------------------------------


def _route_all(router: Any, requests: list[tuple[str, str]]) -> list[Any]:
    return [router.lookup(method, path) for method, path in requests]


def _check_routes(found: list[Any], table: list[Route]) -> None:
    by_request = dict(
        zip(
            (
                "healthz",
                "me",
                "login",
                "refresh",
                "users",
                "user",
                "logout-all",
                "asset",
                "put-me",
                "unknown",
            ),
            found,
            strict=True,
        )
    )
    assert table[by_request["me"][0]].path == "/v1/me"
    assert table[by_request["user"][0]].path == "/v1/admin/users/{id}"
    assert by_request["user"][1] == {"id": "4f6c1d2e-9a41-4c3b-8d7e-2a9b0c1d2e3f"}
    assert table[by_request["logout-all"][0]].path == "/v1/admin/users/{id}/logout-all"
    assert by_request["asset"][1] == {"asset": "swagger-ui.css"}
    assert by_request["put-me"] == ["GET"]
    assert by_request["unknown"] == []


@pytest.mark.benchmark(group="router")
def test_router_rust(
    benchmark: Any, rust_router: Router, route_table: list[Route], requests: list[tuple[str, str]]
) -> None:
    found = _route_all(rust_router, requests)
    _check_routes(found, route_table)
    assert found == _route_all(RegexRouter(route_table), requests)
    benchmark(_route_all, rust_router, requests)


@pytest.mark.benchmark(group="router")
def test_router_python_regex(
    benchmark: Any, route_table: list[Route], requests: list[tuple[str, str]]
) -> None:
    router = RegexRouter(route_table)
    _check_routes(_route_all(router, requests), route_table)
    benchmark(_route_all, router, requests)


# --- jwt_decode -------------------------------------------------------------------------


@pytest.mark.benchmark(group="jwt_decode")
def test_jwt_decode_rust(benchmark: Any, token: str, jwt_key: bytes, now: int) -> None:
    claims = jwt_decode(token, jwt_key, now, 5)
    assert claims == py_jwt_decode(token, jwt_key, now, 5)
    with pytest.raises(TokenError) as bad:
        jwt_decode(token, jwt_key[::-1], now, 5)
    assert bad.value.reason == "bad_signature"
    benchmark(jwt_decode, token, jwt_key, now, 5)


@pytest.mark.benchmark(group="jwt_decode")
def test_jwt_decode_python(benchmark: Any, token: str, jwt_key: bytes, now: int) -> None:
    assert py_jwt_decode(token, jwt_key, now, 5) == jwt_decode(token, jwt_key, now, 5)
    with pytest.raises(ValueError, match="bad_signature"):
        py_jwt_decode(token, jwt_key[::-1], now, 5)
    with pytest.raises(ValueError, match="expired"):
        py_jwt_decode(token, jwt_key, now + 3600, 5)
    benchmark(py_jwt_decode, token, jwt_key, now, 5)


# --- request_id -------------------------------------------------------------------------

_HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.mark.benchmark(group="request_id")
def test_request_id_rust(benchmark: Any) -> None:
    ids = {request_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(_HEX32.fullmatch(i) for i in ids)
    benchmark(request_id)


@pytest.mark.benchmark(group="request_id")
def test_request_id_python(benchmark: Any) -> None:
    ids = {py_request_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(_HEX32.fullmatch(i) for i in ids)
    benchmark(py_request_id)
