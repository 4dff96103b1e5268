"""Model providers: per-organization configuration, the catalogue, calls (whole or
streamed as Server-Sent Events) and cost estimates."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from treadle.api import scopes
from treadle.api.common import SINGLE_LINE, actor
from treadle.api.events import SSE_HEADERS
from treadle.services.webhook_urls import MAX_URL_CHARS
from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.response import Response
from treadle.web.routing import Param, Route

_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
_NAME_RE = re.compile(f"^{_NAME}(?!\\n)$")
ProviderName = Annotated[
    str, msgspec.Meta(pattern=f"^{_NAME}(?!\\n)$", description="lowercase letters, digits, _ and -")
]
ModelName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}(?!\n)$",
        description="a model's name (letters, digits and ._:/@+-, at most 128)",
    ),
]
SecretName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9_.-]{1,128}(?!\n)$",
        description="the name of one of the organization's secrets",
    ),
]
Url = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=MAX_URL_CHARS,
        pattern=r"^https?://[^\x00-\x20\x7f]+(?!\n)$",
        description="the provider's base URL (https://api.openai.com/v1, https://api.anthropic.com)",
    ),
]
# Per million tokens, in the organization's currency.
Price = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
MaxTokens = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]
MAX_MESSAGES = 256
MAX_CONTENT_CHARS = 200_000


class Model(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: ModelName
    # The provider's own name for it, when it differs (a vLLM path, an OpenRouter slug).
    upstream: ModelName | None = None
    input_price: Price
    output_price: Price
    max_output_tokens: MaxTokens | None = None


class ProviderConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["openai", "anthropic"]
    base_url: Url
    # The organization secret holding the API key; none for servers that take no key.
    credential: SecretName | None = None
    models: Annotated[list[Model], msgspec.Meta(min_length=1, max_length=200)]
    # Names the prices above: records carry it, so costs stay explainable after a change.
    price_version: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=SINGLE_LINE)]
    # A whole answer's time; for a stream, the wait for its start and then for each event.
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=600)] = 60.0
    connect_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    # Further attempts after a 429, a 5xx or a broken connection.
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=5)] = 2
    enabled: bool = True


class Provider(msgspec.Struct):
    organization_id: UUID
    name: str
    kind: str
    base_url: str
    credential: str | None
    models: list[Model]
    price_version: str
    timeout_seconds: float
    connect_timeout_seconds: float
    max_retries: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


class CatalogueEntry(msgspec.Struct):
    name: str
    kind: str
    enabled: bool
    price_version: str
    models: list[dict[str, Any]]
    capabilities: dict[str, Any]
    # closed, open (calls refused with 503), or half_open (one probe allowed).
    circuit: str


class Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, msgspec.Meta(max_length=MAX_CONTENT_CHARS)]


class Fallback(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Default: the provider of the call.
    provider: ProviderName | None = None
    model: ModelName


class ExecuteRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    provider: ProviderName
    model: ModelName
    messages: Annotated[list[Message], msgspec.Meta(min_length=1, max_length=MAX_MESSAGES)]
    # Default: the model's max_output_tokens or the server's default, the lower.
    max_tokens: MaxTokens | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, msgspec.Meta(gt=0, le=1)] | None = None
    stop: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=128)]],
        msgspec.Meta(max_length=4),
    ] = []
    # Tried in order when the model fails (a whole answer: after any failure; a stream:
    # only while it opens).
    fallbacks: Annotated[list[Fallback], msgspec.Meta(max_length=4)] = []
    # The team the usage is recorded for.
    team_id: UUID | None = None
    # Required for a signed-in user; an API key acts in its own organization.
    organization_id: UUID | None = None


class Usage(msgspec.Struct):
    input_tokens: int
    output_tokens: int
    # True when the provider did not report them and they were estimated.
    estimated: bool


class Cost(msgspec.Struct):
    input: float
    output: float
    total: float


class Execution(msgspec.Struct):
    id: UUID
    provider: str
    model: str
    price_version: str
    content: str
    finish_reason: str | None
    usage: Usage
    cost: Cost
    latency_ms: float
    first_token_ms: float | None
    attempts: int
    # Whether a fallback answered rather than the model asked for.
    fallback: bool


class Budget(msgspec.Struct):
    monthly_budget: float | None
    spent: float
    # Whether a call costing the estimate would be let through now.
    allowed: bool


class Estimation(msgspec.Struct):
    provider: str
    model: str
    price_version: str
    input_tokens: int
    output_tokens: int
    cost: Cost
    budget: Budget


def _name(req: Request) -> str:
    name = req.params["name"]
    if not _NAME_RE.match(name):
        raise ApiError.validation(
            "a provider name is 1 to 63 lowercase letters, digits, _ and -", "path.name"
        )
    return name


def _call(body: ExecuteRequest) -> dict[str, Any]:
    fields = msgspec.structs.asdict(body)
    fields["messages"] = [msgspec.structs.asdict(m) for m in body.messages]
    fields["fallbacks"] = [msgspec.structs.asdict(f) for f in body.fallbacks]
    return fields


async def put(req: Request) -> Any:
    body: ProviderConfig = req.data
    models = [m.name for m in body.models]
    if len(models) != len(set(models)):
        raise ApiError.validation("model names must be unique", "$.models")
    fields = msgspec.structs.asdict(body)
    fields["models"] = msgspec.to_builtins(body.models)
    return await req.app.providers.put(actor(req), req.scope.organization_id, _name(req), fields)


async def get(req: Request) -> Any:
    return await req.app.providers.get(req.scope.organization_id, _name(req))


async def delete(req: Request) -> Any:
    return await req.app.providers.delete(actor(req), req.scope.organization_id, _name(req))


async def catalogue(req: Request) -> Any:
    return await req.app.providers.catalogue(req.scope.organization_id)


async def execute(req: Request) -> Any:
    return await req.app.providers.execute(actor(req), req.scope.organization_id, _call(req.data))


async def execute_stream(req: Request) -> Response:
    events = await req.app.providers.stream(actor(req), req.scope.organization_id, _call(req.data))
    # The server closes the stream (aclose) when it ends or the client leaves.
    return Response(200, headers=SSE_HEADERS, content_type="text/event-stream", stream=events)


async def estimate(req: Request) -> Any:
    return await req.app.providers.estimate(req.scope.organization_id, _call(req.data))


NAME_PARAM = Param(
    "name",
    "the provider's name: lowercase letters, digits, _ and -",
    {"type": "string", "pattern": f"^{_NAME}(?!\\n)$"},
)
PROVIDER = "/v1/organizations/{id}/providers/{name}"
# 402 budget_exceeded, 409 (a disabled provider, a missing credential), 502
# provider_error, 503 provider_unavailable, 504 provider_timeout.
_CALL_ERRORS = (402, 409, 502, 503, 504)
_STREAM = (
    "Call a model and receive its answer as Server-Sent Events: `event: token` frames "
    '(`{"text"}`) relayed as the provider sends them, read from it no faster than the '
    "client takes them; then `event: done` with id, usage, cost, latency_ms and "
    "first_token_ms, or `event: error` (`{code, message}` with usage and cost so far) when "
    "the provider fails mid-stream. Failures before the first token are plain error "
    "answers: 402 budget_exceeded, 502 provider_error, 503 provider_unavailable, 504 "
    "provider_timeout"
)


def _route(method: str, path: str, handler: Any, summary: str, **kw: Any) -> Route:
    return Route(method, path, handler, summary, "providers", auth="any", **kw)


ROUTES = [
    _route(
        "GET",
        PROVIDER,
        get,
        "A provider's configuration: kind, base URL, credential name, models and prices",
        response=Provider,
        permission="providers.read",
        path_params=(NAME_PARAM,),
        scope=scopes.organization,
    ),
    _route(
        "PUT",
        PROVIDER,
        put,
        "Create or replace a provider: kind (openai: any OpenAI-compatible chat completions"
        " server; anthropic: Messages), base URL, the name of the organization secret"
        " holding its key, models with prices per million tokens, timeouts and retries",
        body=ProviderConfig,
        response=Provider,
        permission="providers.manage",
        path_params=(NAME_PARAM,),
        scope=scopes.organization,
        errors=(409,),
    ),
    _route(
        "DELETE",
        PROVIDER,
        delete,
        "Delete a provider (the answer is its configuration as it was)",
        response=Provider,
        permission="providers.manage",
        path_params=(NAME_PARAM,),
        scope=scopes.organization,
    ),
    _route(
        "GET",
        "/v1/providers",
        catalogue,
        "The organization's providers, their models and prices, capabilities and circuit",
        response=list[CatalogueEntry],
        params=(
            Param("organization_id", "the organization (signed-in users; an API key has its own)"),
        ),
        permission="providers.read",
        scope=scopes.caller_organization,
    ),
    _route(
        "POST",
        "/v1/providers/execute",
        execute,
        "Call a model and wait for its whole answer; with retries on 429 and 5xx, a breaker "
        "per provider, and the fallbacks in order. An Idempotency-Key replays the stored "
        "answer without calling the provider again. Refused with 402 budget_exceeded before"
        " the provider is called when the organization's monthly budget cannot cover it",
        body=ExecuteRequest,
        response=Execution,
        permission="providers.execute",
        scope=scopes.body_or_key,
        errors=_CALL_ERRORS,
    ),
    _route(
        "POST",
        "/v1/providers/execute/stream",
        execute_stream,
        _STREAM,
        body=ExecuteRequest,
        permission="providers.execute",
        scope=scopes.body_or_key,
        errors=_CALL_ERRORS,
        raw=True,
        content_type="text/event-stream",
        # A stream is not stored for replays.
        idempotency="none",
    ),
    _route(
        "POST",
        "/v1/providers/estimate",
        estimate,
        "What a call would cost at most: its prompt tokens (estimated) and max_tokens at "
        "the model's prices, and whether the monthly budget allows it; an unknown model is"
        " a 400 naming the provider's models",
        body=ExecuteRequest,
        response=Estimation,
        permission="providers.read",
        scope=scopes.body_or_key,
        errors=(409,),
        idempotency="none",
    ),
]
