"""The one error type carries no HTTP: codes are the contract, and the HTTP transport
maps each code it can meet to a status and the headers that go with it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from treadle.errors import ApiError
from treadle.services import jobs, telemetry
from treadle.web.errors import HTTP_STATUS, headers, status

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "treadle"
# A code written where an error is made: ApiError("code", ...), a factory's cls("code",
# ...), and an upstream failure, Upstream("code", ...), which becomes an ApiError.
RAISED = re.compile(r'\b(?:ApiError|cls|Upstream)\(\s*"([a-z_]+)"')


def raised_codes() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        found.update(RAISED.findall(path.read_text()))
    # Codes held in names rather than written at the call.
    found.add(jobs.LEASE_LOST)
    found.update(telemetry._CODE.values())
    return found


def test_every_code_raised_has_an_http_status() -> None:
    codes = raised_codes()
    assert len(codes) > 20  # the scan finds them
    assert sorted(codes - HTTP_STATUS.keys()) == []


def test_an_unknown_code_is_a_500_rather_than_a_crash() -> None:
    assert status(ApiError("no_such_code_anywhere", "?")) == 500


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ApiError.unauthenticated(), [("www-authenticate", "Bearer")]),
        (ApiError.method_not_allowed("PUT", ["GET", "POST"]), [("allow", "GET, POST")]),
        (ApiError.rate_limited("slow down", 7), [("retry-after", "7")]),
        (ApiError.unavailable("later"), [("retry-after", "1")]),
        (ApiError("range_not_satisfiable", "no", {"size": 10}), [("content-range", "bytes */10")]),
        (ApiError.payload_too_large(10), [("connection", "close")]),
        (ApiError.not_found(), []),
    ],
)
def test_the_headers_of_each_code(error: ApiError, expected: list[tuple[str, str]]) -> None:
    assert headers(error) == expected


def test_metadata_and_a_path_survive_at() -> None:
    error = ApiError.rate_limited("slow down", 3)
    error.metadata.append(("ratelimit", '"user";r=0;t=3'))
    moved = error.at("$.items[2]")
    assert (moved.code, moved.details["path"], moved.retry_after) == (
        "rate_limited",
        "$.items[2]",
        3,
    )
    assert headers(moved) == [("ratelimit", '"user";r=0;t=3'), ("retry-after", "3")]


def test_services_import_nothing_from_the_transports() -> None:
    """Business rules know no HTTP (DESIGN.md): no module of treadle.services imports
    treadle.web, at the top or inside a function."""
    offenders = []
    for path in sorted((PACKAGE / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(n == "treadle.web" or n.startswith("treadle.web.") for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []
