"""Operations: failures across kinds and their retries, queue depths, component health.

What a caller sees is a ``Reach``: one organization, or (platform admins) every one. Mail
belongs to no organization, so only a platform admin looking at every organization sees it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from treadle import clock
from treadle.bus.redis import Client, ping
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.principal import Actor
from treadle.settings import Settings
from treadle.store import ops as store
from treadle.store.db import Database

if TYPE_CHECKING:
    from treadle.services.jobs import Jobs

log = logging.getLogger("treadle.ops")

Row = dict[str, Any]

# An event the relay has not moved after this long is one it missed (it has no failed
# state of its own): listed as a failure, and the relay's health is down.
STUCK_EVENT_SECONDS = 60
# "Claims in the last minute" of the queues view.
CLAIM_WINDOW_SECONDS = 60
# Each health probe gets this long; one that takes longer is down.
PROBE_TIMEOUT = 2.0
# Thresholds of degraded (and, for backlogs, down): latencies in milliseconds, ages in
# seconds. A probe that fails or times out is down.
POSTGRES_DEGRADED_MS = 250.0
REDIS_DEGRADED_MS = 100.0
RELAY_DEGRADED_SECONDS = 5.0
RELAY_DOWN_SECONDS = float(STUCK_EVENT_SECONDS)
# Mail due but not taken (the mailer is behind or not running)...
MAIL_OVERDUE_DEGRADED_SECONDS = 30.0
MAIL_OVERDUE_DOWN_SECONDS = 300.0
# ...and mail waiting this long in all (the SMTP server keeps deferring it).
MAIL_WAITING_DEGRADED_SECONDS = 900.0
# Webhook deliveries due but not sent (senders behind, or dead with leases running out).
WEBHOOK_OVERDUE_DEGRADED_SECONDS = 30.0
WEBHOOK_OVERDUE_DOWN_SECONDS = 300.0
STATUSES = ("ok", "degraded", "down")


@dataclass(frozen=True, slots=True)
class Reach:
    """Whose failures, queues and backlogs a caller sees."""

    organization_id: UUID | None  # None: every organization
    platform: bool  # a platform admin

    @property
    def sees_mail(self) -> bool:
        return self.platform and self.organization_id is None


def retry_url(kind: str, ident: object) -> str:
    return f"/v1/ops/failures/{kind}/{ident}/retry"


def _graded(value: float | None, degraded: float, down: float | None = None) -> str:
    if value is None or value <= degraded:
        return "ok"
    return "down" if down is not None and value > down else "degraded"


def _worst(*statuses: str) -> str:
    return max(statuses, key=STATUSES.index)


def _seconds(value: Any) -> float | None:
    # Ages come from the database's clock; a row committed as the query began can be a
    # few microseconds "in the future".
    return None if value is None else round(max(0.0, float(value)), 3)


class Ops:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    # -- failures ------------------------------------------------------------------------

    async def failures(
        self,
        reach: Reach,
        kinds: list[str],
        limit: int,
        before: tuple[datetime, str, str] | None,
    ) -> list[Row]:
        """A page of failures, newest first; each row keeps its ``sort_id`` for the cursor."""
        visible = [k for k in kinds if k != "mail" or reach.sees_mail]
        if not visible:
            return []
        async with self.db.connection() as conn:
            rows = await store.failures(
                conn, visible, reach.organization_id, STUCK_EVENT_SECONDS, limit, before
            )
        for row in rows:
            row["retry_url"] = retry_url(row["kind"], row["id"])
        return rows

    async def owner(self, kind: str, ident: UUID | int) -> UUID | None:
        """The organization of the failure (None: mail, which has none); 404 when none."""
        async with self.db.connection() as conn:
            row = await store.owner(conn, kind, ident)
        if row is None:
            raise ApiError.not_found(f"no {kind} with id {ident}")
        org_id: UUID | None = row["organization_id"]
        return org_id

    async def retry_job(self, actor: Actor, job_id: UUID, jobs: Jobs) -> Row:
        """A dead job queued again, by the job retry (which audits it). A canceled job is
        no failure, though that retry takes it too."""
        async with self.db.connection() as conn:
            status = await store.job_status(conn, job_id)
        if status is None:
            raise ApiError.not_found(f"no job with id {job_id}")
        if status != "dead":
            # Not locked: a dead job only leaves that state by a retry, which refuses a
            # second one with the same 409.
            raise ApiError.conflict(f"this job is {status}, not dead", status=status)
        return await jobs.retry(actor, job_id)

    async def retry_event(self, actor: Actor, event_id: int) -> Row:
        """Wake the relay for an event it has not moved; the row as it is now (the relay
        moves it after this answer)."""
        async with self.db.transaction() as conn:
            row = await store.event(conn, event_id, STUCK_EVENT_SECONDS)
            if row is None:
                raise ApiError.not_found(f"no event with id {event_id}")
            stuck = row.pop("stuck")
            if row["relayed_at"] is not None:
                raise ApiError.conflict("this event was relayed already", status="relayed")
            if not stuck:
                raise ApiError.conflict(
                    f"this event is pending for less than {STUCK_EVENT_SECONDS} seconds;"
                    " the relay has not missed it yet",
                    status="pending",
                )
            await store.wake_relay(conn)
            await audit.record(
                conn,
                actor,
                row["organization_id"],
                "ops.event.retry",
                "event",
                event_id,
                before={"topic": row["topic"], "created_at": row["created_at"]},
            )
        return {**row, "status": "pending"}

    async def retry_mail(self, actor: Actor, mail_id: int) -> Row:
        """A failed mail due again at once (the caller wakes the mailer after commit)."""
        async with self.db.transaction() as conn:
            row = await store.mail(conn, mail_id, lock=True)
            if row is None:
                raise ApiError.not_found(f"no mail with id {mail_id}")
            if row["failed_at"] is None:
                status = "pending" if row["sent_at"] is None else "sent"
                raise ApiError.conflict(f"this mail is {status}, not failed", status=status)
            if row["link_spent"]:
                # Its single-use token was erased when it failed: sent again, the link
                # would not work. The user asks for a new one instead.
                raise ApiError(
                    "mail_link_spent",
                    "this mail's single-use link was erased when it failed; the user can ask"
                    " for a new one (resend verification, forgot password, a new invitation)",
                )
            after = await store.requeue_mail(conn, mail_id)
            await audit.record(
                conn,
                actor,
                None,
                "ops.mail.retry",
                "mail",
                mail_id,
                before={"failed_at": row["failed_at"], "last_error": row["last_error"]},
                after={"next_attempt_at": after["next_attempt_at"]},
            )
        return {**after, "status": "pending"}

    # -- queues --------------------------------------------------------------------------

    async def queues(self, reach: Reach, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            rows, total = await store.queues(
                conn, reach.organization_id, CLAIM_WINDOW_SECONDS, limit, offset
            )
        for row in rows:
            row["oldest_queued_seconds"] = _seconds(row["oldest_queued_seconds"])
        return rows, total

    # -- health --------------------------------------------------------------------------

    async def health(self, reach: Reach, redis: Client) -> Row:
        """Each component's status (ok, degraded, down) and figures; the worst overall.
        Every probe is bounded: one that fails or does not answer is down, never an error."""
        org_id = reach.organization_id
        probes = [
            _timed(self.db.ping(PROBE_TIMEOUT)),
            _timed(ping(redis)),
            _timed(self._read(store.relay_backlog, org_id)),
            _timed(self._read(store.webhook_backlog, org_id)),
        ]
        if reach.platform:
            probes.append(_timed(self._read(store.mail_backlog)))
        postgres, redis_, relay, webhooks, *mail = await asyncio.gather(*probes)
        components: Row = {
            "postgres": _probe(postgres, POSTGRES_DEGRADED_MS),
            "redis": _probe(redis_, REDIS_DEGRADED_MS),
            "relay": _relay(relay),
            "webhooks": _webhooks(webhooks),
            "mailer": _mailer(mail[0]) if mail else None,
        }
        return {
            "status": _worst(*(c["status"] for c in components.values() if c is not None)),
            "organization_id": org_id,
            "checked_at": clock.now(),
            "components": components,
        }

    async def _read(self, query: Any, *args: Any) -> Row:
        async with self.db.connection() as conn:
            row: Row = await query(conn, *args)
        return row


# What a probe gave: its result (None when it failed), its latency and why it failed.
Timed = tuple[Any, float | None, str | None]


async def _timed(probe: Awaitable[Any]) -> Timed:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(probe, PROBE_TIMEOUT)
    except TimeoutError:
        return None, None, f"no answer within {PROBE_TIMEOUT:g} seconds"
    except Exception as exc:  # whatever went wrong, the component is down, not the view
        # The details (hosts, addresses) go to the log, not to an organization's admins.
        log.warning("health probe failed", exc_info=True)
        return None, None, f"failed ({type(exc).__name__})"
    return result, round((time.perf_counter() - started) * 1000, 3), None


def _probe(timed: Timed, degraded_ms: float) -> Row:
    _, latency, error = timed
    status = "down" if error else _graded(latency, degraded_ms)
    return {"status": status, "latency_ms": latency, "error": error}


def _relay(timed: Timed) -> Row:
    row, _, error = timed
    if error:
        return {"status": "down", "pending": None, "oldest_age_seconds": None, "error": error}
    age = _seconds(row["oldest_age_seconds"])
    return {
        "status": _graded(age, RELAY_DEGRADED_SECONDS, RELAY_DOWN_SECONDS),
        "pending": row["pending"],
        "oldest_age_seconds": age,
        "error": None,
    }


def _webhooks(timed: Timed) -> Row:
    row, _, error = timed
    if error:
        return {
            "status": "down",
            "pending": None,
            "overdue_seconds": None,
            "dead": None,
            "error": error,
        }
    overdue = _seconds(row["overdue_seconds"])
    return {
        "status": _graded(overdue, WEBHOOK_OVERDUE_DEGRADED_SECONDS, WEBHOOK_OVERDUE_DOWN_SECONDS),
        "pending": row["pending"],
        "overdue_seconds": overdue,
        "dead": row["dead"],
        "error": None,
    }


def _mailer(timed: Timed) -> Row:
    row, _, error = timed
    if error:
        return {
            "status": "down",
            "pending": None,
            "oldest_age_seconds": None,
            "overdue_seconds": None,
            "failed": None,
            "error": error,
        }
    age, overdue = _seconds(row["oldest_age_seconds"]), _seconds(row["overdue_seconds"])
    return {
        "status": _worst(
            _graded(overdue, MAIL_OVERDUE_DEGRADED_SECONDS, MAIL_OVERDUE_DOWN_SECONDS),
            _graded(age, MAIL_WAITING_DEGRADED_SECONDS),
        ),
        "pending": row["pending"],
        "oldest_age_seconds": age,
        "overdue_seconds": overdue,
        "failed": row["failed"],
        "error": None,
    }
