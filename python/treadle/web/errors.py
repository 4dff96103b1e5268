"""The one error type of the API: an HTTP status with a stable code and a message."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Raised anywhere below the kernel; the kernel turns it into the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or []

    @classmethod
    def bad_request(cls, message: str, **details: Any) -> ApiError:
        return cls(400, "bad_request", message, details)

    @classmethod
    def validation(cls, message: str, path: str, **details: Any) -> ApiError:
        return cls(400, "validation_failed", message, {"path": path, **details})

    @classmethod
    def unauthenticated(cls, message: str = "missing or invalid credentials") -> ApiError:
        return cls(401, "unauthenticated", message, headers=[("www-authenticate", "Bearer")])

    @classmethod
    def forbidden(cls, message: str) -> ApiError:
        return cls(403, "forbidden", message)

    @classmethod
    def not_found(cls, message: str = "no such resource") -> ApiError:
        return cls(404, "not_found", message)

    @classmethod
    def method_not_allowed(cls, method: str, allowed: list[str]) -> ApiError:
        return cls(
            405,
            "method_not_allowed",
            f"{method} is not allowed here; use one of {', '.join(allowed)}",
            {"allowed": allowed},
            headers=[("allow", ", ".join(allowed))],
        )

    @classmethod
    def conflict(cls, message: str, **details: Any) -> ApiError:
        return cls(409, "conflict", message, details)

    @classmethod
    def payload_too_large(cls, limit: int) -> ApiError:
        return cls(
            413,
            "payload_too_large",
            f"request body is larger than the limit of {limit} bytes",
            {"limit_bytes": limit},
        )

    @classmethod
    def unsupported_media_type(cls, message: str) -> ApiError:
        return cls(415, "unsupported_media_type", message)

    @classmethod
    def rate_limited(cls, message: str, retry_after: int) -> ApiError:
        return cls(
            429,
            "rate_limited",
            message,
            {"retry_after_seconds": retry_after},
            headers=[("retry-after", str(retry_after))],
        )

    @classmethod
    def unavailable(cls, message: str, retry_after: int = 1) -> ApiError:
        return cls(503, "unavailable", message, headers=[("retry-after", str(retry_after))])

    @classmethod
    def internal(cls) -> ApiError:
        return cls(500, "internal", "internal error; the request id identifies it in the logs")
