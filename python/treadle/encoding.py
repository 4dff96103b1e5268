"""What orjson needs to know beyond its own types."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson


def default(value: Any) -> float:
    # PostgreSQL numeric columns (quantities, costs) arrive as Decimal; JSON has numbers.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encodable(value: Any) -> bool:
    """Whether the response encoder can write ``value`` (orjson refuses, say, integers
    beyond 64 bits, which PostgreSQL's jsonb keeps)."""
    try:
        orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError is one
        return False
    return True
