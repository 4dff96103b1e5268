"""The idempotency fingerprint (``fingerprint``, ``canonical_json``) against the pure-Python
reference in ``tests/reference/fingerprint.py``: byte-identical canonical forms for random
JSON, random number spellings and random near-JSON text; layout never counts, values
always do."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.reference import fingerprint as reference
from treadle._core import canonical_json, fingerprint

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def dumps(value: Any, rng: random.Random) -> bytes:
    """``value`` as JSON with a random layout: key order, whitespace, escapes."""
    text = json.dumps(
        value,
        indent=rng.choice([None, 0, 2, "\t"]),
        separators=rng.choice([None, (",", ":"), (" , ", " : ")]),
        ensure_ascii=rng.random() < 0.5,
        sort_keys=rng.random() < 0.5,
    )
    return text.encode()


def shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


# --- the canonical form ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "canonical"),
    [
        (b'{"b": 1, "a": [true, false, null]}', b'{"a":[true,false,null],"b":1}'),
        (b'{"a":1,"a":2}', b'{"a":2}'),
        (b"[1, 1.0, 1.50, 10e-1, 1E2, -0, -0.0]", b"[1,1.0,1.5,1.0,100.0,0,-0.0]"),
        (
            b"[1e16, 1e15, 0.0001, 0.00001, 5e-324, 1e-400]",
            b"[1e+16,1000000000000000.0,0.0001,1e-05,5e-324,0.0]",
        ),
        (b"12345678901234567890123456789", b"12345678901234567890123456789"),
        (b'"\\u00e9\\/\\ud83d\\ude00\\u0001\\n\\u007f"', '"é/😀\\u0001\\n\x7f"'.encode()),
        (b" \t\r\n{ } ", b"{}"),
    ],
)
def test_canonical_examples(body: bytes, canonical: bytes) -> None:
    assert canonical_json(body) == canonical
    assert reference.canonical_json(body) == canonical


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[1,]",
        b"NaN",
        b"[Infinity]",
        b"1e400",
        b'"\\ud800"',
        b"\xef\xbb\xbf{}",
        b'"\xff"',
        b"1" * 4301,
        b"[" * 129 + b"]" * 129,
        b"[" * 5000 + b"]" * 5000,
        b"{'a': 1}",
    ],
)
def test_not_canonical(body: bytes) -> None:
    assert canonical_json(body) is None
    assert reference.canonical_json(body) is None


def test_limits_are_inclusive() -> None:
    for body in (b"[" * 128 + b"]" * 128, b"-" + b"9" * 4300):
        assert canonical_json(body) == reference.canonical_json(body) == body


@settings(max_examples=400)
@given(JSON, st.integers())
def test_canonical_equals_the_reference(value: Any, seed: int) -> None:
    body = dumps(value, random.Random(seed))
    canonical = canonical_json(body)
    assert canonical is not None
    assert canonical == reference.canonical_json(body)
    assert json.loads(canonical) == value


# Doubles with short exact expansions (m / 2^j), where a value can sit exactly halfway
# between two shortest spellings.
TIE_PRONE = st.builds(lambda m, j: m / 2**j, st.integers(-(10**17), 10**17), st.integers(0, 40))


@settings(max_examples=1000)
@given(st.floats(allow_nan=False, allow_infinity=False) | TIE_PRONE)
def test_floats_are_written_as_python_repr(number: float) -> None:
    for body in (repr(number), f"{number:.17e}", f"{number:.17g}"):
        if "." not in body and "e" not in body:
            body += ".0"
        assert canonical_json(body.encode()) == repr(float(body)).encode()


@pytest.mark.parametrize(
    "literal", ["600000000000000.2", "-108868734838530.125", "34144067629171.0625"]
)
def test_halfway_doubles_round_to_even(literal: str) -> None:
    # Regression: Rust's shortest `{:e}` rounds an exact tie up (600000000000000.3);
    # Python's repr rounds it to even (600000000000000.2), and so must the canonical form.
    assert canonical_json(literal.encode()) == repr(float(literal)).encode()


NUMBER = st.from_regex(r"\A-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,4})?\Z")


@settings(max_examples=400)
@given(NUMBER)
def test_number_spellings_equal_the_reference(number: str) -> None:
    assert canonical_json(number.encode()) == reference.canonical_json(number.encode())


@settings(max_examples=1000)
@given(st.text(alphabet='{}[]",:0123456789.eE+-truefalsn\\/ud8 \t\n\x00\x1fé', max_size=30))
def test_near_json_text_equals_the_reference(text: str) -> None:
    body = text.encode()
    assert canonical_json(body) == reference.canonical_json(body)


@given(st.binary(max_size=64))
def test_arbitrary_bytes_equal_the_reference(body: bytes) -> None:
    assert canonical_json(body) == reference.canonical_json(body)
    assert fingerprint("POST", "/p", body) == reference.fingerprint("POST", "/p", body)


# --- the fingerprint ---------------------------------------------------------------------


@settings(max_examples=300)
@given(JSON, st.integers(), st.integers())
def test_layout_does_not_count(value: Any, seed_a: int, seed_b: int) -> None:
    a = dumps(value, random.Random(seed_a))
    b = dumps(shuffled(value, random.Random(seed_b)), random.Random(seed_b))
    assert fingerprint("POST", "/v1/jobs", a) == fingerprint(
        "POST", "/v1/jobs", b, "application/json; charset=utf-8"
    )
    assert fingerprint("POST", "/v1/jobs", a) == reference.fingerprint("POST", "/v1/jobs", a)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def _changed(leaf: Any) -> Any:
    if leaf is None:
        return False
    if isinstance(leaf, bool):
        return not leaf
    if isinstance(leaf, int):
        return leaf + 1
    if isinstance(leaf, float):
        return math.nextafter(leaf, math.inf)
    if isinstance(leaf, str):
        return leaf + "\x00"
    if isinstance(leaf, list):
        return [None]
    return {"": None}


@settings(max_examples=300)
@given(JSON, st.integers())
def test_every_value_counts(value: Any, seed: int) -> None:
    rng = random.Random(seed)
    path = rng.choice(_leaves(value))
    changed = json.loads(json.dumps(value))
    if path:
        parent = changed
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = _changed(parent[path[-1]])
    else:
        changed = _changed(changed)
    before, after = dumps(value, rng), dumps(changed, rng)
    assume(canonical_json(after) is not None)
    assert fingerprint("PATCH", "/x", before) != fingerprint("PATCH", "/x", after)


def test_method_path_media_type_and_body_all_count() -> None:
    base = fingerprint("POST", "/v1/jobs", b'{"a":1}')
    assert len(base) == 64 and int(base, 16) >= 0
    assert base == fingerprint("POST", "/v1/jobs", b'{ "a" : 1 }', " Application/JSON ;x=y")
    assert base == fingerprint("POST", "/v1/jobs", b'{"a":1}', "")
    others = {
        fingerprint("PUT", "/v1/jobs", b'{"a":1}'),
        fingerprint("POST", "/v1/jobs/", b'{"a":1}'),
        fingerprint("POST", "/v1/jobs", b'{"a":1.0}'),
        fingerprint("POST", "/v1/jobs", b'{"a":1}', "application/yaml"),
        fingerprint("POST", "/v1/jobs", b'{"a":1}', "application/merge-patch+json"),
        fingerprint("POST", "/v1/jobs", b"a: 1", "application/yaml"),
        fingerprint("POST", "/v1/jobs", b"a = 1", "application/toml"),
        fingerprint("POST", "/v1/jobs", b""),
    }
    assert base not in others and len(others) == 8
    # Not JSON under its media type: hashed raw, so layout counts.
    assert fingerprint("POST", "/x", b"a: 1", "application/yaml") != fingerprint(
        "POST", "/x", b"a:  1", "application/yaml"
    )


@pytest.mark.parametrize("size", [1 << 10, 100 << 10, 4 << 20])
def test_large_bodies(size: int) -> None:
    item = {"id": "x" * 40, "values": [1.5, 2, None, True], "label": "é"}
    value = [item] * (size // 80)
    body = json.dumps(value, indent=2).encode()
    assert fingerprint("POST", "/v1/telemetry/ingest", body) == reference.fingerprint(
        "POST", "/v1/telemetry/ingest", body
    )
    raw = bytes(range(256)) * (size // 256)
    assert fingerprint("POST", "/x", raw, "application/octet-stream") == reference.fingerprint(
        "POST", "/x", raw, "application/octet-stream"
    )
