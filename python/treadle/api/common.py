"""Helpers every handler module shares: ids, list parameters, caller details."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec

from treadle.services.principal import Actor
from treadle.web.envelope import CursorPage
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Names, titles and other one-line text: no control characters (CR/LF would let a value
# forge mail headers or log lines; NUL cannot be stored).
SINGLE_LINE = r"^[^\x00-\x1f\x7f]*(?!\n)$"
# Any other text: every decoded body refuses NUL; the schema says so.
NO_NUL = r"^[^\x00]*(?!\n)$"

Email = Annotated[
    str,
    msgspec.Meta(
        min_length=3,
        max_length=254,
        # Spelled out, not \s: what counts as whitespace differs between regex engines, and
        # the document's pattern must mean to clients what it means here.
        pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+(?!\n)$",
        description="an email address",
    ),
]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=NO_NUL)]
# A name of something (an organization, a team, a key): one line, 1 to 200 characters.
Name = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, pattern=SINGLE_LINE, description="one line"),
]
# A password being set: the rules treadle.services.passwords enforces.
NewPassword = Annotated[str, msgspec.Meta(min_length=10, max_length=256, pattern=NO_NUL)]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=512, pattern=NO_NUL)]

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_OFFSET = 10_000_000

LIST_PARAMS = (
    Param(
        "limit",
        "items per page (1-200, default 50)",
        {"type": "integer", "minimum": 1, "maximum": 200},
    ),
    Param(
        "offset",
        "items to skip (default 0)",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
    ),
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
    # Stored with sessions and audit rows: no control characters (NUL would fail the write).
    agent = _CONTROL.sub("", req.headers.get("user-agent") or "")[:512]
    return agent, req.client or ""


@dataclass(slots=True)
class ListQuery:
    limit: int
    offset: int
    sort_by: str
    desc: bool
    q: str | None


def list_query(req: Request, sortable: set[str], default_sort: str) -> ListQuery:
    return ListQuery(
        limit=int_param(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=int_param(req, "offset", 0, 0, MAX_OFFSET),
        sort_by=_choice(req, "sort_by", sortable, default_sort),
        desc=_choice(req, "sort_order", {"asc", "desc"}, "desc") == "desc",
        q=(req.query_value("q") or None),
    )


_INTEGER = re.compile(r"^-?[0-9]{1,19}(?!\n)$")


def int_param(req: Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; 400 with its name otherwise."""
    raw = req.query_value(name)
    if raw is None or raw == "":
        return default
    # ASCII digits only: int() also takes "١٢", "1_0" and " 12 ", which the schema does not.
    if not _INTEGER.match(raw):
        raise ApiError.validation(f"{name} must be an integer", f"query.{name}")
    value = int(raw)
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


def flag(req: Request, name: str) -> bool:
    """A boolean query parameter: true or false, as the document declares; absent is false."""
    raw = req.query_value(name)
    if raw is None or raw == "false":
        return False
    if raw == "true":
        return True
    raise ApiError.validation(f"{name} must be true or false", f"query.{name}")


def actor(req: Request) -> Actor:
    ua, ip = client(req)
    return Actor(req.principal, req.request_id, ip, ua)


def limit_of(req: Request) -> int:
    return int_param(req, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)


def statuses_param(req: Request, known: tuple[str, ...]) -> list[str] | None:
    """``?status=a,b``: the statuses asked for, each one of ``known``; None when absent."""
    raw = req.query_value("status")
    if not raw:
        return None
    wanted = raw.split(",")
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ApiError.validation(
            f"unknown status {unknown[0]!r}; use one or more of {', '.join(known)}",
            "query.status",
        )
    return wanted


def uuid_param(req: Request, name: str) -> UUID | None:
    raw = req.query_value(name)
    try:
        return UUID(raw) if raw else None
    except ValueError:
        raise ApiError.validation(f"{name} must be a UUID", f"query.{name}") from None


def page_of(req: Request) -> tuple[int, int]:
    """limit and offset for lists that have no sorting choices."""
    return limit_of(req), int_param(req, "offset", 0, 0, MAX_OFFSET)


PAGE_PARAMS = LIST_PARAMS[:2]
# Empty is the first page, as absent is.
_CURSOR = re.compile(r"^([0-9]{1,18})?(?!\n)$")
CURSOR_PARAMS = (
    LIST_PARAMS[0],
    Param(
        "cursor",
        "next_cursor of the previous page",
        {"type": "string", "pattern": _CURSOR.pattern},
    ),
)


def cursor_of(req: Request) -> tuple[int, int | None]:
    """limit, and the id to continue before, for lists that page by id, newest first."""
    limit = limit_of(req)
    cursor = req.query_value("cursor")
    if not cursor:
        return limit, None
    if not _CURSOR.match(cursor):
        raise ApiError.validation(
            "cursor must be the next_cursor of a previous page", "query.cursor"
        )
    return limit, int(cursor)


def by_id_page(rows: list[dict[str, Any]], limit: int) -> CursorPage:
    return CursorPage(rows, limit, str(rows[-1]["id"]) if len(rows) == limit else None)


# Lists that page by creation time, newest first (jobs, workflow definitions): the cursor
# is the last row's creation time in microseconds since the epoch, a dot, its id in hex.
# Empty is the first page, as absent is.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_CURSOR = re.compile(r"^([0-9]{1,17}\.[0-9a-f]{32})?(?!\n)$")
TIME_CURSOR_PARAMS = (
    LIST_PARAMS[0],
    Param(
        "cursor",
        "next_cursor of the previous page",
        {"type": "string", "pattern": _TIME_CURSOR.pattern},
    ),
)


def epoch_micros(moment: datetime) -> int:
    """``moment`` as microseconds since the Unix epoch: the time part of a cursor."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_epoch_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def time_cursor_of(row: dict[str, Any]) -> str:
    return f"{epoch_micros(row['created_at'])}.{row['id'].hex}"


def time_page(rows: list[dict[str, Any]], limit: int) -> CursorPage:
    """A page of a list newest first by (created_at, id): a next cursor when it is full."""
    return CursorPage(rows, limit, time_cursor_of(rows[-1]) if len(rows) == limit else None)


def time_cursor(req: Request) -> tuple[datetime, UUID] | None:
    """Where the page continues: before this (created_at, id), or None for the first."""
    raw = req.query_value("cursor")
    if not raw:
        return None
    micros, _, ident = raw.partition(".")
    try:
        if not _TIME_CURSOR.match(raw):
            raise ValueError(raw)
        return from_epoch_micros(int(micros)), UUID(hex=ident)
    except (ValueError, OverflowError):
        raise ApiError.validation(
            "cursor must be the next_cursor of a previous page", "query.cursor"
        ) from None


TIME_PARAMS = (
    Param("since", "from this time (RFC 3339)", {"type": "string", "format": "date-time"}),
    Param("until", "before this time (RFC 3339)", {"type": "string", "format": "date-time"}),
)


def time_param(req: Request, name: str) -> datetime | None:
    raw = req.query_value(name)
    if raw is None:
        return None
    if not raw:
        # An empty value is a mistake (a template left blank), not "no bound".
        raise ApiError.validation(f"{name} must be an RFC 3339 time, not empty", f"query.{name}")
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError.validation(f"{name} must be an RFC 3339 time", f"query.{name}") from None
    if value.tzinfo is None:
        raise ApiError.validation(f"{name} needs a UTC offset, e.g. Z", f"query.{name}")
    return value
