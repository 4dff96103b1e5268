"""Sends what the mail outbox holds, over SMTP or (with no SMTP server set) to the log.

Each server process runs one mailer; ``FOR UPDATE SKIP LOCKED`` keeps them from sending
the same mail twice. A failed send is retried with exponential backoff.
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
from treadle.settings import Settings
from treadle.store import outbox
from treadle.store.db import Database, defer
from treadle.web.errors import ApiError

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
        async with self.db.transaction() as conn:
            rows = await outbox.claim(conn, BATCH)
            for row in rows:
                try:
                    await self._send(row)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    delay = min(MAX_BACKOFF, 2.0 ** (row["attempts"] + 1))
                    await outbox.mark_failed(conn, row["id"], str(exc), delay)
                    log.warning("mail not sent", extra={"mail_id": row["id"], "retry_in": delay})
                else:
                    await outbox.mark_sent(conn, row["id"])
        return len(rows)

    async def _send(self, row: dict[str, Any]) -> None:
        if self.smtp is None:
            # Development sender: the mail goes to the log, link included, by design.
            log.info(
                "mail",
                extra={"to": row["to_address"], "subject": row["subject"], "body": row["body"]},
            )
            return
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = row["to_address"]
        message["Subject"] = row["subject"]
        message.set_content(row["body"])
        await aiosmtplib.send(message, **self.smtp)


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
