"""How the HTTP transport answers the one error type (``treadle.errors.ApiError``): the
status of each code, and the headers some codes carry."""

from __future__ import annotations

import logging

from treadle.errors import ApiError

__all__ = ["HTTP_STATUS", "ApiError", "headers", "status"]

log = logging.getLogger("treadle.web")

HTTP_STATUS = {
    "bad_request": 400,
    "validation_failed": 400,
    "url_refused": 400,
    "unauthenticated": 401,
    "budget_exceeded": 402,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "idempotency_in_flight": 409,
    "lease_lost": 409,
    "mail_link_spent": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "range_not_satisfiable": 416,
    "idempotency_key_reused": 422,
    "idempotency_key_required": 428,
    "rate_limited": 429,
    "too_many_streams": 429,
    "internal": 500,
    "provider_error": 502,
    "unavailable": 503,
    "provider_unavailable": 503,
    "provider_timeout": 504,
}


def status(error: ApiError) -> int:
    found = HTTP_STATUS.get(error.code)
    if found is None:
        # A code without its entry is a bug (tests/unit/test_errors.py looks for them).
        log.error("error code %r has no HTTP status; answering 500", error.code)
        return 500
    return found


def headers(error: ApiError) -> list[tuple[str, str]]:
    out = list(error.metadata)
    if error.retry_after is not None:
        out.append(("retry-after", str(error.retry_after)))
    if error.code == "unauthenticated":
        out.append(("www-authenticate", "Bearer"))
    elif error.code == "method_not_allowed":
        out.append(("allow", ", ".join(error.details["allowed"])))
    elif error.code == "payload_too_large":
        # The rest of the body was not read, so the connection cannot carry another
        # request: say so, or a client sends its next one into a closing socket.
        out.append(("connection", "close"))
    elif error.code == "range_not_satisfiable":
        out.append(("content-range", f"bytes */{error.details['size']}"))
    return out
