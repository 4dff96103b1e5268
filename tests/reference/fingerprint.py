"""Reference idempotency fingerprint: what ``treadle._core.fingerprint`` and
``canonical_json`` compute, with ``json`` and ``hashlib``.

The canonical form is ``json.dumps(json.loads(text), sort_keys=True, separators=(",",
":"), ensure_ascii=False)`` over strict UTF-8, refusing (so hashing the body raw) what
that cannot turn back into UTF-8 or what the Rust side bounds: ``NaN``/``Infinity``,
floats beyond a double, integers over 4,300 digits, nesting deeper than 128.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

DOMAIN = b"treadle/idempotency/v1\n"
MAX_DEPTH = 128
MAX_INT_DIGITS = 4300


class _NotCanonical(ValueError):
    pass


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotCanonical(text)
    return value


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _NotCanonical("integer too long")
    return int(text)


def _parse_constant(name: str) -> Any:
    raise _NotCanonical(name)


def _depth(value: Any) -> int:
    """How deeply containers nest in ``value`` (a scalar is 0)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in item)
    return deepest


def canonical_json(body: bytes) -> bytes | None:
    try:
        value = json.loads(
            body.decode("utf-8"),
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_parse_constant,
        )
        if _depth(value) > MAX_DEPTH:
            return None
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8")
    except (ValueError, RecursionError):  # also UnicodeError and JSONDecodeError
        return None


def media_type(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip(" \t")
    return media.encode().lower().decode() or "application/json"


def is_json(media: str) -> bool:
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def fingerprint(method: str, path: str, body: bytes, content_type: str | None = None) -> str:
    media = media_type(content_type)
    canonical = canonical_json(body) if is_json(media) else None
    h = hashlib.sha256(DOMAIN)
    for part in (method.encode(), path.encode(), media.encode()):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    if canonical is None:
        h.update(b"r" + body)
    else:
        h.update(b"c" + canonical)
    return h.hexdigest()
