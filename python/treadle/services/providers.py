"""Model providers: per-organization configuration, the catalogue, estimates, budgets,
and calls through the gateway (``provider_gateway``).

Hot-path state is kept in memory briefly, per process: configurations for
``provider_config_cache_seconds``, organizations' budgets likewise, and revealed
credentials for ``provider_credential_cache_seconds``. A change to any of them (a
provider put or deleted, the organization's settings, a secret replaced or deleted) is
published on the invalidation bus once it commits, and every process drops what it kept
then; the expiry bounds staleness should a message be lost. A credential is revealed (one
audited read of the secrets store) when it is first needed, again once dropped, and at
once after the provider refuses it; concurrent calls share one reveal.

A budget is the ``monthly_budget`` of the organization's settings, in the currency of
its price tables. Each call with a budget in force charges its estimate (estimated
prompt tokens and its max_tokens, at the prices of the dearest of its targets) to the
month before the provider is called, or is refused with 402; its record settles the
difference to the real cost.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from uuid import UUID

import aiohttp

from treadle import _core, clock
from treadle.bus.invalidation import Invalidator
from treadle.cache import MISSING, TTLCache
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.orgs import SETTINGS_CHANGED
from treadle.services.principal import Actor
from treadle.services.provider_adapters import ADAPTERS, CAPABILITIES, Call
from treadle.services.provider_gateway import MILLION, Caller, Estimate, Gateway, Target
from treadle.services.provider_resilience import Breaker
from treadle.services.secrets import CHANGED as SECRET_CHANGED
from treadle.services.secrets import Secrets
from treadle.services.webhook_urls import GuardedResolver, UrlRefused, check_address, literal
from treadle.services.webhook_urls import parse as parse_url
from treadle.services.webhook_urls import resolve as resolve_host
from treadle.settings import Settings
from treadle.store import providers as store
from treadle.store import teams as team_store
from treadle.store.db import Database

Row = dict[str, Any]
MAX_PROVIDERS_PER_ORGANIZATION = 50
# The invalidation published when a provider is put or deleted: "<organization>/<name>".
CHANGED = "provider"
_NONE = object()  # a cached "no such configuration"


def _shown(config: Row) -> Row:
    return {k: v for k, v in config.items() if k not in ("created",)}


class Providers:
    def __init__(
        self, settings: Settings, db: Database, secrets: Secrets, bus: Invalidator
    ) -> None:
        self.settings = settings
        self.db = db
        self.secrets = secrets
        self.bus = bus
        self.allow_private = settings.provider_allow_private
        self.configs: TTLCache[tuple[UUID, str], Any] = TTLCache(
            settings.provider_config_cache_seconds, 10_000
        )
        self.budgets: TTLCache[UUID, Decimal | None] = TTLCache(
            settings.provider_config_cache_seconds, 10_000
        )
        self.credentials: TTLCache[tuple[UUID, str], str] = TTLCache(
            settings.provider_credential_cache_seconds, 10_000
        )
        self._reveals: dict[tuple[UUID, str], asyncio.Future[str]] = {}
        self.breaker = Breaker(
            settings.provider_breaker_failures, settings.provider_breaker_seconds
        )
        self.gateway = Gateway(settings, db, self.breaker, self._credential)
        bus.on(CHANGED, lambda ident: self.configs.drop(_named(ident)), self.configs.clear)
        bus.on(SECRET_CHANGED, lambda i: self.credentials.drop(_named(i)), self.credentials.clear)
        bus.on(SETTINGS_CHANGED, lambda ident: self.budgets.drop(UUID(ident)), self.budgets.clear)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.settings.provider_max_connections,
            limit_per_host=self.settings.provider_max_connections_per_host,
            # Names are resolved and checked here, and connected to as checked.
            resolver=GuardedResolver(self.allow_private),
            keepalive_timeout=30,
        )
        self.gateway.session = aiohttp.ClientSession(
            connector=connector, trust_env=False, auto_decompress=True
        )
        self.gateway.usage.start()

    async def stop(self) -> None:
        if self.gateway.session is not None:
            await self.gateway.session.close()
            self.gateway.session = None
        await self.gateway.usage.stop()

    # --- configuration -------------------------------------------------------------------

    async def _check_url(self, url: str) -> None:
        try:
            _, host, port = parse_url(url)
            address = literal(host)
            if address is not None:
                check_address(host, str(address), self.allow_private)
            else:
                await resolve_host(host, port, self.allow_private)
        except UrlRefused as exc:
            raise ApiError(
                "url_refused",
                f"providers cannot be called at this URL: {exc}; give a public http(s) URL",
                {"path": "$.base_url"},
            ) from None

    async def put(self, actor: Actor, org_id: UUID, name: str, fields: Row) -> Row:
        await self._check_url(fields["base_url"])
        async with self.db.transaction() as conn:
            before = await store.get(conn, org_id, name, lock=True)
            if before is None:
                await conn.execute(
                    "SELECT 1 FROM organizations WHERE id = %s FOR UPDATE", (org_id,)
                )
                if await store.count(conn, org_id) >= MAX_PROVIDERS_PER_ORGANIZATION:
                    raise ApiError.conflict(
                        f"an organization has at most {MAX_PROVIDERS_PER_ORGANIZATION} "
                        "providers; delete one first",
                        limit=MAX_PROVIDERS_PER_ORGANIZATION,
                    )
            after = await store.put(conn, org_id, name, fields, actor.signed_in.subject)
            await audit.record(
                conn,
                actor,
                org_id,
                "provider.create" if before is None else "provider.update",
                "provider",
                name,
                before,
                _shown(after),
            )
        await self._forget(org_id, name, before, after)
        return _shown(after)

    async def get(self, org_id: UUID, name: str) -> Row:
        async with self.db.connection() as conn:
            config = await store.get(conn, org_id, name)
        if config is None:
            raise ApiError.not_found(f"no provider named {name!r} in this organization")
        return config

    async def delete(self, actor: Actor, org_id: UUID, name: str) -> Row:
        async with self.db.transaction() as conn:
            before = await store.get(conn, org_id, name, lock=True)
            if before is None:
                raise ApiError.not_found(f"no provider named {name!r} in this organization")
            await store.delete(conn, org_id, name)
            await audit.record(
                conn, actor, org_id, "provider.delete", "provider", name, before=before
            )
        await self._forget(org_id, name, before, None)
        return before

    async def _forget(self, org_id: UUID, name: str, *configs: Row | None) -> None:
        await self.bus.publish(CHANGED, f"{org_id}/{name}")
        # What a credential no longer named by the provider revealed is dropped too.
        for config in configs:
            if config is not None and config["credential"]:
                self.credentials.drop((org_id, config["credential"]))

    async def catalogue(self, org_id: UUID) -> list[Row]:
        async with self.db.connection() as conn:
            configs = await store.in_org(conn, org_id)
        return [
            {
                "name": c["name"],
                "kind": c["kind"],
                "enabled": c["enabled"],
                "price_version": c["price_version"],
                "models": [{k: v for k, v in m.items() if k != "upstream"} for m in c["models"]],
                "capabilities": CAPABILITIES[c["kind"]],
                "circuit": self.breaker.state((org_id, c["name"])),
            }
            for c in configs
        ]

    async def _config(self, org_id: UUID, name: str, path: str) -> Row:
        hit = self.configs.get((org_id, name))
        if hit is MISSING:

            async def load() -> Any:
                async with self.db.committed() as conn:
                    found = await store.get(conn, org_id, name)
                return _NONE if found is None else found

            hit = await self.configs.load((org_id, name), load)
        if hit is _NONE:
            raise ApiError(
                "not_found",
                f"no provider named {name!r} in this organization",
                {"path": path},
            )
        if not hit["enabled"]:  # type: ignore[index]
            raise ApiError.conflict(f"provider {name!r} is disabled", path=path)
        return hit  # type: ignore[return-value]

    # --- planning, estimates, budgets ------------------------------------------------------

    async def plan(self, org_id: UUID, request: Row) -> list[Target]:
        """The call's targets in order (the model asked for, then its fallbacks), each with
        its estimate; 404 for an unknown provider, 400 naming the known models."""
        messages = [{"role": m["role"], "content": m["content"]} for m in request["messages"]]
        size = sum(len(m["content"]) for m in messages)
        if size > self.settings.provider_max_prompt_chars:
            raise ApiError.validation(
                f"the messages hold {size} characters; at most "
                f"{self.settings.provider_max_prompt_chars} are allowed",
                "$.messages",
            )
        prompt = _core.estimate_chat_tokens([m["content"] for m in messages])
        wanted = [("$", request["provider"], request["model"])]
        for i, alt in enumerate(request.get("fallbacks") or ()):
            wanted.append(
                (f"$.fallbacks[{i}]", alt["provider"] or request["provider"], alt["model"])
            )
        targets: list[Target] = []
        seen: set[tuple[str, str]] = set()
        for path, provider, model in wanted:
            if (provider, model) in seen:
                continue
            seen.add((provider, model))
            config = await self._config(org_id, provider, f"{path}.provider")
            entry = next((m for m in config["models"] if m["name"] == model), None)
            if entry is None:
                known = [m["name"] for m in config["models"]]
                raise ApiError.validation(
                    f"provider {provider!r} has no model {model!r}; its models are "
                    f"{', '.join(known)}",
                    f"{path}.model",
                    known=known,
                )
            limit = entry.get("max_output_tokens")
            max_tokens = request.get("max_tokens") or min(
                limit or self.settings.provider_default_max_tokens,
                self.settings.provider_default_max_tokens,
            )
            if limit is not None and max_tokens > limit:
                raise ApiError.validation(
                    f"max_tokens is {max_tokens}, above the {limit} of model {model!r}",
                    "$.max_tokens",
                    max_output_tokens=limit,
                )
            call = Call(
                model=entry.get("upstream") or model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=request.get("temperature"),
                top_p=request.get("top_p"),
                stop=list(request.get("stop") or ()),
            )
            input_cost = prompt * Decimal(str(entry["input_price"])) / MILLION
            output_cost = max_tokens * Decimal(str(entry["output_price"])) / MILLION
            targets.append(
                Target(config, entry, call, Estimate(prompt, max_tokens, input_cost, output_cost))
            )
        return targets

    async def _budget(self, org_id: UUID) -> Decimal | None:
        hit = self.budgets.get(org_id)
        if hit is not MISSING:
            return hit  # type: ignore[return-value]

        async def load() -> Decimal | None:
            async with self.db.committed() as conn:
                return await store.budget(conn, org_id)

        return await self.budgets.load(org_id, load)

    async def estimate(self, org_id: UUID, request: Row) -> Row:
        targets = await self.plan(org_id, {**request, "fallbacks": ()})
        estimate = targets[0].estimate
        cap = await self._budget(org_id)
        async with self.db.connection() as conn:
            spent = await store.spent(conn, org_id, _month())
        return {
            "provider": targets[0].config["name"],
            "model": targets[0].model["name"],
            "price_version": targets[0].config["price_version"],
            "input_tokens": estimate.input_tokens,
            "output_tokens": estimate.output_tokens,
            "cost": {
                "input": estimate.input_cost,
                "output": estimate.output_cost,
                "total": estimate.total,
            },
            "budget": {
                "monthly_budget": cap,
                "spent": spent,
                "allowed": cap is None or spent + estimate.total <= cap,
            },
        }

    async def _caller(
        self, actor: Actor, org_id: UUID, request: Row, targets: list[Target]
    ) -> Caller:
        principal = actor.signed_in
        team_id = request.get("team_id")
        if team_id is not None:
            async with self.db.connection() as conn:
                team = await team_store.get(conn, team_id)
            if team is None or team["organization_id"] != org_id:
                raise ApiError.validation(f"no team {team_id} in this organization", "$.team_id")
        amount = max(t.estimate.total for t in targets)
        month = _month()
        cap = await self._budget(org_id)
        reserved = Decimal(0)
        if cap is not None:
            async with self.db.committed() as conn:
                if not await store.reserve(conn, org_id, month, amount, cap):
                    spent = await store.spent(conn, org_id, month)
                    raise ApiError(
                        "budget_exceeded",
                        f"this call may cost up to {amount:f} and the organization has spent "
                        f"{spent:f} of its monthly budget of {cap:f}; lower max_tokens, or "
                        "raise monthly_budget in the organization settings",
                        {"monthly_budget": cap, "spent": spent, "estimate": amount},
                    )
            reserved = amount
        return Caller(
            actor,
            org_id,
            team_id,
            principal.subject,
            UUID(principal.id) if principal.kind == "api_key" else None,
            reserved,
            month,
        )

    # --- calls ---------------------------------------------------------------------------

    async def execute(self, actor: Actor, org_id: UUID, request: Row) -> Row:
        targets = await self.plan(org_id, request)
        caller = await self._caller(actor, org_id, request, targets)
        return await self.gateway.answer(targets, caller)

    async def stream(self, actor: Actor, org_id: UUID, request: Row) -> AsyncIterator[bytes]:
        targets = await self.plan(org_id, request)
        caller = await self._caller(actor, org_id, request, targets)
        return await self.gateway.stream(targets, caller)

    async def _credential(self, actor: Actor, config: Row, fresh: bool) -> str | None:
        name = config["credential"]
        if not name:
            return None
        key = (config["organization_id"], name)
        if fresh:
            self.credentials.drop(key)
        hit = self.credentials.get(key)
        if hit is not MISSING:
            return hit  # type: ignore[return-value]
        pending = self._reveals.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._reveal(actor, key, config))
            self._reveals[key] = pending
            pending.add_done_callback(lambda _: self._reveals.pop(key, None))
        return await asyncio.shield(pending)

    async def _reveal(self, actor: Actor, key: tuple[UUID, str], config: Row) -> str:
        # A reveal of its own, outside the request's transaction (in an empty context):
        # its audit row (naming the caller whose call needed it) stands whatever the
        # request's answer, and no connection is held through the provider call by the
        # request transaction its write would otherwise open.
        generation = self.credentials.generation
        try:
            value: str = await asyncio.create_task(
                self.secrets.reveal(actor, key[0], key[1]),
                context=contextvars.Context(),
            )
        except ApiError as exc:
            if exc.code == "not_found":
                raise ApiError.conflict(
                    f"provider {config['name']!r} names the credential {key[1]!r}, which is "
                    "not among the organization's secrets; PUT it first",
                    credential=key[1],
                ) from None
            raise
        self.credentials.put(key, value, generation)
        return value


def _named(ident: str) -> tuple[UUID, str]:
    """The cache key of an invalidation's "<organization>/<name>"."""
    org_id, _, name = ident.partition("/")
    return UUID(org_id), name


def _month() -> Any:
    return clock.now().date().replace(day=1)


__all__ = ["ADAPTERS", "Providers"]
