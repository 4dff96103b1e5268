"""Platform admin: manage every account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from treadle.api.auth import Revoked, User
from treadle.api.common import LIST_PARAMS, actor, flag, list_query, path_id
from treadle.store.users import SORTABLE
from treadle.web.envelope import Page
from treadle.web.request import Request
from treadle.web.routing import Param, Route


class AdminUser(User):
    locked: bool
    locked_until: datetime | None
    failed_logins: int
    deleted_at: datetime | None


async def list_users(req: Request) -> Any:
    query = list_query(req, SORTABLE, "created_at")
    include_deleted = flag(req, "include_deleted")
    rows, total = await req.app.accounts.admin_list(
        q=query.q,
        sort_by=query.sort_by,
        desc=query.desc,
        limit=query.limit,
        offset=query.offset,
        include_deleted=include_deleted,
    )
    return Page(rows, query.limit, query.offset, total)


async def get_user(req: Request) -> Any:
    return await req.app.accounts.admin_get(path_id(req))


async def delete_user(req: Request) -> Any:
    return await req.app.accounts.admin_delete(actor(req), path_id(req))


async def unlock_user(req: Request) -> Any:
    return await req.app.accounts.admin_unlock(actor(req), path_id(req))


async def verify_user(req: Request) -> Any:
    return await req.app.accounts.admin_verify(actor(req), path_id(req))


async def logout_all_user(req: Request) -> Any:
    user_id = path_id(req)
    await req.app.accounts.admin_get(user_id)
    revoked = await req.app.accounts.logout_all(actor(req), user_id, "admin_logout_all")
    return {"revoked_sessions": revoked}


_LIST_PARAMS = (
    *LIST_PARAMS,
    Param("sort_by", "created_at or email", {"type": "string", "enum": sorted(SORTABLE)}),
    Param("include_deleted", "true to list soft-deleted accounts too", {"type": "boolean"}),
)

ROUTES = [
    Route(
        "GET",
        "/v1/admin/users",
        list_users,
        "List accounts",
        "admin",
        auth="admin",
        response=list[AdminUser],
        params=_LIST_PARAMS,
    ),
    Route(
        "GET",
        "/v1/admin/users/{id}",
        get_user,
        "One account",
        "admin",
        auth="admin",
        response=AdminUser,
    ),
    Route(
        "DELETE",
        "/v1/admin/users/{id}",
        delete_user,
        "Soft-delete an account and end its sessions",
        "admin",
        auth="admin",
        response=AdminUser,
    ),
    Route(
        "POST",
        "/v1/admin/users/{id}/unlock",
        unlock_user,
        "Clear a sign-in lockout",
        "admin",
        auth="admin",
        response=AdminUser,
    ),
    Route(
        "POST",
        "/v1/admin/users/{id}/verify",
        verify_user,
        "Mark the email verified",
        "admin",
        auth="admin",
        response=AdminUser,
    ),
    Route(
        "POST",
        "/v1/admin/users/{id}/logout-all",
        logout_all_user,
        "End every session of an account",
        "admin",
        auth="admin",
        response=Revoked,
    ),
]
