"""The bare Granian RSGI hello-world: the baseline for the Granian rows of http_compare.py.

Alone, from the repository root: ``granian --interface rsgi bench.hello_granian:app``.
"""

from __future__ import annotations

from typing import Any

BODY = b'{"status":"ok"}'
HEADERS = [("content-type", "application/json")]


async def app(scope: Any, proto: Any) -> None:
    proto.response_bytes(200, HEADERS, BODY)
