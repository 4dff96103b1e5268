"""Request bodies: JSON, YAML or TOML by Content-Type, validated into typed structs in one pass."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from treadle.web.errors import ApiError

Decoder = Callable[[bytes, type], Any]


def _json(data: bytes, kind: type) -> Any:
    return msgspec.json.decode(data, type=kind)


def _yaml(data: bytes, kind: type) -> Any:
    return msgspec.yaml.decode(data, type=kind)


def _toml(data: bytes, kind: type) -> Any:
    return msgspec.toml.decode(data, type=kind)


DECODERS: dict[str, tuple[str, Decoder]] = {
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


def decode(data: bytes, kind: type, content_type: str | None, encoding: str | None) -> Any:
    if encoding and encoding.strip().lower() != "identity":
        raise ApiError.unsupported_media_type(
            f"Content-Encoding {encoding} is not supported; send the body uncompressed"
        )
    mtype = media_type(content_type)
    found = DECODERS.get(mtype)
    if found is None:
        raise ApiError.unsupported_media_type(
            f"Content-Type {mtype} is not supported; send {SUPPORTED}"
        )
    label, decoder = found
    if not data.strip():
        raise ApiError.bad_request(f"a {label} request body is required")
    try:
        return decoder(data, kind)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_PATH.search(message)
        path = match.group(1) if match else "$"
        raise ApiError.validation(_AT_PATH.sub("", message), path) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ApiError.bad_request(f"malformed {label} body: {exc}") from None
    except RecursionError:
        raise ApiError.bad_request(f"{label} body is nested too deeply") from None
