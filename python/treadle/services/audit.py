"""Writing and reading the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.services.principal import Actor
from treadle.store import audit as audit_store
from treadle.store import events
from treadle.store.db import Conn


async def record(
    conn: Conn,
    actor: Actor,
    organization_id: UUID | None,
    action: str,
    target_type: str,
    target_id: object,
    before: Any = None,
    after: Any = None,
    *,
    as_user: object = None,
    event: bool = True,
) -> None:
    """Call inside the transaction of the change it describes. ``as_user`` names the
    account acting when no one is signed in yet (signup, sign-in, password reset).

    An organization's audited action is also a live event (topic: the action), unless
    the caller emits a richer event of its own (``event=False``). The event names the
    target but carries no before/after values: events reach viewers, audit rows do not."""
    principal = actor.principal
    if principal is not None:
        actor_id, principal_type = principal.id, principal.kind
    elif as_user is not None:
        actor_id, principal_type = str(as_user), "user"
    else:
        actor_id, principal_type = None, "anonymous"
    await audit_store.record(
        conn,
        organization_id=organization_id,
        actor_id=actor_id,
        principal_type=principal_type,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=_plain(before),
        after=_plain(after),
        request_id=actor.request_id,
        ip=actor.ip,
        user_agent=actor.user_agent,
    )
    if event and organization_id is not None:
        await events.emit(
            conn,
            organization_id,
            action,
            {
                "action": action,
                "target_type": target_type,
                "target_id": str(target_id),
                "actor": {"id": actor_id, "type": principal_type},
                "request_id": actor.request_id,
            },
        )


def _plain(value: Any) -> Any:
    """JSON-ready copy: ids and times become strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
