"""``_core.parse_telemetry`` against its pure-Python twin
(``treadle.services.telemetry_reference``): the same accepted count, rejections and COPY
bytes, or the same ``IngestError``, for every rejection code and batch error, in JSON and
NDJSON, identity, gzip and zstd, and for generated batches. A decompression bomb is refused
within the limit, and the COPY bytes load into PostgreSQL."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from treadle import _core
from treadle.services import telemetry_reference as reference

try:
    from compression import zstd  # Python 3.14
except ImportError:
    try:
        from backports import zstd
    except ImportError:
        zstd = None

ORG, AGENT, BATCH = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
NOW = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
IDS = {"organization_id": ORG.bytes, "agent_id": AGENT.bytes, "batch_id": BATCH.bytes}
TS = '"timestamp":"2026-01-01T00:00:00Z"'
NEEDS_ZSTD_MODULE = pytest.mark.skipif(
    zstd is None, reason="the reference reads zstd with compression.zstd / backports.zstd"
)


def outcome(parse: Any, body: bytes, **options: Any) -> tuple[Any, ...]:
    """What ``parse`` gives: ``(accepted, rejected, copy_data)`` or ``("error", code, message)``."""
    arguments = {**IDS, "received_at_us": NOW, **options}
    try:
        return parse(body, **arguments)  # type: ignore[no-any-return]
    except _core.IngestError as exc:
        assert str(exc) == exc.message
        return ("error", exc.code, exc.message)


def both(body: bytes, **options: Any) -> tuple[Any, ...]:
    """The Rust result, checked identical to the reference's."""
    rust = outcome(_core.parse_telemetry, body, **options)
    assert rust == outcome(reference.parse_telemetry, body, **options)
    return rust


def zstd_compress(data: bytes) -> bytes:
    if zstd is not None:
        return bytes(zstd.compress(data))
    if shutil.which("zstd") is None:
        pytest.skip("no zstd module or zstd command to make zstd data with")
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


def event(**fields: str) -> str:
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


