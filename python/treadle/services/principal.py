"""Who is making a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from treadle.errors import ApiError


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user (``kind == "user"``) or an API key (``kind == "api_key"``)."""

    id: str
    kind: str
    user_id: UUID | None
    session_id: UUID | None
    email: str
    is_platform_admin: bool
    # API keys only: the one organization the key acts in, and what it may do there.
    organization_id: UUID | None = None
    scopes: tuple[str, ...] = ()
    rate_limit_policy: str | None = None
    # API keys only: the key's record as verified (from the verification cache).
    record: dict[str, Any] | None = None
    # API keys only: ``organization_id`` as text, the key of per-organization caches.
    organization_key: str | None = None

    @property
    def account(self) -> UUID:
        """The signed-in user's id; routes that need it do not admit API keys."""
        if self.user_id is None:
            raise ApiError.forbidden("this needs a signed-in user, not an API key")
        return self.user_id

    @property
    def subject(self) -> str:
        """The principal as the authorization evaluator names it."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, and through which request: what an audit row records."""

    principal: Principal | None  # None before anyone has signed in (signup, reset, …)
    request_id: str
    ip: str
    user_agent: str

    @property
    def signed_in(self) -> Principal:
        """The principal, on routes that admit only authenticated callers."""
        if self.principal is None:
            raise ApiError.unauthenticated()
        return self.principal
