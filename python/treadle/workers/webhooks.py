"""Sends webhook deliveries, signed per Standard Webhooks, from every server process.

Each process leases due deliveries (``FOR UPDATE SKIP LOCKED``, then a lease until
``next_attempt_at``), sends them with no transaction open, at most
``webhook_concurrency`` at once over one bounded connection pool, and records a batch's
outcomes in one transaction. A process that dies mid-send leaves its leases to expire:
those deliveries go again (receivers dedupe by ``webhook-id``, the same on every attempt).

Timeouts, connection errors, 429 and 5xx are retried on ``webhook_retry_schedule``
(later if the answer's ``Retry-After`` says so); other answers are final; 410 Gone also
disables the endpoint, as does failing every delivery for ``webhook_disable_after_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import psycopg

from treadle import _core
from treadle import retry_after as retry_after_header
from treadle.background import Background
from treadle.errors import ApiError
from treadle.sealing import Sealer
from treadle.services.webhook_urls import GuardedResolver, UrlRefused, check_address, literal, parse
from treadle.settings import Settings
from treadle.store import events
from treadle.store import webhooks as store
from treadle.store.db import Database

log = logging.getLogger("treadle.webhooks")

# How much of an answer's body is kept with the delivery.
RESPONSE_BYTES = 1024
ERROR_CHARS = 500
USER_AGENT = "treadle-webhooks/1"


@dataclass(slots=True)
class Outcome:
    status: str  # succeeded, pending (retried), dead
    retry_in: float | None = None
    response_status: int | None = None
    response_body: str | None = None
    latency_ms: float | None = None
    last_error: str | None = None
    gone: bool = False


class Sender(Background):
    def __init__(self, settings: Settings, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer
        self.schedule = settings.webhook_schedule
        self.timeout = settings.webhook_timeout_seconds
        self.concurrency = settings.webhook_concurrency
        self.allow_private = settings.webhook_allow_private
        self.disable_after = settings.webhook_disable_after_seconds
        self.poll = settings.webhook_poll_seconds
        # A lease outlasts an attempt and the recording of its outcome; a sender that dies
        # leaves its deliveries to go again this long after they were claimed.
        self.lease = self.timeout + 5
        self._free = self.concurrency
        self._wake = asyncio.Event()
        self._secrets: dict[bytes, str] = {}
        self._sending: set[asyncio.Task[None]] = set()
        # Outcomes not yet recorded, and the recorder's wake-up: a slow endpoint holds its
        # own slot until it answers or times out, never the recording of the others.
        self._done: list[tuple[dict[str, Any], Outcome]] = []
        self._flush = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency, resolver=GuardedResolver(self.allow_private)
        )
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
        ) as session:
            recorder = asyncio.get_running_loop().create_task(self._recorder())
            try:
                await self._loop(session)
            finally:
                for task in list(self._sending):
                    task.cancel()  # unrecorded: their leases expire and they go again
                recorder.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    # What was sent and answered is recorded, so it does not go twice.
                    await asyncio.wait_for(self._record_done(), 2.0)

    async def _loop(self, session: aiohttp.ClientSession) -> None:
        while True:
            asked = self._free
            rows: list[dict[str, Any]] = []
            if asked > 0:
                try:
                    async with self.db.transaction() as conn:
                        rows = await store.claim(conn, asked, self.lease)
                except (psycopg.Error, ApiError):
                    pass  # PostgreSQL away: try again on the next tick.
                except Exception:
                    log.exception("webhook claim failed")
            self._free -= len(rows)
            for row in rows:
                task = asyncio.get_running_loop().create_task(self._one(session, row))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
            if rows and len(rows) == asked:
                continue  # there may be more: claim again as soon as a slot frees
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)
            self._wake.clear()

    async def _one(self, session: aiohttp.ClientSession, row: dict[str, Any]) -> None:
        try:
            outcome = await self._send(session, row)
        except Exception:
            log.exception("webhook send failed")  # unrecorded: the lease expires
            return
        finally:
            self._free += 1
            self._wake.set()
        self._done.append((row, outcome))
        self._flush.set()

    async def _recorder(self) -> None:
        """Records outcomes as they come: what arrives while one batch is being written
        goes in the next, so a busy sender writes few, large batches."""
        while True:
            await self._flush.wait()
            self._flush.clear()
            try:
                await self._record_done()
            except Exception as exc:
                # Unrecorded: the leases expire and the deliveries go again.
                if not isinstance(exc, psycopg.Error | ApiError):
                    log.exception("recording webhook outcomes failed")

    async def _record_done(self) -> None:
        done, self._done = self._done, []
        if done:
            await self._record([row for row, _ in done], [o for _, o in done])

    async def _send(self, session: aiohttp.ClientSession, row: dict[str, Any]) -> Outcome:
        url = row["url"]
        try:
            _, host, _ = parse(url)
            address = literal(host)
            if address is not None:
                # The resolver is not asked for an address given as such: check it here.
                check_address(host, str(address), self.allow_private)
            headers = self._headers(row)
        except (UrlRefused, ValueError) as exc:
            return Outcome("dead", last_error=f"not sent: {exc}"[:ERROR_CHARS])
        started = time.perf_counter()
        try:
            async with session.post(
                url, data=row["body"], headers=headers, allow_redirects=False
            ) as answer:
                head = await answer.content.read(RESPONSE_BYTES)
                status, retry_after = answer.status, answer.headers.get("retry-after")
        except TimeoutError:
            return self._retry(row, f"no answer within {self.timeout:g} s", None, started)
        except (aiohttp.ClientError, OSError) as exc:
            return self._retry(row, _reason(exc), None, started)
        latency = (time.perf_counter() - started) * 1000
        body = head.decode("utf-8", "replace").replace("\x00", "\ufffd")
        if 200 <= status < 300:
            return Outcome("succeeded", None, status, body, latency)
        if status == 410:
            return Outcome(
                "dead", None, status, body, latency, "the endpoint answered 410 Gone", gone=True
            )
        if status == 429 or status >= 500:
            outcome = self._retry(row, f"the endpoint answered {status}", retry_after, started)
            outcome.response_status, outcome.response_body = status, body
            return outcome
        return Outcome(
            "dead",
            None,
            status,
            body,
            latency,
            f"the endpoint answered {status}, which is not retried"
            " (timeouts, connection errors, 429 and 5xx are)",
        )

    def _retry(
        self, row: dict[str, Any], error: str, retry_after: str | None, started: float
    ) -> Outcome:
        latency = (time.perf_counter() - started) * 1000
        attempt = row["attempts"]
        if attempt > len(self.schedule):
            return Outcome("dead", None, None, None, latency, f"{error}; last attempt ({attempt})")
        delay = max(self.schedule[attempt - 1], retry_after_header.parse(retry_after) or 0.0)
        return Outcome("pending", delay, None, None, latency, error[:ERROR_CHARS])

    def _headers(self, row: dict[str, Any]) -> dict[str, str]:
        bound = row["endpoint_id"].bytes
        secrets = [self._secret(row["secret"], bound)]
        if row["overlap"] and row["previous_secret"] is not None:
            secrets.append(self._secret(row["previous_secret"], bound))
        msg_id = f"msg_{row['id'].hex}"
        timestamp = int(time.time())
        return {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": _core.webhook_sign(secrets, msg_id, timestamp, row["body"]),
        }

    def _secret(self, sealed: bytes, bound: bytes) -> str:
        secret = self._secrets.get(sealed)
        if secret is None:
            if len(self._secrets) > 10_000:
                self._secrets.clear()
            secret = self._secrets[sealed] = self.sealer.open(sealed, bound).decode()
        return secret

    async def _record(self, rows: list[dict[str, Any]], outcomes: list[Outcome]) -> None:
        recorded = [
            {
                "id": row["id"],
                "status": o.status,
                "retry_in": o.retry_in,
                "response_status": o.response_status,
                "response_body": o.response_body,
                "latency_ms": o.latency_ms,
                "last_error": o.last_error,
            }
            for row, o in zip(rows, outcomes, strict=True)
        ]
        # Per endpoint, how its latest attempt in this batch went.
        pairs = list(zip(rows, outcomes, strict=True))
        health = {row["endpoint_id"]: o.status == "succeeded" for row, o in pairs}
        gone = list({row["endpoint_id"] for row, o in pairs if o.gone})
        async with self.db.transaction() as conn:
            await store.record(conn, recorded)
            disabled = await store.endpoint_outcomes(
                conn, [{"id": k, "ok": v} for k, v in health.items()], gone, self.disable_after
            )
            for endpoint in disabled:
                await store.kill_unfinished(conn, endpoint["id"], "the endpoint was disabled")
                await events.emit(
                    conn,
                    endpoint["organization_id"],
                    "webhook.disabled",
                    {
                        "webhook_id": endpoint["id"],
                        "url": endpoint["url"],
                        "reason": endpoint["disabled_reason"],
                    },
                )
        for endpoint in disabled:
            log.warning(
                "webhook endpoint disabled",
                extra={"webhook_id": str(endpoint["id"]), "reason": endpoint["disabled_reason"]},
            )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:ERROR_CHARS]
