"""Calls through the gateway: each target (a model of a configured provider) tried in
order, each with its retries behind its provider's breaker, then one usage record.

A whole answer may fall back to the next target after any failure. A stream falls back
only while it opens: once the provider has answered 200 its tokens are on their way to
the client, and what follows a failure then is an ``error`` event, not another model.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

import aiohttp
import orjson

from treadle import _core, clock, encoding
from treadle.errors import ApiError
from treadle.services import provider_http as http
from treadle.services.principal import Actor
from treadle.services.provider_adapters import ADAPTERS, Call, ProtocolError, Reply
from treadle.services.provider_resilience import Breaker, Upstream, backoff
from treadle.services.provider_usage import UsageWriter
from treadle.settings import Settings
from treadle.store.db import Database

Row = dict[str, Any]
MILLION = Decimal(1_000_000)
# How long the end of a finished stream's body is waited for, to reuse its connection.
DRAIN_SECONDS = 0.5
# The credential of a target's provider (None: it takes none); ``fresh`` skips the cache.
Credentials = Callable[[Actor, Row, bool], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class Estimate:
    input_tokens: int
    output_tokens: int
    input_cost: Decimal
    output_cost: Decimal

    @property
    def total(self) -> Decimal:
        return self.input_cost + self.output_cost


@dataclass(frozen=True, slots=True)
class Target:
    config: Row  # the provider's configuration
    model: Row  # its entry in the provider's price table
    call: Call
    estimate: Estimate

    @property
    def key(self) -> tuple[object, str]:
        return (self.config["organization_id"], self.config["name"])

    def cost(self, tokens_in: int, tokens_out: int) -> tuple[Decimal, Decimal]:
        return (
            tokens_in * Decimal(str(self.model["input_price"])) / MILLION,
            tokens_out * Decimal(str(self.model["output_price"])) / MILLION,
        )


@dataclass(frozen=True, slots=True)
class Caller:
    actor: Actor
    org_id: UUID
    team_id: UUID | None
    principal_id: str
    api_key_id: UUID | None
    # What the budget was charged before the call (zero without a budget), and in which
    # month: the record settles the difference to the real cost there.
    reserved: Decimal
    month: date


@dataclass(slots=True)
class _Run:
    """One call's progress, for its record."""

    started: float
    attempts: int = 0
    first_token_ms: float | None = None


def _frame(event: str, data: Row) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (
        event.encode(),
        orjson.dumps(data, default=encoding.default),
    )