OK = f'{{"type":"a",{TS}}}'
EVENTS = [
    ("accepted", OK),
    ("accepted", f'{{"id":"e-1","type":"a.b_c-9",{TS},"attributes":{{"s":"é\\n","n":-1.5e3}}}}'),
    ("accepted", '{"type":"a","timestamp":1767225600.25}'),
    ("not_an_object", "[1]"),
    ("not_an_object", '"x"'),
    ("unknown_field", f'{{"type":"a",{TS},"extra":1}}'),
    ("duplicate_key", f'{{"type":"a",{TS},"type":"a"}}'),
    ("duplicate_key", f'{{"type":"a",{TS},"attributes":{{"k":1,"\\u006b":2}}}}'),
    ("invalid_type", f"{{{TS}}}"),
    ("invalid_type", f'{{"type":"Bad",{TS}}}'),
    ("invalid_type", f'{{"type":"{"a" * 65}",{TS}}}'),
    ("invalid_type", f'{{"type":"a\\n",{TS}}}'),
    ("invalid_type", f'{{"type":["a"],{TS}}}'),
    ("type_not_allowed", f'{{"type":"forbidden",{TS}}}'),
    ("invalid_timestamp", '{"type":"a"}'),
    ("invalid_timestamp", '{"type":"a","timestamp":"2026-01-01T00:00:00"}'),
    ("invalid_timestamp", '{"type":"a","timestamp":"2026-02-30T00:00:00Z"}'),
    ("invalid_timestamp", '{"type":"a","timestamp":1e400}'),
    ("invalid_timestamp", '{"type":"a","timestamp":true}'),
    ("timestamp_out_of_range", '{"type":"a","timestamp":"2025-12-24T23:59:59.999999Z"}'),
    ("accepted", '{"type":"a","timestamp":"2025-12-25T00:00:00Z"}'),
    ("accepted", '{"type":"a","timestamp":"2026-01-01T01:05:00+01:00"}'),
    ("timestamp_out_of_range", '{"type":"a","timestamp":1767225900.000001}'),
    ("timestamp_out_of_range", '{"type":"a","timestamp":-1e300}'),
    ("invalid_id", f'{{"type":"a",{TS},"id":""}}'),
    ("invalid_id", f'{{"type":"a",{TS},"id":"a b"}}'),
    ("invalid_id", f'{{"type":"a",{TS},"id":7}}'),
    ("invalid_id", f'{{"type":"a",{TS},"id":"{"x" * 129}"}}'),
    ("invalid_attributes", f'{{"type":"a",{TS},"attributes":[]}}'),
    ("invalid_attributes", f'{{"type":"a",{TS},"attributes":"k=v"}}'),
    ("too_many_attributes", f'{{"type":"a",{TS},"attributes":{{"a":1,"b":2,"c":3,"d":4}}}}'),
    ("invalid_attribute_key", f'{{"type":"a",{TS},"attributes":{{"":1}}}}'),
    ("invalid_attribute_key", f'{{"type":"a",{TS},"attributes":{{"abcdefghi":1}}}}'),
    ("invalid_attribute_key", f'{{"type":"a",{TS},"attributes":{{"a\\tb":1}}}}'),
    ("invalid_attribute_key", f'{{"type":"a",{TS},"attributes":{{"\\ud800":1}}}}'),
    ("invalid_attribute_value", f'{{"type":"a",{TS},"attributes":{{"k":{{"n":1}}}}}}'),
    ("invalid_attribute_value", f'{{"type":"a",{TS},"attributes":{{"k":[1]}}}}'),
    ("invalid_attribute_value", f'{{"type":"a",{TS},"attributes":{{"k":"0123456789abcdefX"}}}}'),
    ("invalid_attribute_value", f'{{"type":"a",{TS},"attributes":{{"k":"a\\u0000"}}}}'),
    ("invalid_attribute_value", f'{{"type":"a",{TS},"attributes":{{"k":"\\udc00"}}}}'),
    ("invalid_attribute_value", f'{{"type":"a",{TS},"attributes":{{"k":1e1001}}}}'),
    ("accepted", f'{{"type":"a",{TS},"attributes":{{"k":"0123456789abcdef","n":1E-1000}}}}'),
]
LIMITS = {
    "allowed_types": ["a", "a.b_c-9"],
    "max_attributes": 3,
    "max_key_bytes": 8,
    "max_value_bytes": 16,
    "max_age_seconds": 7 * 86400,
    "max_future_seconds": 300,
}


@pytest.mark.parametrize("ndjson", [False, True])
def test_every_rejection_code(ndjson: bool) -> None:
    texts = [text for _, text in EVENTS]
    body = ("\n".join(texts) if ndjson else "[" + ",\n ".join(texts) + "]").encode()
    accepted, rejected, _ = both(body, ndjson=ndjson, **LIMITS)
    codes = {index: code for index, code, _ in rejected}
    assert [codes.get(i, "accepted") for i in range(len(EVENTS))] == [c for c, _ in EVENTS]
    assert accepted == [c for c, _ in EVENTS].count("accepted")
    assert all(message for *_, message in rejected)


