"""What orjson needs to know beyond its own types."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def default(value: Any) -> float:
    # PostgreSQL numeric columns (quantities, costs) arrive as Decimal; JSON has numbers.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
