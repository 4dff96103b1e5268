"""The two wire protocols the gateway speaks: OpenAI-compatible chat completions (OpenAI,
vLLM, Ollama, OpenRouter, LiteLLM and most others) and Anthropic Messages.

An adapter builds the upstream request from the gateway's ``Call`` and reads the answer
back, whole (``reply``) or as a stream of server-sent events (``Decoder``), into the same
shapes; everything else (retries, breakers, usage, budgets) is protocol-blind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

Json = dict[str, Any]


class ProtocolError(Exception):
    """The provider answered something that is not its protocol (the message says what)."""


@dataclass(frozen=True, slots=True)
class Call:
    """One request to one model, in the gateway's terms."""

    model: str  # the provider's own name for it
    messages: list[Json]  # {"role": "system" | "user" | "assistant", "content": str}
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Reply:
    content: str = ""
    finish_reason: str | None = None
    # As the provider reported them (None: it did not, and the gateway estimates).
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(slots=True)
class Delta:
    """What one event of a stream brought: text, and usage or an end when it says so."""

    text: str = ""
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    done: bool = False


class Decoder(Protocol):
    def feed(self, event: str | None, data: bytes) -> Delta | None:
        """The delta an event carries, or None for one that carries nothing (a ping)."""


class Adapter(Protocol):
    def url(self, base_url: str) -> str: ...
    def headers(self, credential: str | None) -> list[tuple[str, str]]: ...
    def body(self, call: Call, stream: bool) -> bytes: ...
    def reply(self, body: bytes) -> Reply: ...
    def decoder(self) -> Decoder: ...