@pytest.mark.parametrize(
    ("body", "ndjson", "options", "code"),
    [
        (b"", False, {}, "not_json"),
        (b" \r\n", False, {}, "not_json"),
        (b"[\xff]", False, {}, "not_json"),
        (b'{"type":"a"}', False, {}, "not_json"),
        (b"[{},{} {}]", False, {}, "not_json"),
        (b"[{}, 01]", False, {}, "not_json"),
        (b"[{}, 1.]", False, {}, "not_json"),
        (b"[1e5.]", False, {}, "not_json"),
        (b"[Infinity]", False, {}, "not_json"),
        (b"[{},", False, {}, "not_json"),
        (b"[{},]", False, {}, "not_json"),
        (b"[] []", False, {}, "not_json"),
        (b"[" + b"[" * 33 + b"]" * 33 + b"]", False, {}, "not_json"),
        (b"[" + b"[" * 5000 + b"]" * 5000 + b"]", False, {}, "not_json"),
        (b"[1,2,3]", False, {"max_events": 2}, "too_many_events"),
        (b"[1,2,3,x]", False, {"max_events": 2}, "too_many_events"),
        (b"[1,2,x]", False, {"max_events": 2}, "not_json"),
        (b"[" + b"1," * 99 + b"1]", False, {"max_bytes": 100}, "too_large"),
        (b"[]", False, {"encoding": "br"}, "bad_encoding"),
        (b"[]", False, {"encoding": "gzip"}, "bad_encoding"),
        (b"", False, {"encoding": "gzip"}, "bad_encoding"),
        (gzip.compress(b"[]")[:-1], False, {"encoding": "gzip"}, "bad_encoding"),
        (gzip.compress(b"[]") + b"\0", False, {"encoding": "gzip"}, "bad_encoding"),
        (
            gzip.compress(b"[" + b"1," * 99 + b"1]"),
            False,
            {"encoding": "GZIP", "max_bytes": 100},
            "too_large",
        ),
        (b"", True, {}, "not_json"),
        (b"\n \n\t\r\n", True, {}, "not_json"),
        (b"nope\n[1,\n", True, {}, "not_json"),
        (b"[" * 40 + b"\n", True, {}, "not_json"),
        (b"1\n2\n\n3\n", True, {"max_events": 2}, "too_many_events"),
    ],
)
def test_batch_errors(body: bytes, ndjson: bool, options: dict[str, Any], code: str) -> None:
    result = both(body, ndjson=ndjson, **options)
    assert result[:2] == ("error", code), result


def test_empty_array_is_an_empty_copy() -> None:
    assert both(b" [ ] ") == (0, [], b"PGCOPY\n\xff\r\n\x00" + bytes(8) + b"\xff\xff")


def test_ndjson_lines() -> None:
    body = f"{OK}\r\n\n   \nnot json\n[]\n\ufeff{OK}\n{OK}".encode()
    accepted, rejected, _ = both(body, ndjson=True)
    assert accepted == 2
    assert [(i, code) for i, code, _ in rejected] == [
        (1, "invalid_json"),
        (2, "not_an_object"),
        (3, "invalid_json"),
    ]


@pytest.mark.parametrize("ndjson", [False, True])
def test_compressed_bodies_read_as_sent(ndjson: bool) -> None:
    texts = [text for _, text in EVENTS]
    body = ("\n".join(texts) if ndjson else "[" + ",".join(texts) + "]").encode()
    plain = both(body, ndjson=ndjson, **LIMITS)
    members = gzip.compress(body[:100]) + gzip.compress(body[100:])
    assert both(gzip.compress(body), ndjson=ndjson, encoding="gzip", **LIMITS) == plain
    assert both(members, ndjson=ndjson, encoding="gzip", **LIMITS) == plain
    packed = zstd_compress(body)
    rust = outcome(_core.parse_telemetry, packed, ndjson=ndjson, encoding="zstd", **LIMITS)
    assert rust == plain
    if zstd is not None:
        assert both(packed, ndjson=ndjson, encoding="zstd", **LIMITS) == plain


def test_corrupt_gzip_is_refused_alike() -> None:
    packed = gzip.compress(b"[" + b'{"type":"a","timestamp":1767225600},' * 50 + b"1]")
    for at in range(0, len(packed), 3):
        flipped = bytearray(packed)
        flipped[at] ^= 0x55
        for body in (bytes(flipped), packed[:at]):
            both(body, encoding="gzip")


