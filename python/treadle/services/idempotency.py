"""The rule every Idempotency-Key follows, wherever it is checked: one key, one request."""

from __future__ import annotations

from treadle import _core
from treadle.errors import ApiError


def check_same(stored_fingerprint: str, fingerprint: str) -> None:
    """422 unless the request is the one first sent with this Idempotency-Key."""
    if not _core.constant_time_eq(stored_fingerprint.encode(), fingerprint.encode()):
        raise ApiError(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request; use a new key",
        )
