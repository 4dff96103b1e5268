"""A pure-Python twin of ``treadle._core.parse_telemetry``: the same checks in the same
order, the same messages and the same COPY bytes (the rules are in the docs of
``crates/treadle-core/src/ingest.rs``). It is the benchmark's baseline and the tests'
cross-check of the Rust one; the telemetry service uses the Rust one.

A refused batch raises ``treadle._core.IngestError``, the class the Rust function raises.
zstd bodies need ``compression.zstd`` (Python 3.14) or the ``backports.zstd`` package;
without either they raise ``RuntimeError``.
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Sequence
from json.encoder import encode_basestring as _escape  # what json.dumps uses
from json.scanner import make_scanner
from typing import Any, NoReturn

from treadle._core import IngestError

COPY_STATEMENT = (
    "COPY telemetry_events (organization_id, agent_id, batch_id, seq, event_id, type, ts,"
    " attributes, received_at) FROM STDIN (FORMAT BINARY)"
)
MAX_DEPTH = 32
MAX_NUMBER_CHARS = 100
MAX_EXPONENT = 1000

_MAX_SEQ = 2**31 - 1
_PG_EPOCH_US = 946_684_800_000_000
_PG_FIRST_US = -211_813_488_000_000_000 + _PG_EPOCH_US
_PG_LAST_US = 9_223_371_331_200_000_000 - 1 + _PG_EPOCH_US
_FAR = 1 << 127  # a timestamp whose microseconds overflow a double: out of any range
_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_NULL = b"\xff\xff\xff\xff"
_FIELDS = frozenset({"type", "timestamp", "attributes", "id"})
_MISSING: Any = object()

_WS = re.compile(r"[ \t\n\r]*")
_TYPE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ID = re.compile(r"[!-~]{1,128}")
_CONTROL = re.compile("[\x00-\x1f\x7f]")

_NOT_ARRAY = "the body is not a JSON array of events"
INVALID_JSON = (
    "invalid_json",
    f"the line is not valid JSON or nests deeper than {MAX_DEPTH} levels",
)
_NOT_AN_OBJECT = ("not_an_object", "the event is not a JSON object")
_UNKNOWN_FIELD = (
    "unknown_field",
    "unknown field: an event has only type, timestamp, attributes and id",
)
_DUPLICATE_KEY = ("duplicate_key", "the event has the same key twice")
_MISSING_TYPE = ("invalid_type", "type is missing")
_INVALID_TYPE = (
    "invalid_type",
    "type must be a string of 1-64 characters from a-z, 0-9, `_`, `.` and `-`, starting"
    " with a letter or digit",
)
_TYPE_NOT_ALLOWED = ("type_not_allowed", "type is not one of the types allowed here")
_MISSING_TIMESTAMP = ("invalid_timestamp", "timestamp is missing")
_INVALID_TIMESTAMP = (
    "invalid_timestamp",
    "timestamp must be an RFC 3339 date-time with an offset, such as"
    " 2026-01-02T03:04:05.678Z, or a number of seconds since the Unix epoch",
)
_OUTSIDE_POSTGRES = (
    "timestamp_out_of_range",
    "timestamp is outside the range PostgreSQL can store",
)
_INVALID_ID = ("invalid_id", "id must be a string of 1-128 printable ASCII characters, no spaces")
_INVALID_ATTRIBUTES = ("invalid_attributes", "attributes must be a JSON object")
_DUPLICATE_ATTRIBUTE = ("duplicate_key", "attributes has the same key twice")
_NESTED = (
    "invalid_attribute_value",
    "attribute values must be strings, numbers, booleans or null, not objects or arrays",
)
_INVALID_NUMBER = (
    "invalid_attribute_value",
    f"attribute numbers must be at most {MAX_NUMBER_CHARS} characters with an exponent of at"
    f" most {MAX_EXPONENT}",
)

Reason = tuple[str, str]


class _Pairs(list[tuple[str, Any]]):
    """A JSON object: its members in order, duplicates kept."""


class _Number(str):
    """A JSON number: its literal, exactly as written."""


def _refuse(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


# What json.loads parses with, called one value at a time (typeshed mistypes its argument).
_scan = make_scanner(
    json.JSONDecoder(  # type: ignore[arg-type]
        object_pairs_hook=_Pairs, parse_float=_Number, parse_int=_Number, parse_constant=_refuse
    )
)


def _error(code: str, message: str) -> IngestError:
    error = IngestError(message)
    error.code = code
    error.message = message
    return error


def parse_telemetry(
    body: bytes,
    *,
    ndjson: bool = False,
    encoding: str = "identity",
    max_bytes: int = 8_388_608,
    max_events: int = 10_000,
    max_attributes: int = 64,
    max_key_bytes: int = 128,
    max_value_bytes: int = 4096,
    allowed_types: Sequence[str] | None = None,
    organization_id: bytes,
    agent_id: bytes,
    batch_id: bytes,
    received_at_us: int,
    max_age_seconds: int = 604_800,
    max_future_seconds: int = 300,
) -> tuple[int, list[tuple[int, str, str]], bytes]:
    """What ``_core.parse_telemetry`` returns for the same arguments, or raises."""
    limits = (max_bytes, max_events, max_attributes, max_key_bytes, max_value_bytes)
    if min(*limits, max_age_seconds, max_future_seconds) < 0:
        raise OverflowError("can't convert negative int to unsigned")
    if isinstance(allowed_types, str):
        raise TypeError("Can't extract `str` to `Vec`")
    name = encoding.lower() if encoding.isascii() else ""
    if name not in ("identity", "gzip", "zstd"):
        raise _error("bad_encoding", "unsupported Content-Encoding: send identity, gzip or zstd")
    ids = [_uuid("organization_id", organization_id), _uuid("agent_id", agent_id)]
    ids.append(_uuid("batch_id", batch_id))
    data = _decode(body, name, max_bytes)
    batch = _Batch(
        ids,
        received_at_us,
        allowed_types,
        (max_attributes, max_key_bytes, max_value_bytes),
        (max_age_seconds, max_future_seconds),
    )
    (_ndjson if ndjson else _json)(data, min(max_events, _MAX_SEQ), batch)
    return batch.accepted, batch.rejected, b"".join([_HEADER, *batch.rows, b"\xff\xff"])


def _uuid(name: str, value: bytes) -> bytes:
    if len(value) != 16:
        raise ValueError(f"{name} must be 16 bytes (a UUID's .bytes)")
    return bytes(value)


# --- decoding ---------------------------------------------------------------------------


def _decode(body: bytes, name: str, max_bytes: int) -> bytes:
    if name == "identity":
        if len(body) > max_bytes:
            raise _too_large(max_bytes, decompressed=False)
        return body
    bad = _error("bad_encoding", f"the body is not valid {name} data")
    if not body:
        raise bad
    if name == "gzip":
        return _inflate(body, max_bytes, bad)
    return _unzstd(body, max_bytes, bad)


def _too_large(max_bytes: int, *, decompressed: bool) -> IngestError:
    once = " once decompressed" if decompressed else ""
    return _error(
        "too_large", f"the body is larger than {max_bytes} bytes{once}: send smaller batches"
    )


def _inflate(data: bytes, max_bytes: int, bad: IngestError) -> bytes:
    """Gzip members one after the other, never holding more than ``max_bytes + 1``."""
    out = bytearray()
    while data:
        member = zlib.decompressobj(wbits=31)
        try:
            while True:
                out += member.decompress(data, max_bytes + 1 - len(out))
                if len(out) > max_bytes:
                    raise _too_large(max_bytes, decompressed=True)
                data = member.unconsumed_tail
                if member.eof or not data:
                    break
        except zlib.error:
            raise bad from None
        if not member.eof:
            raise bad
        data = member.unused_data
    return bytes(out)


def _unzstd(data: bytes, max_bytes: int, bad: IngestError) -> bytes:
    """zstd frames one after the other, with the window limit of the Rust decoder."""
    try:
        from compression import zstd
    except ImportError:
        try:
            from backports import zstd
        except ImportError:
            raise RuntimeError("zstd needs Python 3.14 or the backports.zstd package") from None
    log = min(max(max(max_bytes - 1, 0).bit_length(), 23), 31)
    options = {zstd.DecompressionParameter.window_log_max: log}
    out = bytearray()
    try:
        while data:
            frame = zstd.ZstdDecompressor(options=options)
            chunk = frame.decompress(data, max_bytes + 1 - len(out))
            while True:
                out += chunk
                if len(out) > max_bytes:
                    raise _too_large(max_bytes, decompressed=True)
                if frame.eof:
                    break
                if frame.needs_input:
                    raise bad
                chunk = frame.decompress(b"", max_bytes + 1 - len(out))
            data = frame.unused_data
    except zstd.ZstdError as exc:
        if "Frame requires too much memory" not in str(exc):
            raise bad from None
        raise _error(
            "too_large",
            f"the zstd data needs a window larger than {1 << log} bytes: compress with a"
            " lower level or a smaller window",
        ) from None
    return bytes(out)


# --- splitting --------------------------------------------------------------------------


def _json(data: bytes, max_events: int, batch: _Batch) -> None:
    stripped = data.lstrip(b" \t\n\r")
    if not stripped:
        raise _error("not_json", "the batch is empty: send a JSON array of events")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise _error("not_json", f"{_NOT_ARRAY}: it is not UTF-8") from None
    start = len(data) - len(stripped)
    if stripped[0] != ord("["):
        raise _error("not_json", f"{_NOT_ARRAY}: expected `[` at byte {start}")
    end = len(text)
    idx = _skip_ws(text, start + 1)
    seen = 0
    if text.startswith("]", idx):
        idx += 1
    else:
        while True:
            try:
                value, idx = _scan(text, idx)
            except (ValueError, StopIteration, RecursionError):
                raise _malformed(seen) from None
            if (type(value) is _Number and _runs_on(value, text, idx)) or _too_deep(value):
                raise _malformed(seen)
            if seen >= max_events:
                raise _error(
                    "too_many_events", f"the batch has more than {max_events} events: split it"
                )
            batch.event(seen, value)
            seen += 1
            idx = _skip_ws(text, idx)
            if text.startswith(",", idx):
                idx = _skip_ws(text, idx + 1)
            elif text.startswith("]", idx):
                idx += 1
                break
            else:
                raise _malformed(seen)
    if _skip_ws(text, idx) != end:
        raise _error("not_json", f"{_NOT_ARRAY}: there is data after its closing `]`")


def _skip_ws(text: str, idx: int) -> int:
    found = _WS.match(text, idx)
    return found.end() if found else idx


def _malformed(event: int) -> IngestError:
    return _error(
        "not_json",
        f"{_NOT_ARRAY}: event {event} is malformed or nests deeper than {MAX_DEPTH} levels",
    )


def _runs_on(literal: str, text: str, idx: int) -> bool:
    """Whether the number that Python's scanner stopped reading at ``idx`` goes on in a
    way serde_json reads as part of it, and so fails inside this event (``0`` then a
    digit, ``1.`` without digits, an exponent without digits), not after it."""
    after = text[idx : idx + 1]
    if not after or "e" in literal or "E" in literal:
        return False
    return after in "eE" or ("." not in literal and (after == "." or after.isdigit()))


def _ndjson(data: bytes, max_events: int, batch: _Batch) -> None:
    lines = [line for line in data.split(b"\n") if line.strip(b" \t\r")]
    if len(lines) > max_events:
        raise _error("too_many_events", f"the batch has more than {max_events} events: split it")
    if not lines:
        raise _error("not_json", "the batch is empty: send one JSON event per line")
    json_lines = 0
    for index, line in enumerate(lines):
        try:
            text = line.decode()
            value, idx = _scan(text, _skip_ws(text, 0))
        except (ValueError, StopIteration, RecursionError):
            batch.rejected.append((index, *INVALID_JSON))
            continue
        if _skip_ws(text, idx) != len(text) or _too_deep(value):
            batch.rejected.append((index, *INVALID_JSON))
            continue
        batch.event(index, value)
        json_lines += 1
    if not json_lines:
        raise _error("not_json", "no line of the body is valid JSON: send one JSON event per line")


def _too_deep(value: Any, levels: int = MAX_DEPTH) -> bool:
    if type(value) is _Pairs:
        children: list[Any] = [v for _, v in value]
    elif type(value) is list:
        children = value
    else:
        return False
    return levels == 0 or any(_too_deep(child, levels - 1) for child in children)


# --- one event --------------------------------------------------------------------------


class _Batch:
    def __init__(
        self,
        ids: list[bytes],
        received_at_us: int,
        allowed_types: Sequence[str] | None,
        limits: tuple[int, int, int],
        window: tuple[int, int],
    ) -> None:
        self.prefix = b"\x00\x09" + b"".join(b"\x00\x00\x00\x10" + i for i in ids)
        self.suffix = struct.pack(">iq", 8, received_at_us - _PG_EPOCH_US)
        self.received = received_at_us
        self.allowed = None if allowed_types is None else frozenset(allowed_types)
        self.window = window
        self.max_attributes, self.max_key_bytes, self.max_value_bytes = limits
        self.accepted = 0
        self.rejected: list[tuple[int, str, str]] = []
        self.rows: list[bytes] = []

    def event(self, index: int, value: Any) -> None:
        reason = self._check(index, value)
        if reason is None:
            self.accepted += 1
        else:
            self.rejected.append((index, *reason))

    def _check(self, index: int, event: Any) -> Reason | None:
        if type(event) is not _Pairs:
            return _NOT_AN_OBJECT
        fields: dict[str, Any] = {}
        for key, value in event:
            if key not in _FIELDS:
                return _UNKNOWN_FIELD
            if key in fields:
                return _DUPLICATE_KEY
            fields[key] = value
        kind = fields.get("type", _MISSING)
        if kind is _MISSING:
            return _MISSING_TYPE
        if type(kind) is not str or not _TYPE.fullmatch(kind):
            return _INVALID_TYPE
        if self.allowed is not None and kind not in self.allowed:
            return _TYPE_NOT_ALLOWED
        ts = fields.get("timestamp", _MISSING)
        if ts is _MISSING:
            return _MISSING_TIMESTAMP
        us = _rfc3339(ts) if type(ts) is str else _seconds(ts) if type(ts) is _Number else None
        if us is None:
            return _INVALID_TIMESTAMP
        if not _PG_FIRST_US <= us <= _PG_LAST_US:
            return _OUTSIDE_POSTGRES
        max_age, max_future = self.window
        if us < self.received - max_age * 1_000_000:
            return (
                "timestamp_out_of_range",
                f"timestamp is more than {max_age} seconds before the server's time",
            )
        if us > self.received + max_future * 1_000_000:
            return (
                "timestamp_out_of_range",
                f"timestamp is more than {max_future} seconds after the server's time",
            )
        event_id = fields.get("id")
        if "id" in fields and (type(event_id) is not str or not _ID.fullmatch(event_id)):
            return _INVALID_ID
        attributes = fields.get("attributes", _Pairs())
        if type(attributes) is not _Pairs:
            return _INVALID_ATTRIBUTES
        if len(attributes) > self.max_attributes:
            return ("too_many_attributes", f"attributes has more than {self.max_attributes} keys")
        document = self._attributes(attributes)
        if isinstance(document, tuple):
            return document
        self.rows.append(
            b"".join(
                [
                    self.prefix,
                    struct.pack(">ii", 4, index),
                    _NULL if event_id is None else _text(event_id.encode()),
                    _text(kind.encode()),
                    struct.pack(">iq", 8, us - _PG_EPOCH_US),
                    struct.pack(">iB", len(document) + 1, 1),
                    document,
                    self.suffix,
                ]
            )
        )
        return None

    def _attributes(self, attributes: _Pairs) -> bytes | Reason:
        seen: set[str] = set()
        parts = []
        for key, value in attributes:
            encoded = _utf8(key)
            if (
                encoded is None
                or not 0 < len(encoded) <= self.max_key_bytes
                or _CONTROL.search(key)
            ):
                return (
                    "invalid_attribute_key",
                    f"attribute keys must be 1-{self.max_key_bytes} bytes of text without"
                    " control characters",
                )
            if key in seen:
                return _DUPLICATE_ATTRIBUTE
            seen.add(key)
            kind = type(value)
            if kind is str:
                encoded = _utf8(value)
                if encoded is None or len(encoded) > self.max_value_bytes or "\x00" in value:
                    return (
                        "invalid_attribute_value",
                        f"attribute strings must be at most {self.max_value_bytes} bytes of"
                        " text without U+0000",
                    )
                text = _escape(value)
            elif kind is _Number:
                if not _is_number(value):
                    return _INVALID_NUMBER
                text = value
            elif kind is bool:
                text = "true" if value else "false"
            elif value is None:
                text = "null"
            else:
                return _NESTED
            parts.append(f"{_escape(key)}:{text}")
        return ("{" + ",".join(parts) + "}").encode()


def _text(value: bytes) -> bytes:
    return struct.pack(">i", len(value)) + value


def _utf8(text: str) -> bytes | None:
    """``text`` in UTF-8, or ``None`` if it holds a lone surrogate."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _is_number(literal: str) -> bool:
    if len(literal) > MAX_NUMBER_CHARS:
        return False
    at = max(literal.find("e"), literal.find("E"))
    return at < 0 or abs(int(literal[at + 1 :])) <= MAX_EXPONENT