@NEEDS_ZSTD_MODULE
def test_corrupt_and_oversized_zstd_is_refused_alike() -> None:
    packed = zstd_compress(b"[" + b'{"type":"a","timestamp":1767225600},' * 50 + b"1]")
    for at in range(0, len(packed), 3):
        flipped = bytearray(packed)
        flipped[at] ^= 0x55
        for body in (bytes(flipped), packed[:at]):
            both(body, encoding="zstd")
    big_window = zstd.ZstdCompressor(options={zstd.CompressionParameter.window_log: 27})
    frame = big_window.compress(b"[]") + big_window.flush()
    assert both(frame, encoding="zstd", max_bytes=1 << 20)[:2] == ("error", "too_large")
    assert both(frame, encoding="zstd", max_bytes=1 << 27)[0] == 0


def test_argument_errors_alike() -> None:
    for parse in (_core.parse_telemetry, reference.parse_telemetry):
        with pytest.raises(ValueError, match="organization_id must be 16 bytes"):
            parse(b"[]", **{**IDS, "organization_id": b"short"}, received_at_us=NOW)
        with pytest.raises(OverflowError):
            parse(b"[]", **IDS, received_at_us=NOW, max_events=-1)


# --- generated batches -------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from("\ud800\udc00\x00\x7f"), max_size=10
)


def string(value: str, ascii_only: bool) -> str:
    """``value`` as a JSON string; surrogates can only travel escaped."""
    try:
        value.encode()
    except UnicodeEncodeError:
        ascii_only = True
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def scalar(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["str", "int", "float", "exp", "bool", "null", "nested"]))
    if kind == "str":
        return string(draw(TEXT), draw(st.booleans()))
    if kind == "int":
        return str(draw(st.integers(-(10**30), 10**30)))
    if kind == "float":
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if kind == "exp":
        mantissa, sign = draw(st.integers(-99, 99)), draw(st.sampled_from(["", "+", "-"]))
        return f"{mantissa}e{sign}{draw(st.integers(0, 1100))}"
    if kind == "nested":
        return draw(st.sampled_from(["[]", "{}", '{"a":[1]}', "[[[]]]"]))
    return draw(st.sampled_from(["true", "false", "null"]))


