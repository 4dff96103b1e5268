"""Request bodies: JSON, YAML or TOML by Content-Type, bounded, then validated into typed structs.

Every format is first parsed into plain values and walked once (``_bounded``) before any
struct is built: depth and node count are capped, YAML anchors and aliases are refused
before anything is constructed (a few hundred bytes of aliases expand to gigabytes), and
only what can be stored and returned is let through — strings without NUL (PostgreSQL
refuses it), string keys, integers in the signed 64-bit range, finite floats. Times that
YAML and TOML parse natively become ISO strings, so typed fields read them as from JSON and
free-form fields (a job's input) hold only JSON. Whole floats become integers (JSON has one
kind of number; a document may say ``203.0`` where an integer is meant).
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import yaml

from treadle.web.errors import ApiError

INT_MIN, INT_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Limits:
    depth: int = 32
    nodes: int = 100_000


DEFAULT_LIMITS = Limits()


def _json(data: bytes, limits: Limits) -> Any:
    return msgspec.json.decode(data)


def _yaml(data: bytes, limits: Limits) -> Any:
    _yaml_events_bounded(data, limits)
    return yaml.load(data, Loader=yaml.CSafeLoader)


def _toml(data: bytes, limits: Limits) -> Any:
    return msgspec.toml.decode(data)


Parser = Callable[[bytes, Limits], Any]
PARSERS: dict[str, tuple[str, Parser]] = {
    "application/json": ("JSON", _json),
    "application/yaml": ("YAML", _yaml),
    "application/x-yaml": ("YAML", _yaml),
    "text/yaml": ("YAML", _yaml),
    "application/toml": ("TOML", _toml),
}
SUPPORTED = "application/json, application/yaml or application/toml"

_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")


def media_type(content_type: str | None) -> str:
    if not content_type:
        return "application/json"
    main, _, params = content_type.partition(";")
    charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        raise ApiError.unsupported_media_type(
            f"charset {charset.group(1)} is not supported; send UTF-8"
        )
    return main.strip().lower()


def decode(
    data: bytes,
    kind: type,
    content_type: str | None,
    encoding: str | None,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    if encoding and encoding.strip().lower() != "identity":
        raise ApiError.unsupported_media_type(
            f"Content-Encoding {encoding} is not supported; send the body uncompressed"
        )
    mtype = media_type(content_type)
    found = PARSERS.get(mtype)
    if found is None:
        raise ApiError.unsupported_media_type(
            f"Content-Type {mtype} is not supported; send {SUPPORTED}"
        )
    label, parse = found
    if not data.strip():
        raise ApiError.bad_request(f"a {label} request body is required")
    try:
        tree = parse(data, limits)
    except msgspec.ValidationError as exc:  # a JSON number beyond what a float holds
        raise _validation(exc) from None
    except (msgspec.DecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ApiError.bad_request(f"malformed {label} body: {exc}") from None
    except RecursionError:
        raise _too_deep(label, limits) from None
    return convert(_bounded(tree, label, limits), kind)


def convert(tree: Any, kind: type, at: str = "$") -> Any:
    """``tree`` (a decoded body, or the part of one found at ``at``) as ``kind``; a 400
    naming the field that does not fit otherwise."""
    try:
        return msgspec.convert(tree, kind)
    except msgspec.ValidationError as exc:
        raise _validation(exc, at) from None


def _validation(exc: msgspec.ValidationError, at: str = "$") -> ApiError:
    message = str(exc)
    match = _AT_PATH.search(message)
    path = match.group(1) if match else "$"
    return ApiError.validation(_AT_PATH.sub("", message), at + path[1:])


def _too_deep(label: str, limits: Limits) -> ApiError:
    return ApiError.bad_request(
        f"{label} body is nested more than {limits.depth} levels deep; flatten it"
    )


def _too_many(label: str, limits: Limits) -> ApiError:
    return ApiError.bad_request(
        f"{label} body has more than {limits.nodes} values; send less in one request"
    )


def _yaml_events_bounded(data: bytes, limits: Limits) -> None:
    """Refuse anchors, aliases, excess depth and size from the event stream, before the
    loader builds (and expands) anything."""
    depth = nodes = 0
    for event in yaml.parse(data, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ApiError.bad_request(
                "YAML anchors and aliases (&name, *name) are not accepted; write the values out"
            )
        if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            nodes += 1
            if nodes > limits.nodes:
                raise _too_many("YAML", limits)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limits.depth:
                raise _too_deep("YAML", limits)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _bounded(tree: Any, label: str, limits: Limits) -> Any:
    """The tree with only storable, returnable values; 400 with the path of the first that
    is not. It recurses no deeper than the depth limit."""
    budget = [limits.nodes]

    def value(item: Any, path: str, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise _too_many(label, limits)
        if isinstance(item, str):
            if "\x00" in item:
                raise ApiError.validation("text may not contain NUL (\\u0000)", path)
            return item
        if isinstance(item, bool) or item is None:
            return item
        if isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                raise ApiError.validation(
                    "integers must be within the signed 64-bit range (-2^63 to 2^63-1)", path
                )
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ApiError.validation("numbers must be finite (no NaN or Infinity)", path)
            return int(item) if item.is_integer() and INT_MIN <= item <= INT_MAX else item
        if depth >= limits.depth:
            raise _too_deep(label, limits)
        if isinstance(item, dict):
            out = {}
            for key, inner in item.items():
                if not isinstance(key, str):
                    raise ApiError.validation(f"keys must be text, not {key!r}", path)
                if "\x00" in key:
                    raise ApiError.validation("keys may not contain NUL (\\u0000)", path)
                out[key] = value(inner, f"{path}.{key}", depth + 1)
            return out
        if isinstance(item, list):
            return [value(inner, f"{path}[{i}]", depth + 1) for i, inner in enumerate(item)]
        if isinstance(item, (datetime.datetime, datetime.date, datetime.time)):
            return item.isoformat()
        raise ApiError.validation(
            f"{type(item).__name__} values are not accepted in a {label} body; send JSON types",
            path,
        )

    return value(tree, "$", 0)
