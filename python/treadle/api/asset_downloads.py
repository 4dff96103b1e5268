"""Answering a download: one byte range or the whole (RFC 9110 ranges, conditional
requests), the digest as a strong ETag, and headers that keep uploaded content from ever
running as a page of the API's origin."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from treadle.web.errors import ApiError
from treadle.web.request import Request
from treadle.web.response import Response

_RANGE = re.compile(r"^bytes=([0-9]{0,19})-([0-9]{0,19})$")


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, length) of the one range asked for; None to send everything."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None  # a unit we do not know: ignored (RFC 9110 14.2)
    if "," in spec:
        return None  # several ranges: the whole content instead, as RFC 9110 allows
    match = _RANGE.match("bytes=" + spec.strip())
    if match is None or match.groups() == ("", ""):
        raise _unsatisfiable(size, "Range must be bytes=FIRST-LAST, bytes=FIRST- or bytes=-N")
    first, last = match.groups()
    if first == "":  # the last N bytes
        count = min(int(last), size)
        if count == 0:
            raise _unsatisfiable(size, "the range asks for no bytes")
        return size - count, count
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size, f"the range lies outside the content's {size} bytes")
    return start, end - start + 1


def _unsatisfiable(size: int, message: str) -> ApiError:
    return ApiError(
        "range_not_satisfiable",
        message,
        {"size": size},
    )


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


def _disposition(name: str) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:255] or "asset"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def serve(req: Request, asset: dict[str, Any]) -> Response:
    size, digest = int(asset["size"]), asset["digest"]
    etag = f'"{digest}"'
    headers = [
        ("etag", etag),
        ("accept-ranges", "bytes"),
        ("cache-control", "private, max-age=0, must-revalidate"),
        ("content-disposition", _disposition(asset["name"])),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "sandbox; default-src 'none'"),
    ]
    kind = asset["content_type"]
    inm = req.headers.get("if-none-match")
    if inm is not None and _matches(inm, etag):
        return Response(304, b"", headers, content_type=kind)
    status, start, length = 200, 0, size
    wanted = req.headers.get("range")
    if_range = req.headers.get("if-range")
    if wanted is not None and (if_range is None or if_range.strip() == etag):
        picked = _byte_range(wanted, size)
        if picked is not None:
            status, (start, length) = 206, picked
            headers.append(("content-range", f"bytes {start}-{start + length - 1}/{size}"))
    headers.append(("content-length", str(length)))
    if req.method == "HEAD" or length == 0:
        return Response(status, b"", headers, content_type=kind)
    chunks = await req.app.assets.read(asset["organization_id"], digest, start, length)
    file = getattr(chunks, "file", None)  # a local file: the server may send it itself
    return Response(status, b"", headers, content_type=kind, stream=chunks, file=file)
