"""The one clock. Tests and services read time only through here."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def epoch() -> int:
    return int(time.time())


_stamp_second = -1
_stamp_prefix = ""


def rfc3339() -> str:
    """Current UTC time as RFC 3339 with milliseconds; the seconds part is cached."""
    global _stamp_second, _stamp_prefix
    t = time.time()
    second = int(t)
    if second != _stamp_second:
        _stamp_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _stamp_second = second
    return f"{_stamp_prefix}.{int((t - second) * 1000):03d}Z"
