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
    402: "budget_exceeded",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict / idempotency_in_flight",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "idempotency_key_reused",
    428: "idempotency_key_required",
    429: "rate_limited / too_many_streams",
    500: "internal",
    502: "provider_error",
    503: "unavailable / provider_unavailable",
    504: "provider_timeout",
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


# What the kernel accepts as an Idempotency-Key (treadle.web.idempotency._KEY).
IDEMPOTENCY_KEY = r"^[\x21-\x7e]{1,255}$"


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
    types = list(dict.fromkeys(t for r in table.routes for t in (r.body, r.item, r.response) if t))
    schemas, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    resolved = dict(zip(types, schemas, strict=True))
    _mark_times(types, components)
    paths: dict[str, dict[str, Any]] = {}
    shadowed = _shadowed(table)
    for route in table.routes:
        key = (route.method, route.path)
        op = _operation(route, resolved, 405 if key in shadowed else None)
        paths.setdefault(route.path, {})[route.method.lower()] = op
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


_ERROR_ENVELOPE: dict[str, Any] = {
    **_envelope({"type": "null"}),
    "properties": {
        **_envelope({"type": "null"})["properties"],
        "error": {"$ref": "#/components/schemas/Error"},
    },
}


def _mark_times(types: list[Any], components: dict[str, Any]) -> None:
    """Give every datetime field ``format: date-time``: msgspec documents it as a bare
    string, which invites clients (and fuzzers) to send any text."""
    seen: set[type] = set()
    pending = list(msgspec.inspect.multi_type_info(types))
    while pending:
        info = pending.pop()
        if isinstance(info, msgspec.inspect.StructType):
            if info.cls in seen:
                continue
            seen.add(info.cls)
            props = components.get(info.cls.__name__, {}).get("properties", {})
            for f in info.fields:
                if f.encode_name in props and _is_time(f.type):
                    _set_format(props[f.encode_name])
                pending.append(f.type)
        elif isinstance(info, msgspec.inspect.UnionType):
            pending.extend(info.types)
        elif isinstance(info, msgspec.inspect.CollectionType | msgspec.inspect.DictType):
            pending.append(getattr(info, "item_type", None) or info.value_type)  # type: ignore[union-attr]
        elif isinstance(info, msgspec.inspect.Metadata):
            pending.append(info.type)


def _is_time(info: Any) -> bool:
    if isinstance(info, msgspec.inspect.Metadata):
        return _is_time(info.type)
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_is_time(t) for t in info.types)
    return isinstance(info, msgspec.inspect.DateTimeType)


def _set_format(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string":
        schema["format"] = "date-time"
    for option in schema.get("anyOf", ()):
        _set_format(option)


def _shadowed(table: RouteTable) -> set[tuple[str, str]]:
    """Routes whose template also matches another route's literal path (``GET /v1/jobs/{id}``
    and ``POST /v1/jobs/claim``): the router takes the literal path first, so that request
    is a 405 for this route's method, not a lookup of an id."""
    methods: dict[str, set[str]] = {}
    for route in table.routes:
        methods.setdefault(route.path, set()).add(route.method)
    literal = [p.split("/") for p in methods if "{" not in p]
    out: set[tuple[str, str]] = set()
    for route in table.routes:
        parts = route.path.split("/")
        if "{" not in route.path:
            continue
        for other in literal:
            if (
                len(other) == len(parts)
                and all(a == b or a.startswith("{") for a, b in zip(parts, other, strict=True))
                and route.method not in methods["/".join(other)]
            ):
                out.add((route.method, route.path))
    return out


def _operation(
    route: Route, resolved: dict[Any, dict[str, Any]], extra: int | None = None
) -> dict[str, Any]:
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
    shaped = {p.name: p for p in route.path_params}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        if name not in shaped
        else {
            "name": name,
            "in": "path",
            "required": True,
            "description": shaped[name].description,
            "schema": shaped[name].schema,
        }
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
                "description": "a unique value per operation; a retry with the same key "
                "replays the first answer",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": IDEMPOTENCY_KEY,
                },
            }
        )
    if parameters:
        op["parameters"] = parameters
    if route.auth != "none":
        op["security"] = [{"bearer": []}]
    if route.body is not None:
        schema = resolved[route.body] if route.item is None else _items(route, resolved[route.item])
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "application/yaml": {"schema": schema},
                "application/toml": {"schema": schema},
            },
        }
    if route.raw_body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {media: {"schema": schema} for media, schema in route.raw_body.items()},
        }
    if route.raw:
        ok = {"description": "OK", "content": {route.content_type: {}}}
    else:
        data = resolved[route.response] if route.response is not None else {"type": "null"}
        ok = {"description": "OK", "content": {"application/json": {"schema": _envelope(data)}}}
    responses: dict[str, Any] = {str(route.status): ok}
    for status in sorted({*_error_statuses(route), *([extra] if extra else [])}):
        responses[str(status)] = {
            "description": _ERROR_CODES[status],
            "content": {"application/json": {"schema": _ERROR_ENVELOPE}},
        }
    op["responses"] = responses
    return op


def _items(route: Route, item: dict[str, Any]) -> dict[str, Any]:
    """A batch body: its items are documented as ``route.item``, but the document admits
    any item, which is answered with its own error rather than refusing the batch. The
    array's bounds are the body struct's own."""
    assert route.body is not None and route.item is not None
    defs = msgspec.json.schema(route.body)["$defs"]
    body: dict[str, Any] = defs[route.body.__name__]
    items = body["properties"]["items"]
    items["items"] = {"anyOf": [item, {}]}
    items["description"] = (
        f"each item a {route.item.__name__}; an item that is not fails alone, with its own error"
    )
    return body


def _error_statuses(route: Route) -> list[int]:
    """Every error status the route can answer, derived from what it declares."""
    statuses = {500, *route.errors}
    if route.storage:
        statuses.add(503)
    if route.auth != "none":
        # Missing or bad credentials; every authenticated call spends its rate limit.
        statuses |= {401, 429}
    if route.auth in ("user", "admin"):
        # An API key on a route for signed-in users; a user who is no platform admin.
        statuses.add(403)
    if route.permission is not None:
        # Not allowed here; an organization the caller does not belong to does not exist.
        statuses |= {403, 404}
    bodied = route.body is not None or route.raw_body is not None
    if bodied or route.params or route.path_params:
        statuses.add(400)
    if bodied:
        statuses |= {413, 415}
    if "{" in route.path:
        statuses.add(404)
    if route.idempotent != "none":
        # A malformed key; the same key still running (409) or reused for another request.
        statuses |= {400, 409, 422}
    if route.idempotent == "required":
        statuses.add(428)
    return sorted(statuses)