def _json(data: bytes) -> Json:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError("the provider's answer is not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("the provider's answer is not a JSON object")
    return value


def _obj(doc: Json, key: str) -> Json:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _upstream_error(doc: Json) -> None:
    # An error object inside a 200 (both protocols can send one mid-stream).
    error = doc.get("error")
    if isinstance(error, dict):
        kind = error.get("type") or error.get("code") or "error"
        raise ProtocolError(f"the provider reported an error ({str(kind)[:64]})")


class OpenAI:
    """``POST {base_url}/chat/completions``; base URLs end with the API version as the
    OpenAI SDKs take them (``https://api.openai.com/v1``, ``http://host:11434/v1``)."""

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + "/chat/completions"

    def headers(self, credential: str | None) -> list[tuple[str, str]]:
        headers = [("content-type", "application/json"), ("accept", "application/json")]
        if credential:
            headers.append(("authorization", f"Bearer {credential}"))
        return headers

    def body(self, call: Call, stream: bool) -> bytes:
        doc: Json = {"model": call.model, "messages": call.messages, "max_tokens": call.max_tokens}
        if call.temperature is not None:
            doc["temperature"] = call.temperature
        if call.top_p is not None:
            doc["top_p"] = call.top_p
        if call.stop:
            doc["stop"] = call.stop
        if stream:
            # Usage arrives in a last chunk only when asked for.
            doc["stream"] = True
            doc["stream_options"] = {"include_usage": True}
        return orjson.dumps(doc)

    def reply(self, body: bytes) -> Reply:
        doc = _json(body)
        _upstream_error(doc)
        choices = doc.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ProtocolError("the provider's answer has no choices")
        message = choices[0].get("message")
        usage = _obj(doc, "usage")
        return Reply(
            content=_text(message.get("content")) if isinstance(message, dict) else "",
            finish_reason=choices[0].get("finish_reason"),
            input_tokens=_count(usage.get("prompt_tokens")),
            output_tokens=_count(usage.get("completion_tokens")),
        )

    def decoder(self) -> Decoder:
        return _OpenAIStream()


class _OpenAIStream:
    def feed(self, event: str | None, data: bytes) -> Delta | None:
        if data.strip() == b"[DONE]":
            return Delta(done=True)
        doc = _json(data)
        _upstream_error(doc)
        delta = Delta()
        choices = doc.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            change = choices[0].get("delta")
            if isinstance(change, dict):
                delta.text = _text(change.get("content"))
            delta.finish_reason = choices[0].get("finish_reason")
        usage = doc.get("usage")
        if isinstance(usage, dict):
            delta.input_tokens = _count(usage.get("prompt_tokens"))
            delta.output_tokens = _count(usage.get("completion_tokens"))
        return delta


ANTHROPIC_VERSION = "2023-06-01"


class Anthropic:
    """``POST {base_url}/v1/messages``; the base URL is the host, as Anthropic's SDKs take
    it (``https://api.anthropic.com``). System messages become the ``system`` field."""

    def url(self, base_url: str) -> str:
        return base_url.rstrip("/") + "/v1/messages"

    def headers(self, credential: str | None) -> list[tuple[str, str]]:
        headers = [
            ("content-type", "application/json"),
            ("accept", "application/json"),
            ("anthropic-version", ANTHROPIC_VERSION),
        ]
        if credential:
            headers.append(("x-api-key", credential))
        return headers

    def body(self, call: Call, stream: bool) -> bytes:
        system = [m["content"] for m in call.messages if m["role"] == "system"]
        doc: Json = {
            "model": call.model,
            "max_tokens": call.max_tokens,
            "messages": [m for m in call.messages if m["role"] != "system"],
        }
        if system:
            doc["system"] = "\n\n".join(system)
        if call.temperature is not None:
            # Anthropic's range is 0 to 1; the gateway's is OpenAI's 0 to 2.
            doc["temperature"] = min(call.temperature, 1.0)
        if call.top_p is not None:
            doc["top_p"] = call.top_p
        if call.stop:
            doc["stop_sequences"] = call.stop
        if stream:
            doc["stream"] = True
        return orjson.dumps(doc)

    def reply(self, body: bytes) -> Reply:
        doc = _json(body)
        _upstream_error(doc)
        content = doc.get("content")
        if not isinstance(content, list):
            raise ProtocolError("the provider's answer has no content")
        usage = _obj(doc, "usage")
        return Reply(
            content="".join(
                _text(block.get("text"))
                for block in content
                if isinstance(block, dict) and block.get("type") == "text"
            ),
            finish_reason=doc.get("stop_reason"),
            input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")),
        )

    def decoder(self) -> Decoder:
        return _AnthropicStream()


class _AnthropicStream:
    def feed(self, event: str | None, data: bytes) -> Delta | None:
        if event == "ping":
            return None
        doc = _json(data)
        _upstream_error(doc)
        kind = event or doc.get("type")
        if kind == "message_start":
            message = _obj(doc, "message")
            usage = _obj(message, "usage")
            return Delta(
                input_tokens=_count(usage.get("input_tokens")),
                output_tokens=_count(usage.get("output_tokens")),
            )
        if kind == "content_block_delta":
            change = doc.get("delta")
            if isinstance(change, dict) and change.get("type") == "text_delta":
                return Delta(text=_text(change.get("text")))
            return None
        if kind == "message_delta":
            change = _obj(doc, "delta")
            usage = _obj(doc, "usage")
            return Delta(
                finish_reason=change.get("stop_reason"),
                input_tokens=_count(usage.get("input_tokens")),
                output_tokens=_count(usage.get("output_tokens")),
            )
        if kind == "message_stop":
            return Delta(done=True)
        return None  # content_block_start/stop and events added later


ADAPTERS: dict[str, Adapter] = {"openai": OpenAI(), "anthropic": Anthropic()}
# What each kind can do, as GET /v1/providers reports it.
CAPABILITIES = {
    "openai": {"chat": True, "stream": True, "system_messages": True, "stop_sequences": 4},
    "anthropic": {"chat": True, "stream": True, "system_messages": True, "stop_sequences": 4},
}
