"""Auth routes: signup, sign-in, sessions, email verification and password flows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from treadle.api.common import (
    SINGLE_LINE,
    Email,
    NewPassword,
    Password,
    Token,
    actor,
    normalize_email,
)
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.routing import Param, Route


class Signup(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: NewPassword
    display_name: Annotated[str, msgspec.Meta(pattern=SINGLE_LINE)] = ""


class Login(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password


class Refresh(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Token


class EmailOnly(msgspec.Struct, forbid_unknown_fields=True):
    email: Email


class ResetPassword(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    new_password: NewPassword


class ChangePassword(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: NewPassword


class User(msgspec.Struct):
    id: UUID
    email: str
    display_name: str
    email_verified: bool
    email_verified_at: datetime | None
    is_platform_admin: bool
    created_at: datetime
    updated_at: datetime


class Tokens(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_at: datetime
    session_id: UUID


class Session(msgspec.Struct):
    user: User
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    refresh_expires_at: datetime
    session_id: UUID


class Accepted(msgspec.Struct):
    accepted: bool
    message: str


class Revoked(msgspec.Struct):
    revoked_sessions: int


def _name(body: Signup) -> str:
    name = body.display_name.strip()
    if len(name) > 200:
        raise ApiError.validation("display_name must be at most 200 characters", "$.display_name")
    return name


async def signup(req: Request) -> Any:
    body: Signup = req.data
    return await req.app.accounts.signup(
        actor(req), normalize_email(body.email), body.password, _name(body)
    )


async def login(req: Request) -> Any:
    body: Login = req.data
    return await req.app.accounts.login(actor(req), normalize_email(body.email), body.password)


async def logout(req: Request) -> Any:
    await req.app.accounts.logout(actor(req))
    return {"revoked_sessions": 1}


async def logout_all(req: Request) -> Any:
    revoked = await req.app.accounts.logout_all(actor(req), req.principal.account)
    return {"revoked_sessions": revoked}


async def refresh(req: Request) -> Any:
    body: Refresh = req.data
    return await req.app.sessions.refresh(body.refresh_token)


async def verify(req: Request) -> Any:
    token = req.query_value("token")
    if not token:
        raise ApiError.validation("token query parameter is required", "query.token")
    return await req.app.accounts.verify_email(actor(req), token)


_ACCEPTED = "if an account with that email exists, a mail is on its way"


async def resend_verification(req: Request) -> Any:
    body: EmailOnly = req.data
    await req.app.accounts.resend_verification(normalize_email(body.email))
    return {"accepted": True, "message": _ACCEPTED}


async def forgot_password(req: Request) -> Any:
    body: EmailOnly = req.data
    await req.app.accounts.forgot_password(normalize_email(body.email))
    return {"accepted": True, "message": _ACCEPTED}


async def reset_password(req: Request) -> Any:
    body: ResetPassword = req.data
    await req.app.accounts.reset_password(actor(req), body.token, body.new_password)
    return {"accepted": True, "message": "password changed; every session was signed out"}


async def change_password(req: Request) -> Any:
    body: ChangePassword = req.data
    return await req.app.accounts.change_password(
        actor(req), body.current_password, body.new_password
    )


ROUTES = [
    Route(
        "POST",
        "/v1/auth/signup",
        signup,
        "Create an account",
        "auth",
        auth="none",
        body=Signup,
        response=Session,
        status=201,
        errors=(409, 429),
    ),
    Route(
        "POST",
        "/v1/auth/login",
        login,
        "Sign in",
        "auth",
        auth="none",
        body=Login,
        response=Session,
        errors=(401, 429),
    ),
    Route("POST", "/v1/auth/logout", logout, "End this session", "auth", response=Revoked),
    Route("POST", "/v1/auth/logout-all", logout_all, "End every session", "auth", response=Revoked),
    Route(
        "POST",
        "/v1/auth/token/refresh",
        refresh,
        "Trade a refresh token (single use) for a new pair",
        "auth",
        auth="none",
        body=Refresh,
        response=Tokens,
        errors=(401, 429),
    ),
    Route(
        "GET",
        "/v1/auth/verify",
        verify,
        "Verify an email address",
        "auth",
        auth="none",
        response=User,
        params=(
            Param(
                "token",
                "the token from the mail",
                {"type": "string", "minLength": 1},
                required=True,
            ),
        ),
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/auth/resend-verification",
        resend_verification,
        "Mail a new verification link",
        "auth",
        auth="none",
        body=EmailOnly,
        response=Accepted,
        status=202,
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/auth/forgot-password",
        forgot_password,
        "Mail a password reset link",
        "auth",
        auth="none",
        body=EmailOnly,
        response=Accepted,
        status=202,
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/auth/reset-password",
        reset_password,
        "Set a new password with a reset token",
        "auth",
        auth="none",
        body=ResetPassword,
        response=Accepted,
        errors=(429,),
    ),
    Route(
        "POST",
        "/v1/auth/change-password",
        change_password,
        "Change the password; ends every session and opens a new one",
        "auth",
        body=ChangePassword,
        response=Session,
        idempotency="none",
    ),
]