class Gateway:
    def __init__(
        self, settings: Settings, db: Database, breaker: Breaker, credentials: Credentials
    ) -> None:
        self.settings = settings
        self.db = db
        self.breaker = breaker
        self.credentials = credentials
        self.usage = UsageWriter(
            db, settings.provider_usage_flush_seconds, settings.provider_usage_wait_seconds
        )
        self.session: aiohttp.ClientSession | None = None

    async def _attempt(self, target: Target, stream: bool, run: _Run, actor: Actor) -> Any:
        """The target's answer (a ``Reply``, or an open stream's response), with retries."""
        config = target.config
        adapter = ADAPTERS[config["kind"]]
        url = adapter.url(config["base_url"])
        body = adapter.body(target.call, stream)
        fresh = False
        assert self.session is not None, "Providers.start() was not awaited"
        for attempt in range(1, config["max_retries"] + 2):
            wait = self.breaker.admit(target.key)
            if wait is not None:
                raise self.breaker.refusal(wait)
            run.attempts += 1
            try:
                headers = adapter.headers(await self.credentials(actor, config, fresh))
                if stream:
                    result: Any = await http.open_stream(
                        self.session,
                        url,
                        headers,
                        body,
                        config["timeout_seconds"],
                        config["connect_timeout_seconds"],
                    )
                else:
                    raw = await http.post(
                        self.session,
                        url,
                        headers,
                        body,
                        config["timeout_seconds"],
                        config["connect_timeout_seconds"],
                    )
                    try:
                        result = adapter.reply(raw)
                    except ProtocolError as exc:
                        raise Upstream("provider_error", str(exc)) from None
            except Upstream as exc:
                if exc.counts:
                    self.breaker.failure(target.key)
                else:
                    self.breaker.release(target.key)
                # A rejected credential may have been replaced since it was cached.
                fresh = exc.reason == "credential_rejected"
                if not (exc.retriable or fresh) or attempt > config["max_retries"]:
                    raise
                delay = backoff(
                    attempt,
                    self.settings.provider_retry_base_seconds,
                    self.settings.provider_retry_max_seconds,
                    exc.retry_after,
                )
                if delay is None:
                    raise
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self.breaker.release(target.key)
                raise
            self.breaker.success(target.key)
            return result
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _first(
        self, targets: list[Target], stream: bool, run: _Run, actor: Actor
    ) -> tuple[int, Any]:
        """The index of the first target that answers, and its answer."""
        failure: Upstream | None = None
        for index, target in enumerate(targets):
            try:
                return index, await self._attempt(target, stream, run, actor)
            except Upstream as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def answer(self, targets: list[Target], caller: Caller) -> Row:
        run = _Run(time.perf_counter())
        try:
            index, reply = await self._first(targets, False, run, caller.actor)
        except BaseException as exc:
            raise await self._failed(caller, targets[-1], run, exc, False) from None
        assert isinstance(reply, Reply)
        target = targets[index]
        done = await self._record(
            caller,
            target,
            run,
            "ok",
            None,
            reply.input_tokens,
            reply.output_tokens,
            False,
            reply.content,
        )
        return {
            **done,
            "content": reply.content,
            "finish_reason": _reason(reply.finish_reason),
            "fallback": index > 0,
        }

    async def stream(self, targets: list[Target], caller: Caller) -> AsyncIterator[bytes]:
        """Opens the stream (errors until then are raised, for a plain error answer) and
        returns the iterator of events to send."""
        run = _Run(time.perf_counter())
        try:
            index, resp = await self._first(targets, True, run, caller.actor)
        except BaseException as exc:
            raise await self._failed(caller, targets[-1], run, exc, True) from None
        target = targets[index]

        async def unstarted() -> None:
            # The client left before the first event was asked for: the finally of the
            # relay never runs, so its cleanup is done here.
            resp.close()
            await self._record(caller, target, run, "cancelled", "client_closed", None, 0, True)

        return _Events(self._relay(target, resp, caller, run, index > 0), unstarted)

    async def _failed(
        self, caller: Caller, target: Target, run: _Run, exc: BaseException, stream: bool
    ) -> BaseException:
        """Records a call that got no answer (which gives its reservation back); the
        exception to raise: the caller's error for an upstream failure, else ``exc``."""
        code = exc.code if isinstance(exc, Upstream | ApiError) else "internal"
        await self._record(caller, target, run, "error", code, 0, 0, stream)
        if isinstance(exc, Upstream):
            return exc.api_error(target.config["name"], target.model["name"], run.attempts)
        return exc

    async def _relay(
        self,
        target: Target,
        resp: aiohttp.ClientResponse,
        caller: Caller,
        run: _Run,
        fallback: bool,
    ) -> AsyncGenerator[bytes, None]:
        decoder = ADAPTERS[target.config["kind"]].decoder()
        parts: list[str] = []
        tokens_in: int | None = None
        tokens_out: int | None = None
        finish: str | None = None
        recorded = ended = False
        try:
            try:
                async for event, data in http.events(resp, target.config["timeout_seconds"]):
                    delta = decoder.feed(event, data)
                    if delta is None:
                        continue
                    if delta.input_tokens is not None:
                        tokens_in = delta.input_tokens
                    if delta.output_tokens is not None:
                        tokens_out = delta.output_tokens
                    finish = delta.finish_reason or finish
                    if delta.text:
                        if run.first_token_ms is None:
                            run.first_token_ms = (time.perf_counter() - run.started) * 1000
                        parts.append(delta.text)
                        yield _frame("token", {"text": delta.text})
                    if delta.done:
                        ended = True
                        break
            except ProtocolError as exc:
                raise Upstream("provider_error", str(exc)) from None
            if not ended:
                raise Upstream(
                    "provider_error", "the provider's stream ended before the answer did"
                )
            recorded = True
            done = await self._record(
                caller, target, run, "ok", None, tokens_in, tokens_out, True, "".join(parts)
            )
            yield _frame("done", {**done, "finish_reason": _reason(finish), "fallback": fallback})
        except Upstream as exc:
            self.breaker.failure(target.key)
            recorded = True
            done = await self._record(
                caller, target, run, "error", exc.code, tokens_in, tokens_out, True, "".join(parts)
            )
            yield _frame("error", {"code": exc.code, "message": exc.message, **done})
        finally:
            await _finish(resp, ended)
            if not recorded:
                # The client left (or the server is stopping): what was streamed is paid.
                await self._record(
                    caller,
                    target,
                    run,
                    "cancelled",
                    "client_closed",
                    tokens_in,
                    tokens_out,
                    True,
                    "".join(parts),
                )

    async def _record(
        self,
        caller: Caller,
        target: Target,
        run: _Run,
        status: str,
        error_code: str | None,
        tokens_in: int | None,
        tokens_out: int | None,
        stream: bool,
        content: str = "",
    ) -> Row:
        """Writes the call's record and usage (settling the budget), waiting for the commit
        (group commit, see ``provider_usage``); returns what the caller is told of its
        usage and cost. Tokens the provider did not report are estimated."""
        estimated = tokens_in is None or tokens_out is None
        if tokens_in is None:
            tokens_in = target.estimate.input_tokens
        if tokens_out is None:
            tokens_out = _core.estimate_tokens(content) if content else 0
        input_cost, output_cost = target.cost(tokens_in, tokens_out)
        latency_ms = round((time.perf_counter() - run.started) * 1000, 3)
        call = {
            "id": uuid.uuid4(),
            "organization_id": caller.org_id,
            "team_id": caller.team_id,
            "principal_id": caller.principal_id,
            "api_key_id": caller.api_key_id,
            "request_id": caller.actor.request_id,
            "provider": target.config["name"],
            "model": target.model["name"],
            "price_version": target.config["price_version"],
            "stream": stream,
            "status": status,
            "error_code": error_code,
            "attempts": run.attempts,
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cost": input_cost + output_cost,
            "latency_ms": latency_ms,
            "first_token_ms": run.first_token_ms,
            "created_at": clock.now(),
        }
        written = self.usage.add(
            call, input_cost, output_cost, caller.month, input_cost + output_cost - caller.reserved
        )
        if status != "cancelled":  # nobody waits for the answer of a call the client left
            await self.usage.written(written)
        return {
            "id": call["id"],
            "provider": call["provider"],
            "model": call["model"],
            "price_version": call["price_version"],
            "usage": {
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "estimated": estimated,
            },
            "cost": {"input": input_cost, "output": output_cost, "total": call["cost"]},
            "latency_ms": latency_ms,
            "first_token_ms": run.first_token_ms,
            "attempts": run.attempts,
        }


class _Events:
    """The relay's events, closed (``aclose``) by the server when the stream ends or the
    client leaves, whether or not the relay had started."""

    def __init__(
        self, relay: AsyncGenerator[bytes, None], unstarted: Callable[[], Awaitable[None]]
    ):
        self.relay = relay
        self.unstarted: Callable[[], Awaitable[None]] | None = unstarted

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> bytes:
        self.unstarted = None
        return await self.relay.__anext__()

    async def aclose(self) -> None:
        await self.relay.aclose()
        if self.unstarted is not None:
            cleanup, self.unstarted = self.unstarted, None
            await cleanup()


async def _finish(resp: aiohttp.ClientResponse, ended: bool) -> None:
    """Give the connection back to the pool when the stream ended as it should (reading the
    end of the body the provider sends after its last event), close it otherwise."""
    if ended:
        try:
            await asyncio.wait_for(resp.content.read(http.MAX_ERROR_BYTES), DRAIN_SECONDS)
        except (TimeoutError, aiohttp.ClientError, OSError):
            ended = False
    if ended and resp.content.at_eof():
        resp.release()
    else:
        resp.close()


def _reason(value: object) -> str | None:
    return value[:64] if isinstance(value, str) else None
