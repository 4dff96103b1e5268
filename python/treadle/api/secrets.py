"""Organizations' encrypted credentials: names and versions are listed, values only set.

A value is never in an answer; a service that uses one (the providers gateway) asks
``app.secrets.reveal``, which audits the use.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from treadle.api import scopes
from treadle.api.common import NO_NUL, PAGE_PARAMS, actor, page_of
from treadle.services.secrets import MAX_VALUE_CHARS, NAME_PATTERN, NAME_RULE
from treadle.web.envelope import Page
from treadle.web.request import Request
from treadle.web.routing import Param, Route

Value = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_VALUE_CHARS,
        pattern=NO_NUL,
        description=f"the secret: 1 to {MAX_VALUE_CHARS} characters, no NUL",
    ),
]


class SecretValue(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    value: Value


class Secret(msgspec.Struct):
    name: str
    # 1 when created, one more at each replacement.
    version: int
    created_at: datetime
    updated_at: datetime
    # Who set this version: a user's or an API key's id, and which (user or api_key).
    updated_by: str | None
    updated_by_type: str


async def list_secrets(req: Request) -> Any:
    limit, offset = page_of(req)
    rows, total = await req.app.secrets.names(req.scope.organization_id, limit, offset)
    return Page(rows, limit, offset, total)


async def put(req: Request) -> Any:
    body: SecretValue = req.data
    return await req.app.secrets.put(
        actor(req), req.scope.organization_id, req.params["name"], body.value
    )


async def delete(req: Request) -> Any:
    return await req.app.secrets.delete(actor(req), req.scope.organization_id, req.params["name"])


SECRETS = "/v1/organizations/{id}/secrets"


def _route(method: str, path: str, handler: Any, summary: str, **kw: Any) -> Route:
    kw.setdefault("response", Secret)
    return Route(
        method, path, handler, summary, "secrets", auth="any", scope=scopes.organization, **kw
    )


NAME_PARAM = Param(
    "name", f"the secret's name: {NAME_RULE}", {"type": "string", "pattern": NAME_PATTERN}
)

ROUTES = [
    _route(
        "GET",
        SECRETS,
        list_secrets,
        "The organization's secrets by name: versions and times, never values",
        response=list[Secret],
        params=PAGE_PARAMS,
        permission="secrets.read",
    ),
    _route(
        "PUT",
        SECRETS + "/{name}",
        put,
        f"Set a secret (name: {NAME_RULE}); it is stored encrypted and never shown again."
        " Replacing one gives it the next version",
        body=SecretValue,
        path_params=(NAME_PARAM,),
        permission="secrets.manage",
        # The request holds the value: no stored copy of anything about it.
        idempotency="none",
    ),
    _route(
        "DELETE",
        SECRETS + "/{name}",
        delete,
        "Delete a secret (the answer is the secret as it was, without its value)",
        path_params=(NAME_PARAM,),
        permission="secrets.manage",
    ),
]
