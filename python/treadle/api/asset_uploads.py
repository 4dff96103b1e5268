"""What an asset upload says about itself: name, content type and labels, from the query
(a raw body) or from the form fields before the file (``multipart/form-data``), and the
file's bytes out of a multipart body as they stream in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header

from treadle.web.errors import ApiError

MAX_NAME_CHARS = 255
MAX_LABELS = 32
MAX_LABEL_VALUE_CHARS = 256
# Form fields (everything but the file) may hold this much in all.
MAX_FIELD_BYTES = 64 * 1024
DEFAULT_TYPE = "application/octet-stream"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]{1,127}"
# RFC 9110 media type: type/subtype, then parameters (a token or a quoted string each).
MEDIA_TYPE = (
    rf"^{_TOKEN}/{_TOKEN}"
    rf"( *; *{_TOKEN}=({_TOKEN}|\"[^\"\\\x00-\x1f\x7f]{{0,200}}\"))*(?!\n)$"
)
_MEDIA_TYPE = re.compile(MEDIA_TYPE)
LABEL_KEY = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}(?!\n)$"
_LABEL_KEY = re.compile(LABEL_KEY)
DIGEST = r"^blake3:[0-9a-f]{64}(?!\n)$"
_DIGEST = re.compile(DIGEST)


def digest_of(raw: str, where: str) -> str:
    if not _DIGEST.match(raw):
        raise ApiError.validation(
            "a digest is blake3: and 64 lowercase hex digits (as assets report it)", where
        )
    return raw


def name_of(raw: str | None, where: str) -> str:
    if not raw:
        raise ApiError.validation("name is required: what to call the asset", where)
    if len(raw) > MAX_NAME_CHARS or _CONTROL.search(raw):
        raise ApiError.validation(
            f"name must be one line of at most {MAX_NAME_CHARS} characters", where
        )
    return raw


def content_type_of(raw: str | None, where: str) -> str:
    if raw is None or not raw.strip():
        return DEFAULT_TYPE
    value = raw.strip()
    if len(value) > 255 or not _MEDIA_TYPE.match(value):
        raise ApiError.validation(
            "content type must be a media type like text/csv or application/pdf", where
        )
    return value


def labels_of(pairs: list[str], where: str) -> dict[str, str]:
    """``key=value`` pairs: at most 32, keys like ``env`` or ``team.io/owner``, values one
    line of at most 256 characters."""
    if len(pairs) > MAX_LABELS:
        raise ApiError.validation(f"give at most {MAX_LABELS} labels", where)
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _LABEL_KEY.match(key):
            raise ApiError.validation(
                "a label is key=value, the key 1-63 of letters, digits and . _ / -"
                " (starting with a letter or digit)",
                where,
            )
        if len(value) > MAX_LABEL_VALUE_CHARS or _CONTROL.search(value):
            raise ApiError.validation(
                f"a label's value is one line of at most {MAX_LABEL_VALUE_CHARS} characters",
                where,
            )
        if key in labels:
            raise ApiError.validation(f"label {key!r} is given twice", where)
        labels[key] = value
    return labels


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` body; None for any other media type."""
    kind, options = parse_options_header(content_type)
    if kind.lower() != b"multipart/form-data":
        return None
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise ApiError.bad_request("multipart/form-data needs a boundary of 1 to 70 characters")
    return boundary


class FormFile:
    """The one ``file`` part of a multipart body, streamed; ``meta`` is filled from the
    fields before it (``name``, ``label``) and its own headers, when it begins."""

    def __init__(self, boundary: bytes, meta: dict[str, Any]) -> None:
        self.meta = meta
        self.fields: dict[str, list[str]] = {}
        self._field_bytes = 0
        self._out: list[bytes] = []
        self._headers: dict[str, str] = {}
        self._header = [bytearray(), bytearray()]
        self._part: str | None = None  # "file", or the name of a field
        self._value = bytearray()
        self._file_seen = False
        self._ended = False
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_header_field": lambda d, s, e: self._header[0].extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._header[1].extend(d[s:e]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def _begin(self) -> None:
        self._headers, self._part, self._value = {}, None, bytearray()

    def _header_end(self) -> None:
        name, value = (bytes(part).decode("latin-1") for part in self._header)
        self._headers[name.lower()] = value
        self._header = [bytearray(), bytearray()]

    def _headers_done(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._file_seen:
            raise ApiError.bad_request(
                "send the fields (name, label) before the file part, and one file only"
            )
        if name != "file":
            self._part = name
            return
        self._part, self._file_seen = "file", True
        filename = options.get(b"filename", b"").decode("utf-8", "replace")
        names = self.fields.get("name") or ([filename] if filename else [])
        if len(names) > 1:
            raise ApiError.validation("give one name", "form.name")
        self.meta.update(
            name=name_of(names[0] if names else None, "form.name"),
            content_type=content_type_of(self._headers.get("content-type"), "form.file"),
            labels=labels_of(self.fields.get("label", []), "form.label"),
        )

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self._out.append(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELD_BYTES:
            raise ApiError.bad_request(f"form fields may hold at most {MAX_FIELD_BYTES} bytes")
        self._value += data[start:end]

    def _part_end(self) -> None:
        if self._part is not None and self._part != "file":
            try:
                value = self._value.decode()
            except UnicodeDecodeError:
                raise ApiError.validation("form fields must be UTF-8 text", "form") from None
            self.fields.setdefault(self._part, []).append(value)

    def _end(self) -> None:
        self._ended = True

    async def chunks(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in body:
                self._parser.write(chunk)
                for piece in self._out:
                    yield piece
                self._out.clear()
        except ValueError as exc:  # the parser's errors (a malformed body)
            raise ApiError.bad_request(f"malformed multipart body: {exc}") from None
        if not self._ended:
            raise ApiError.bad_request("the multipart body ended before its closing boundary")
        if not self._file_seen:
            raise ApiError.bad_request("the multipart body has no part named 'file'")