# --- timestamps -------------------------------------------------------------------------


def _seconds(literal: str) -> int | None:
    seconds = float(literal)
    if not math.isfinite(seconds):
        return None
    micros = seconds * 1e6
    if not math.isfinite(micros):
        return _FAR if micros > 0 else -_FAR
    return round(micros)  # half to even, as Rust's round_ties_even


def _rfc3339(s: str) -> int | None:
    if len(s) < 20 or not s.isascii() or s[10] not in "Tt" or s[4] + s[7] + s[13] + s[16] != "--::":
        return None
    parts = (s[0:4], s[5:7], s[8:10], s[11:13], s[14:16], s[17:19])
    if not all(p.isdigit() for p in parts):
        return None
    year, month, day, hour, minute, second = map(int, parts)
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return None
    if hour > 23 or minute > 59 or second > 60:
        return None
    at, micros = 19, 0
    if s[at] == ".":
        count = len(s) - at - 1 - len(s[at + 1 :].lstrip("0123456789"))
        if count == 0:
            return None
        micros = int(s[at + 1 : at + 1 + min(count, 6)].ljust(6, "0"))
        at += 1 + count
    zone = s[at:]
    if zone in ("Z", "z"):
        offset = 0
    elif len(zone) == 6 and zone[0] in "+-" and zone[3] == ":" and (zone[1:3] + zone[4:]).isdigit():
        hours, minutes = int(zone[1:3]), int(zone[4:])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 60 + minutes) * (-1 if zone[0] == "-" else 1)
    else:
        return None
    days = _days_from_civil(year, month, day)
    return (days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60) * 1_000_000 + micros


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