@st.composite
def timestamp(draw: st.DrawFn) -> str:
    seconds = draw(st.integers(NOW // 10**6 - 8 * 86400, NOW // 10**6 + 400))
    kind = draw(st.sampled_from(["rfc3339", "rfc3339", "int", "float", "junk"]))
    if kind == "rfc3339":
        offset = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
        local = datetime.fromtimestamp(seconds, UTC) + timedelta(minutes=offset)
        fraction = draw(st.sampled_from(["", ".5", ".123456", ".1234567891", ".000001"]))
        sign = "-" if offset < 0 else "+"
        zone = draw(
            st.sampled_from(["Z", "z", f"{sign}{abs(offset) // 60:02}:{abs(offset) % 60:02}"])
        )
        if zone in "Zz":
            local = datetime.fromtimestamp(seconds, UTC)
        return f'"{local:%Y-%m-%dT%H:%M:%S}{fraction}{zone}"'
    if kind == "int":
        return str(seconds)
    if kind == "float":
        return repr(seconds + draw(st.floats(0, 1)))
    return draw(scalar())


@st.composite
def batch_event(draw: st.DrawFn) -> str:
    """An event as JSON text, mostly valid, with every kind of fault now and then."""
    if draw(st.integers(0, 29)) == 0:
        return draw(scalar())
    fields: list[tuple[str, str]] = []
    if draw(st.integers(0, 19)):
        kind = draw(st.sampled_from(["a", "c.d"])) if draw(st.integers(0, 4)) else None
        if kind is None:
            kind = draw(st.sampled_from(["b", "Bad", "", "x" * 65]) | st.text(max_size=3))
        fields.append(("type", string(kind, draw(st.booleans()))))
    if draw(st.integers(0, 19)):
        fields.append(("timestamp", draw(timestamp())))
    if draw(st.booleans()):
        ident = draw(
            st.sampled_from(["e1", "e-2", "~!", "", "a b", "x" * 129]) | st.text(max_size=3)
        )
        fields.append(("id", string(ident, draw(st.booleans()))))
    if draw(st.integers(0, 4)):
        key = st.sampled_from(['"k"', '"n"', '"\\u006b"']) | TEXT.map(lambda t: string(t, True))
        members = draw(st.lists(st.tuples(key, scalar()), max_size=6))
        fields.append(("attributes", "{" + ",".join(f"{k}:{v}" for k, v in members) + "}"))
    elif draw(st.integers(0, 9)) == 0:
        fields.append(("attributes", draw(scalar())))
    if draw(st.integers(0, 19)) == 0:
        fields.append((draw(st.sampled_from(["type", "extra"])), "1"))
    space = draw(st.sampled_from(["", " ", "\n\t"]))
    members = (f'"{k}"{space}:{space}{v}' for k, v in draw(st.permutations(fields)))
    return "{" + f",{space}".join(members) + "}"


OPTIONS = st.fixed_dictionaries(
    {
        "allowed_types": st.sampled_from([None, None, ["a", "c.d"], ["a"]]),
        "max_attributes": st.sampled_from([64, 64, 0, 3]),
        "max_key_bytes": st.sampled_from([128, 128, 1, 6]),
        "max_value_bytes": st.sampled_from([4096, 4096, 0, 6]),
        "max_events": st.sampled_from([10_000, 10_000, 10_000, 0, 5]),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(batch_event(), max_size=10), st.booleans(), OPTIONS, st.sampled_from(["", "\n", "x"])
)
def test_generated_batches_alike(
    events: list[str], ndjson: bool, options: dict[str, Any], junk: str
) -> None:
    if ndjson:
        # Raw newlines in an event are only ever layout (JSON escapes them in strings).
        body = "\n".join([e.replace("\n", " ") for e in events] + ([junk] if junk else []))
    else:
        body = "[" + ",".join(events) + "]" + junk
    both(body.encode(), ndjson=ndjson, **options)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet='{}[]",:0123456789.eE+-tnrufalsNI\\u\n\r "typeimsd', max_size=60),
    st.booleans(),
)
def test_near_json_alike(text: str, ndjson: bool) -> None:
    both(text.encode(), ndjson=ndjson)
    both(f"[{text}]".encode(), ndjson=ndjson)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.booleans(), st.sampled_from(["identity", "gzip"]))
def test_any_bytes_alike(body: bytes, ndjson: bool, encoding: str) -> None:
    both(body, ndjson=ndjson, encoding=encoding)


# --- bombs ---------------------------------------------------------------------------------

MEASURE = """
import resource, sys, time
from treadle import _core
from treadle.services import telemetry_reference
body = open(sys.argv[1], "rb").read()
parse = _core.parse_telemetry if sys.argv[3] == "rust" else telemetry_reference.parse_telemetry
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.monotonic()
try:
    parse(body, encoding=sys.argv[2], organization_id=bytes(16), agent_id=bytes(16),
          batch_id=bytes(16), received_at_us=0)
except _core.IngestError as exc:
    print(exc.code, time.monotonic() - start,
          (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros as one gzip member, compressed as a stream (about 1 MB)."""
    compressor = zlib.compressobj(9, wbits=31)
    zeros = bytes(1 << 20)
    path = tmp_path_factory.mktemp("bomb") / "zeros.gz"
    with path.open("wb") as out:
        for _ in range(1024):
            out.write(compressor.compress(zeros))
        out.write(compressor.flush())
    return path


