"""What keeps a failing provider from failing the gateway: upstream errors sorted into
stable codes, retries with backoff that honours ``Retry-After``, and a circuit breaker per
provider.

The breaker is per process (like the HTTP pool it protects): each process learns on its
own that a provider is down, after ``failures`` consecutive failures, and stops calling it
for ``open_seconds``; then one call goes through as a probe, whose success closes it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from treadle.errors import ApiError

# Upstream statuses worth another attempt: rate limited, or the provider's own trouble
# (529: Anthropic's "overloaded").
RETRIABLE = frozenset((408, 429, 500, 502, 503, 504, 529))


class Upstream(Exception):
    """A provider call that did not give an answer; ``api_error`` is what the caller sees.

    ``code``: provider_error (a bad answer, a refused request, a broken connection),
    provider_timeout, or provider_unavailable (rate limited past our retries, or the
    breaker is open). ``retriable``: another attempt at the same model may succeed.
    ``counts``: the failure says the provider is unwell (for the breaker)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retriable: bool = False,
        counts: bool = True,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.retriable = retriable
        self.counts = counts
        self.reason = reason

    def api_error(self, provider: str, model: str, attempts: int) -> ApiError:
        details: dict[str, object] = {"provider": provider, "model": model, "attempts": attempts}
        if self.status is not None:
            details["upstream_status"] = self.status
        if self.reason is not None:
            details["reason"] = self.reason
        wait = None
        if self.code == "provider_unavailable":
            wait = max(1, round(self.retry_after or 1))
            details["retry_after_seconds"] = wait
        return ApiError(self.code, self.message, details, retry_after=wait)


def from_status(status: int, retry_after: float | None) -> Upstream:
    """The failure an upstream status other than 200 means."""
    if status == 429:
        return Upstream(
            "provider_unavailable",
            "the provider is rate limiting these calls; retry later",
            status=status,
            retry_after=retry_after,
            retriable=True,
            counts=False,  # busy, not broken
            reason="rate_limited",
        )
    if status in RETRIABLE:
        return Upstream(
            "provider_error",
            f"the provider failed with HTTP {status}",
            status=status,
            retry_after=retry_after,
            retriable=True,
        )
    if status in (401, 403):
        return Upstream(
            "provider_error",
            f"the provider refused the credential (HTTP {status}); check the provider's "
            "credential secret",
            status=status,
            counts=False,
            reason="credential_rejected",
        )
    return Upstream(
        "provider_error",
        f"the provider refused the request (HTTP {status}); check the model and parameters",
        status=status,
        counts=False,
        reason="request_rejected",
    )


def backoff(attempt: int, base: float, cap: float, asked: float | None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` from 1), or None to give
    up: what ``Retry-After`` asked when it asked (and it is within ``cap``), otherwise
    exponential with full jitter."""
    if asked is not None:
        return asked if asked <= cap else None
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False


class Breaker:
    def __init__(self, failures: int, open_seconds: float) -> None:
        self.threshold = max(1, failures)
        self.open_seconds = open_seconds
        self._circuits: dict[tuple[object, str], _Circuit] = {}

    def admit(self, key: tuple[object, str]) -> float | None:
        """None when a call may go; otherwise the seconds until one may."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.failures < self.threshold:
            return None
        left = circuit.open_until - time.monotonic()
        if left > 0:
            return left
        if circuit.probing:
            return 1.0  # a probe is out: the others wait for its verdict
        circuit.probing = True
        return None

    def success(self, key: tuple[object, str]) -> None:
        self._circuits.pop(key, None)

    def failure(self, key: tuple[object, str]) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        circuit.probing = False
        if circuit.failures >= self.threshold:
            circuit.open_until = time.monotonic() + self.open_seconds

    def release(self, key: tuple[object, str]) -> None:
        """A call admitted but ended without a verdict (the caller left): another probe
        may go."""
        circuit = self._circuits.get(key)
        if circuit is not None:
            circuit.probing = False

    def state(self, key: tuple[object, str]) -> str:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.failures < self.threshold:
            return "closed"
        return "open" if circuit.open_until > time.monotonic() else "half_open"

    def refusal(self, wait: float) -> Upstream:
        return Upstream(
            "provider_unavailable",
            "the provider has been failing; calls to it are paused (circuit open)",
            retry_after=wait,
            counts=False,
            reason="circuit_open",
        )
