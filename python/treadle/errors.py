"""The one error type: a stable code, a message that says what to fix, and details.

Raised anywhere (services, stores, handlers) and turned into its own form by each
transport: the HTTP kernel maps the code to a status and headers (``treadle.web.errors``).
Nothing here knows a transport; a code is the contract, so a new code needs its entry in
each transport's table (a unit test checks every code raised has one).
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        retry_after: int | None = None,
        metadata: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
        # Seconds after which trying again may succeed (rate limits, busy keys, outages).
        self.retry_after = retry_after
        # Name-value pairs a transport sends alongside the error (HTTP headers, gRPC
        # metadata): the RateLimit fields of a refused request.
        self.metadata = metadata or []

    def at(self, path: str) -> ApiError:
        """The same error, its details pointing at ``path`` (a JSONPath of the input)."""
        return ApiError(
            self.code,
            self.message,
            {**self.details, "path": path},
            retry_after=self.retry_after,
            metadata=self.metadata,
        )

    @classmethod
    def bad_request(cls, message: str, **details: Any) -> ApiError:
        return cls("bad_request", message, details)

    @classmethod
    def validation(cls, message: str, path: str, **details: Any) -> ApiError:
        return cls("validation_failed", message, {"path": path, **details})

    @classmethod
    def unauthenticated(cls, message: str = "missing or invalid credentials") -> ApiError:
        return cls("unauthenticated", message)

    @classmethod
    def forbidden(cls, message: str) -> ApiError:
        return cls("forbidden", message)

    @classmethod
    def not_found(cls, message: str = "no such resource") -> ApiError:
        return cls("not_found", message)

    @classmethod
    def method_not_allowed(cls, method: str, allowed: list[str]) -> ApiError:
        return cls(
            "method_not_allowed",
            f"{method} is not allowed here; use one of {', '.join(allowed)}",
            {"allowed": allowed},
        )

    @classmethod
    def conflict(cls, message: str, **details: Any) -> ApiError:
        return cls("conflict", message, details)

    @classmethod
    def payload_too_large(cls, limit: int) -> ApiError:
        return cls(
            "payload_too_large",
            f"request body is larger than the limit of {limit} bytes",
            {"limit_bytes": limit},
        )

    @classmethod
    def unsupported_media_type(cls, message: str) -> ApiError:
        return cls("unsupported_media_type", message)

    @classmethod
    def rate_limited(cls, message: str, retry_after: int) -> ApiError:
        return cls(
            "rate_limited", message, {"retry_after_seconds": retry_after}, retry_after=retry_after
        )

    @classmethod
    def unavailable(cls, message: str, retry_after: int = 1) -> ApiError:
        return cls("unavailable", message, retry_after=retry_after)

    @classmethod
    def internal(cls) -> ApiError:
        return cls("internal", "internal error; the request id identifies it in the logs")