@pytest.fixture(scope="module")
def zstd_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB of zeros as one zstd frame of unknown size, compressed as a stream."""
    path = tmp_path_factory.mktemp("bomb") / "zeros.zst"
    zeros = bytes(1 << 20)
    if zstd is not None:
        compressor = zstd.ZstdCompressor()
        with path.open("wb") as out:
            for _ in range(1024):
                out.write(compressor.compress(zeros))
            out.write(compressor.flush())
        return path
    if shutil.which("zstd") is None:
        pytest.skip("no zstd module or zstd command to make zstd data with")
    with (
        path.open("wb") as out,
        subprocess.Popen(["zstd", "-q", "-c"], stdin=subprocess.PIPE, stdout=out) as proc,
    ):
        assert proc.stdin is not None
        for _ in range(1024):
            proc.stdin.write(zeros)
        proc.stdin.close()
    return path


def measure(path: Path, encoding: str, implementation: str) -> tuple[str, float, int]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), encoding, implementation],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    code, seconds, grown = done.stdout.split()
    return code, float(seconds), int(grown)


@pytest.mark.parametrize("implementation", ["rust", "reference"])
def test_gzip_bomb_is_too_large_within_the_limit(gzip_bomb: Path, implementation: str) -> None:
    assert gzip_bomb.stat().st_size < 2 << 20
    code, seconds, grown = measure(gzip_bomb, "gzip", implementation)
    assert code == "too_large"
    assert seconds < 2
    assert grown < 48 << 20, f"peak memory grew by {grown} bytes for an 8 MiB limit"


def test_zstd_bomb_is_too_large_within_the_limit(zstd_bomb: Path) -> None:
    code, seconds, grown = measure(zstd_bomb, "zstd", "rust")
    assert code == "too_large"
    assert seconds < 2
    assert grown < 48 << 20, f"peak memory grew by {grown} bytes for an 8 MiB limit"


# --- into PostgreSQL ---------------------------------------------------------------------

PG_EVENTS = [
    '{"type":"cpu.load","timestamp":"2026-01-01T00:00:00.123456789Z","id":"e-1",'
    '"attributes":{"core":3,"load":0.75,"big":123456789012345678901234567890,"tiny":1.5E-300,'
    '"on":true,"off":false,"none":null,"s":"h\\u00e9llo\\n\\"q\\" \\ud83d\\ude00",'
    '"\\u00e9":"\\u0001"}}',
    '{"type":"x","timestamp":-210866803200}',  # PostgreSQL's first instant, 4714-11-24 BC
    '{"type":"x","timestamp":9224318015999}',  # near its last, in 294276 AD
    '{"type":"bad type","timestamp":0}',
    '{"type":"y","timestamp":1767225599.999999,"attributes":{}}',
]


def test_copy_data_loads_into_postgresql(database_url: str) -> None:
    far = {"max_age_seconds": 10**15, "max_future_seconds": 10**15}
    accepted, rejected, data = both(("[" + ",".join(PG_EVENTS) + "]").encode(), **far)
    assert (accepted, [r[:2] for r in rejected]) == (4, [(3, "invalid_type")])
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "CREATE TEMP TABLE telemetry_events (organization_id uuid, agent_id uuid,"
            " batch_id uuid, seq int4, event_id text, type text, ts timestamptz,"
            " attributes jsonb, received_at timestamptz)"
        )
        with conn.cursor().copy(reference.COPY_STATEMENT) as copy:
            copy.write(data)
        rows = conn.execute(
            "SELECT organization_id, agent_id, batch_id, seq, event_id, type,"
            " ts - '2000-01-01 00:00:00+00'::timestamptz, attributes, received_at"
            " FROM telemetry_events ORDER BY seq"
        ).fetchall()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert [r[:4] for r in rows] == [(ORG, AGENT, BATCH, seq) for seq in (0, 1, 2, 4)]
    assert [(r[4], r[5]) for r in rows] == [
        ("e-1", "cpu.load"),
        (None, "x"),
        (None, "x"),
        (None, "y"),
    ]
    # Since PostgreSQL's epoch: its last instants are beyond an interval from 1970.
    since_2000 = [r[6] // timedelta(microseconds=1) + 946_684_800_000_000 for r in rows]
    assert since_2000 == [
        NOW + 123456,
        -210_866_803_200_000_000,
        round(9224318015999 * 1e6),
        NOW - 1,
    ]
    assert rows[0][7] == json.loads(PG_EVENTS[0])["attributes"]
    assert [r[7] for r in rows[1:]] == [{}, {}, {}]
    assert {r[8] for r in rows} == {epoch + timedelta(microseconds=NOW)}
