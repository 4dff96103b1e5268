"""The OpenAPI document declares what the server does: statuses derived from each route's
properties, and the constraints its handlers enforce."""

from __future__ import annotations

import re
from typing import Any

import pytest

from treadle.api import routes
from treadle.web.openapi import IDEMPOTENCY_KEY, build
from treadle.web.routing import RouteTable


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build(RouteTable(routes()), "test")


def _statuses(doc: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(s) for s in doc["paths"][path][method]["responses"]}


def _param(doc: dict[str, Any], method: str, path: str, name: str) -> dict[str, Any]:
    params = doc["paths"][path][method]["parameters"]
    return next(p for p in params if p["name"] == name)


def test_statuses_follow_from_auth_permission_body_and_idempotency(doc: dict) -> None:
    # Job submission: key required (428), reused (422) or running (409), another tenant (404).
    assert {400, 401, 403, 404, 409, 413, 415, 422, 428, 429, 500, 503} <= _statuses(
        doc, "post", "/v1/jobs"
    )
    # A user-only route refuses API keys with 403.
    assert {401, 403, 429, 500, 503} <= _statuses(doc, "get", "/v1/me/organizations")
    # Handler-specific statuses come from Route.errors.
    assert {409, 429} <= _statuses(doc, "post", "/v1/auth/signup")
    assert {401, 429} <= _statuses(doc, "post", "/v1/auth/login")
    # A route that touches no storage never answers 503.
    assert 503 not in _statuses(doc, "get", "/healthz")
    assert 500 in _statuses(doc, "get", "/healthz")


def test_every_route_declares_500_and_error_envelopes_carry_an_error(doc: dict) -> None:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert "500" in op["responses"], (method, path)
            for status, response in op["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema["properties"]["error"] == {"$ref": "#/components/schemas/Error"}


def test_idempotency_key_is_declared_with_its_pattern_and_required_where_needed(
    doc: dict,
) -> None:
    key = _param(doc, "post", "/v1/jobs", "Idempotency-Key")
    assert key["required"] is True
    assert key["schema"]["pattern"] == IDEMPOTENCY_KEY
    assert key["schema"]["minLength"] == 1
    assert not re.match(IDEMPOTENCY_KEY, "")
    assert _param(doc, "post", "/v1/teams", "Idempotency-Key")["required"] is False


def test_query_constraints_match_what_handlers_enforce(doc: dict) -> None:
    offset = _param(doc, "get", "/v1/me/organizations", "offset")["schema"]
    assert offset == {"type": "integer", "minimum": 0, "maximum": 10_000_000}
    assert _param(doc, "get", "/v1/admin/users", "include_deleted")["schema"] == {"type": "boolean"}
    days = _param(doc, "get", "/v1/api-keys/{id}/usage", "days")["schema"]
    assert days == {"type": "integer", "minimum": 1, "maximum": 90}


def test_datetime_fields_are_date_time(doc: dict) -> None:
    expires = doc["components"]["schemas"]["ApiKeyPatch"]["properties"]["expires_at"]
    assert {"type": "string", "format": "date-time"} in expires["anyOf"]
