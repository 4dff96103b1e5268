"""The ``Retry-After`` header of an answer from a server treadle calls (webhook receivers,
model providers): how long it asks the caller to wait."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A wait asked for past this is taken as this.
MAX_SECONDS = 86_400.0


def parse(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), if readable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        seconds = moment.timestamp() - current
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, MAX_SECONDS))
