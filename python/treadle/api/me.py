"""The signed-in caller."""

from __future__ import annotations

from typing import Any

from treadle.api.auth import User
from treadle.services.accounts import public_user
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Route


async def me(req: Request) -> Any:
    user = await req.app.sessions.user(req.principal.user_id)
    if user is None:
        raise ApiError.unauthenticated("the account no longer exists")
    return public_user(user)


ROUTES = [
    Route("GET", "/v1/me", me, "The signed-in account", "me", response=User),
]
