"""The route table: declared once, it feeds the Rust router and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from treadle._core import Router

if TYPE_CHECKING:
    from treadle.web.request import Request

Handler = Callable[["Request"], Awaitable[Any]]
# Finds the organization (and resource) a request acts on, for the permission check.
ScopeResolver = Callable[["Request"], Awaitable[Any]]

# none: public; user: a signed-in account; any: an account or an API key;
# admin: a platform admin.
Auth = Literal["none", "user", "any", "admin"]
# Whether the route takes an Idempotency-Key. "auto": optional on an authenticated
# POST, PUT, PATCH or DELETE; routes that answer with a secret opt out with "none".
Idempotency = Literal["auto", "none", "optional", "required"]
MUTATING = frozenset(("POST", "PUT", "PATCH", "DELETE"))


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter, documented in OpenAPI and read by the handler."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "user"
    body: type | None = None
    response: Any = None
    status: int = 200
    params: tuple[Param, ...] = ()
    # Schemas of path placeholders (by name) that are more than any string.
    path_params: tuple[Param, ...] = ()
    idempotency: Idempotency = "auto"
    # The action the caller must be allowed, checked by the kernel in the resolved scope.
    permission: str | None = None
    scope: ScopeResolver | None = None
    # What one call costs against the caller's rate limit.
    cost: int = 1
    # A raw route answers with its own Response (HTML, text), outside the envelope.
    raw: bool = False
    content_type: str = "application/json"
    # Statuses the handler or its service answers beyond those the properties above imply
    # (a 409 conflict, a 429 of its own limit); the OpenAPI document declares them all.
    errors: tuple[int, ...] = ()
    # False for routes that touch neither PostgreSQL nor Redis, so never answer 503.
    storage: bool = True
    # A batch route's body may be larger (settings max_batch_body_bytes and _nodes).
    batch: bool = False
    # A batch body ``{"items": [...]}`` whose items the handler decodes one by one (each
    # refused on its own): the type each item should have, for the OpenAPI document.
    item: type | None = None
    # A body the handler takes as bytes, undecoded (``req.data``): its media types and the
    # schema of each, for the OpenAPI document. Idempotency still sees the bytes.
    raw_body: dict[str, Any] | None = None
    # The handler reads the body itself as it arrives (``req.stream(limit)``, its own
    # limit); the kernel reads none of it. ``raw_body`` documents its media types. The
    # Idempotency-Key layer would read the whole body first: such a route has none.
    stream_body: bool = False

    @property
    def idempotent(self) -> Idempotency:
        """The policy in force: ``none``, ``optional`` or ``required``."""
        if self.idempotency != "auto":
            return self.idempotency
        return "optional" if self.method in MUTATING and self.auth != "none" else "none"


class RouteTable:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self.router = Router()
        for index, route in enumerate(self.routes):
            self.router.add(route.method, route.path, index)

    def lookup(self, method: str, path: str) -> tuple[Route, dict[str, str]] | list[str]:
        found = self.router.lookup(method, path)
        if isinstance(found, tuple):
            return self.routes[found[0]], found[1]
        return found
