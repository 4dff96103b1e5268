"""The OpenAPI 3.1 document, generated from the route table and the body/response types."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from treadle.web.routing import Route, RouteTable

_PARAM = re.compile(r"\{(\w+)\}")

_ERROR_CODES = {
    400: "bad_request / validation_failed",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}

_ENVELOPE_PARTS: dict[str, Any] = {
    "Meta": {
        "type": "object",
        "required": ["request_id", "trace_id", "timestamp", "status", "version"],
        "properties": {
            "request_id": {"type": "string"},
            "trace_id": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "status": {"type": "integer"},
            "version": {"type": "string"},
            "page": {
                "type": "object",
                "properties": {
                    k: {"type": "integer"} for k in ("limit", "offset", "returned", "total")
                },
            },
        },
    },
    "Context": {
        "type": "object",
        "properties": {
            "principal_id": {"type": ["string", "null"]},
            "organization_id": {"type": ["string", "null"]},
            "team_id": {"type": ["string", "null"]},
        },
    },
    "Error": {
        "type": "object",
        "required": ["code", "message", "details"],
        "properties": {
            "code": {"type": "string", "description": "stable snake_case code"},
            "message": {"type": "string", "description": "what to fix"},
            "details": {"type": "object"},
        },
    },
    "Links": {
        "type": "object",
        "properties": {"self": {"type": "string"}, "next": {"type": ["string", "null"]}},
    },
}


def _envelope(data: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["meta", "context", "data", "error", "links"],
        "properties": {
            "meta": {"$ref": "#/components/schemas/Meta"},
            "context": {"$ref": "#/components/schemas/Context"},
            "data": data,
            "error": {"anyOf": [{"$ref": "#/components/schemas/Error"}, {"type": "null"}]},
            "links": {"$ref": "#/components/schemas/Links"},
        },
    }


def build(table: RouteTable, version: str) -> dict[str, Any]:
    types = list(dict.fromkeys(t for r in table.routes for t in (r.body, r.response) if t))
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    resolved = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in table.routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, resolved)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "treadle",
            "version": version,
            "description": "Multi-tenant control plane for agent and workflow platforms.",
        },
        "paths": paths,
        "components": {
            "schemas": {**_ENVELOPE_PARTS, **components},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(route: Route, resolved: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}".replace(
            "{", ""
        )
        .replace("}", "")
        .replace("-", "_")
        or "root",
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(route.path)
    ]
    parameters += [
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "description": p.description,
            "schema": p.schema,
        }
        for p in route.params
    ]
    if route.idempotent != "none":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": route.idempotent == "required",
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    if parameters:
        op["parameters"] = parameters
    if route.auth != "none":
        op["security"] = [{"bearer": []}]
    if route.body is not None:
        schema = resolved[route.body]
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/yaml": {"schema": schema},
                "application/toml": {"schema": schema},
            },
        }
    if route.raw:
        ok = {"description": "OK", "content": {route.content_type: {}}}
    else:
        data = resolved[route.response] if route.response is not None else {"type": "null"}
        ok = {"description": "OK", "content": {"application/json": {"schema": _envelope(data)}}}
    responses: dict[str, Any] = {str(route.status): ok}
    for status in _error_statuses(route):
        responses[str(status)] = {
            "description": _ERROR_CODES[status],
            "content": {"application/json": {"schema": _envelope({"type": "null"})}},
        }
    op["responses"] = responses
    return op


def _error_statuses(route: Route) -> list[int]:
    statuses = [500]
    if route.auth != "none":
        statuses += [401, 503]
    if route.auth == "admin":
        statuses.append(403)
    if route.body is not None or route.params:
        statuses.append(400)
    if route.body is not None:
        statuses += [413, 415]
    if "{" in route.path:
        statuses.append(404)
    return sorted(set(statuses))
