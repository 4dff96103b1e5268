"""The one clock. Tests and services read time only through here."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def epoch() -> int:
    return int(time.time())


_stamp_ms = -1
_stamp = ""
_second = -1
_second_text = ""


def rfc3339() -> str:
    """Current UTC time as RFC 3339 with milliseconds, formatted once per millisecond."""
    global _stamp_ms, _stamp, _second, _second_text
    ms = time.time_ns() // 1_000_000
    if ms != _stamp_ms:
        second, milli = divmod(ms, 1000)
        if second != _second:
            _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            _second = second
        _stamp = f"{_second_text}.{milli:03d}Z"
        _stamp_ms = ms
    return _stamp
