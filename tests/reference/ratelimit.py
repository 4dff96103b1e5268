"""Reference GCRA: the arithmetic of ``treadle._core.RateLimiter`` and ``GCRA_LUA``, in
integer microseconds, with the state in a dict."""

from __future__ import annotations

import time


class ReferenceLimiter:
    def __init__(self) -> None:
        self.tats: dict[str, int] = {}

    def check(
        self,
        key: str,
        limit: int,
        period_seconds: float,
        cost: int = 1,
        now: float | None = None,
    ) -> tuple[bool, int, int, float, float]:
        if limit < 1 or not period_seconds > 0:
            raise ValueError("bad quota")
        now_us = round((time.time() if now is None else now) * 1e6)
        interval = max(round(period_seconds * 1e6) // limit, 1)
        burst = interval * limit
        tat = max(self.tats.get(key, now_us), now_us)
        new_tat = tat + interval * cost
        allow_at = new_tat - burst
        if now_us < allow_at:
            remaining = max(now_us - (tat - burst), 0) // interval
            return False, limit, remaining, (tat - now_us) / 1e6, (allow_at - now_us) / 1e6
        if cost > 0:
            self.tats[key] = new_tat
        remaining = max(now_us - allow_at, 0) // interval
        return True, limit, remaining, (new_tat - now_us) / 1e6, 0.0
