"""Sends what the mail outbox holds, over SMTP or (with no SMTP server set) to the log.

Each server process runs one mailer; ``FOR UPDATE SKIP LOCKED`` keeps them from sending
the same mail twice. Each mail is sent in a transaction of its own that records the
outcome, so a mail sent is recorded as sent before the next one goes (no batch is sent
again because a later mail in it failed). A mail that can never go (it cannot be built,
or the server refuses it or its recipient for good, 5xx) is marked failed with its reason
and skipped; anything else (connection refused, timeouts, 4xx) is retried with
exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
import psycopg

from treadle.background import Background
from treadle.errors import ApiError
from treadle.services.mail import render
from treadle.settings import Settings
from treadle.store import outbox
from treadle.store.db import Database, defer

log = logging.getLogger("treadle.mail")

BATCH = 20
POLL_SECONDS = 1.0
MAX_BACKOFF = 3600.0


class Mailer(Background):
    def __init__(self, settings: Settings, db: Database) -> None:
        self.db = db
        self.sender = settings.mail_from
        self.smtp = _smtp_options(settings.smtp_url) if settings.smtp_url else None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        # A mail queued in a request transaction is there to send once that commits.
        defer(self._wake.set)

    async def run(self) -> None:
        while True:
            try:
                sent = await self.send_due()
            except (psycopg.Error, ApiError):
                sent = 0  # PostgreSQL away: try again on the next tick.
            except Exception:
                log.exception("mailer pass failed")
                sent = 0
            if sent < BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                self._wake.clear()

    async def send_due(self) -> int:
        """Send up to ``BATCH`` due mails; how many were taken (sent, failed or deferred)."""
        for done in range(BATCH):
            async with self.db.transaction() as conn:
                row = await outbox.claim_one(conn)
                if row is None:
                    return done
                await self._deliver(conn, row)
        return BATCH

    async def _deliver(self, conn: Any, row: dict[str, Any]) -> None:
        try:
            message = self._build(row)
        except Exception as exc:  # whatever the cause, this mail can never be built
            await self._give_up(conn, row, f"cannot build the message: {exc}")
            return
        try:
            await self._send(message)
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPDataError) as exc:
            if _permanent(exc):
                await self._give_up(conn, row, f"refused by the SMTP server: {_reason(exc)}")
                return
            await self._defer(conn, row, _reason(exc))
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._defer(conn, row, _reason(exc))
        else:
            await outbox.mark_sent(conn, row["id"])

    async def _give_up(self, conn: Any, row: dict[str, Any], reason: str) -> None:
        await outbox.mark_failed(conn, row["id"], reason)
        log.error("mail failed for good", extra={"mail_id": row["id"], "reason": reason})

    async def _defer(self, conn: Any, row: dict[str, Any], reason: str) -> None:
        delay = min(MAX_BACKOFF, 2.0 ** (row["attempts"] + 1))
        await outbox.retry_later(conn, row["id"], reason, delay)
        log.warning(
            "mail not sent", extra={"mail_id": row["id"], "retry_in": delay, "reason": reason}
        )

    def _build(self, row: dict[str, Any]) -> EmailMessage:
        # The email package refuses CR/LF in header values (a header injection): such a
        # mail raises here, in development too, and only that mail fails.
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = row["to_address"]
        message["Subject"] = row["subject"]
        message.set_content(render(row["body"], row["token"]))
        return message

    async def _send(self, message: EmailMessage) -> None:
        if self.smtp is None:
            # Development sender: the mail goes to the log, link included, by design.
            log.info(
                "mail",
                extra={
                    "to": message["To"],
                    "subject": message["Subject"],
                    "body": message.get_content(),
                },
            )
            return
        await aiosmtplib.send(message, **self.smtp)


def _permanent(exc: aiosmtplib.SMTPException) -> bool:
    """A 5xx answer: the server will refuse this mail (or its recipient) every time."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(500 <= r.code < 600 for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(f"{r.code} {r.message} ({r.recipient})" for r in exc.recipients)
    return str(exc) or type(exc).__name__


def _smtp_options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"TREADLE_SMTP_URL must start with smtp:// or smtps://, not {url!r}")
    options: dict[str, Any] = {
        "hostname": parts.hostname or "127.0.0.1",
        "port": parts.port or (465 if parts.scheme == "smtps" else 25),
        "use_tls": parts.scheme == "smtps",
        "start_tls": None if parts.scheme == "smtp" else False,
        "timeout": 10,
    }
    if parts.username:
        options["username"] = unquote(parts.username)
        options["password"] = unquote(parts.password or "")
    return options
