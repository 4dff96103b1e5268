"""Helpers every handler module shares: ids, list parameters, caller details."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from treadle.services.principal import Actor
from treadle.web.envelope import CursorPage
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param

Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="an email address",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]

MAX_LIMIT = 200
DEFAULT_LIMIT = 50

LIST_PARAMS = (
    Param(
        "limit",
        "items per page (1-200, default 50)",
        {"type": "integer", "minimum": 1, "maximum": 200},
    ),
    Param("offset", "items to skip (default 0)", {"type": "integer", "minimum": 0}),
    Param("sort_order", "asc or desc", {"type": "string", "enum": ["asc", "desc"]}),
    Param("q", "text to search for"),
)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def path_id(req: Request, name: str = "id") -> UUID:
    """An id from the path; one that cannot exist is simply not found."""
    try:
        return UUID(req.params[name])
    except ValueError:
        raise ApiError.not_found(f"no resource with {name} {req.params[name]!r}") from None


def client(req: Request) -> tuple[str, str]:
    return req.headers.get("user-agent") or "", req.client or ""


@dataclass(slots=True)
class ListQuery:
    limit: int
    offset: int
    sort_by: str
    desc: bool
    q: str | None


def list_query(req: Request, sortable: set[str], default_sort: str) -> ListQuery:
    return ListQuery(
        limit=_int(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int(req, "offset", 0, 0, 10_000_000),
        sort_by=_choice(req, "sort_by", sortable, default_sort),
        desc=_choice(req, "sort_order", {"asc", "desc"}, "desc") == "desc",
        q=(req.query_value("q") or None),
    )


def _int(req: Request, name: str, default: int, low: int, high: int) -> int:
    raw = req.query_value(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.validation(f"{name} must be an integer", f"query.{name}") from None
    if not low <= value <= high:
        raise ApiError.validation(f"{name} must be between {low} and {high}", f"query.{name}")
    return value


def _choice(req: Request, name: str, allowed: set[str], default: str) -> str:
    raw = req.query_value(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise ApiError.validation(
            f"{name} must be one of {', '.join(sorted(allowed))}", f"query.{name}"
        )
    return raw


def actor(req: Request) -> Actor:
    ua, ip = client(req)
    return Actor(req.principal, req.request_id, ip, ua)


def limit_of(req: Request) -> int:
    return _int(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


def page_of(req: Request) -> tuple[int, int]:
    """limit and offset for lists that have no sorting choices."""
    return limit_of(req), _int(req, "offset", 0, 0, 10_000_000)


PAGE_PARAMS = LIST_PARAMS[:2]
CURSOR_PARAMS = (LIST_PARAMS[0], Param("cursor", "next_cursor of the previous page"))


def cursor_of(req: Request) -> tuple[int, int | None]:
    """limit, and the id to continue before, for lists that page by id, newest first."""
    limit = limit_of(req)
    cursor = req.query_value("cursor")
    if not cursor:
        return limit, None
    if not cursor.isdigit():
        raise ApiError.validation(
            "cursor must be the next_cursor of a previous page", "query.cursor"
        )
    return limit, int(cursor)


def by_id_page(rows: list[dict[str, Any]], limit: int) -> CursorPage:
    return CursorPage(rows, limit, str(rows[-1]["id"]) if len(rows) == limit else None)


TIME_PARAMS = (
    Param("since", "from this time (RFC 3339)", {"type": "string", "format": "date-time"}),
    Param("until", "before this time (RFC 3339)", {"type": "string", "format": "date-time"}),
)


def time_param(req: Request, name: str) -> datetime | None:
    raw = req.query_value(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError.validation(f"{name} must be an RFC 3339 time", f"query.{name}") from None
    if value.tzinfo is None:
        raise ApiError.validation(f"{name} needs a UTC offset, e.g. Z", f"query.{name}")
    return value
