"""Who is making a request."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Principal:
    id: str
    kind: str
    user_id: UUID
    session_id: UUID
    email: str
    is_platform_admin: bool


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, and through which request: what an audit row records."""

    principal: Principal
    request_id: str
    ip: str
    user_agent: str
