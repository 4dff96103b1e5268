"""The response envelope shared by every JSON answer, success or error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from treadle import clock, encoding
from treadle.web.errors import ApiError
from treadle.web.request import Request

VERSION = "1.0"


@dataclass(slots=True)
class Page:
    """A page of a list: the kernel puts ``items`` in ``data`` and the rest in ``meta.page``."""

    items: list[Any]
    limit: int
    offset: int
    total: int


@dataclass(slots=True)
class CursorPage:
    """A page of a stream-like list: continue from ``next_cursor`` (None at the end)."""

    items: list[Any]
    limit: int
    next_cursor: str | None


def encode(req: Request, status: int, data: Any, error: ApiError | None = None) -> bytes:
    meta: dict[str, Any] = {
        "request_id": req.request_id,
        "trace_id": req.trace_id,
        "timestamp": clock.rfc3339(),
        "status": status,
        "version": VERSION,
    }
    self_link = req.path + ("?" + req.query_string if req.query_string else "")
    links: dict[str, Any] = {"self": self_link, "next": None}
    if isinstance(data, Page):
        meta["page"] = {
            "limit": data.limit,
            "offset": data.offset,
            "returned": len(data.items),
            "total": data.total,
        }
        if data.offset + len(data.items) < data.total:
            links["next"] = _with(req, "offset", str(data.offset + len(data.items)))
        data = data.items
    elif isinstance(data, CursorPage):
        meta["page"] = {
            "limit": data.limit,
            "returned": len(data.items),
            "next_cursor": data.next_cursor,
        }
        if data.next_cursor is not None:
            links["next"] = _with(req, "cursor", data.next_cursor)
        data = data.items
    principal = req.principal
    scope = req.scope
    return orjson.dumps(
        {
            "meta": meta,
            "context": {
                "principal_id": principal.id if principal is not None else None,
                "organization_id": None if scope is None else scope.organization_id,
                "team_id": None if scope is None else scope.team_id,
            },
            "data": data,
            "error": None
            if error is None
            else {"code": error.code, "message": error.message, "details": error.details},
            "links": links,
        },
        default=encoding.default,
    )


def _with(req: Request, name: str, value: str) -> str:
    """This request's URL with one query parameter set."""
    pairs = [(k, v) for k, vs in req.query.items() if k != name for v in vs]
    pairs.append((name, value))
    return f"{req.path}?{urlencode(pairs)}"
