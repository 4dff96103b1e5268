from __future__ import annotations

import msgspec
import pytest

from treadle.web.bodies import decode
from treadle.web.errors import ApiError
from treadle.web.errors import status as http_status


class Item(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    size: int
    tags: list[str] = []


def _error(data: bytes, content_type: str | None = "application/json", encoding=None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        decode(data, Item, content_type, encoding)
    return caught.value


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"name": "a", "size": 2, "tags": ["x"]}', "application/json"),
        (b'{"name": "a", "size": 2, "tags": ["x"]}', None),
        (b'{"name": "a", "size": 2, "tags": ["x"]}', "application/json; charset=utf-8"),
        (b"name: a\nsize: 2\ntags: [x]\n", "application/yaml"),
        (b"name: a\nsize: 2\ntags: [x]\n", "text/yaml"),
        (b'name = "a"\nsize = 2\ntags = ["x"]\n', "application/toml"),
    ],
)
def test_every_format_decodes_to_the_same_struct(data: bytes, content_type: str | None) -> None:
    assert decode(data, Item, content_type, None) == Item("a", 2, ["x"])


def test_wrong_type_names_the_field_path() -> None:
    error = _error(b'{"name": "a", "size": "big"}')
    assert (http_status(error), error.code) == (400, "validation_failed")
    assert error.details["path"] == "$.size"
    assert "int" in error.message


def test_nested_path_is_reported() -> None:
    error = _error(b'{"name": "a", "size": 1, "tags": ["ok", 3]}')
    assert error.details["path"] == "$.tags[1]"


def test_unknown_field_is_refused() -> None:
    error = _error(b'{"name": "a", "size": 1, "admin": true}')
    assert error.code == "validation_failed"
    assert "admin" in error.message


def test_missing_field_is_named() -> None:
    error = _error(b'{"name": "a"}')
    assert error.code == "validation_failed"
    assert "size" in error.message


@pytest.mark.parametrize(
    "data",
    [b'{"name": ', b"\xff\xfe\x00", b'{"name": "a", "size": 1', b'{"name": "a", "size": 1}}'],
)
def test_malformed_json_is_bad_request(data: bytes) -> None:
    error = _error(data)
    assert (http_status(error), error.code) == (400, "bad_request")
    assert error.message.startswith("malformed JSON body")


def test_malformed_yaml_and_toml() -> None:
    assert _error(b"name: [unclosed", "application/yaml").code == "bad_request"
    assert _error(b"name = ", "application/toml").code == "bad_request"


def test_empty_body_is_bad_request() -> None:
    error = _error(b"  ")
    assert error.code == "bad_request"
    assert "required" in error.message


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data"])
def test_unsupported_content_type_is_415(content_type: str) -> None:
    error = _error(b"{}", content_type)
    assert (http_status(error), error.code) == (415, "unsupported_media_type")
    assert "application/json" in error.message


def test_non_utf8_charset_is_415() -> None:
    assert http_status(_error(b"{}", "application/json; charset=latin-1")) == 415


def test_compressed_body_is_415() -> None:
    error = _error(b"\x1f\x8b\x08\x00", "application/json", "gzip")
    assert http_status(error) == 415
    assert "uncompressed" in error.message


def test_deep_nesting_is_refused_not_crashing() -> None:
    with pytest.raises(ApiError) as caught:
        decode(b"[" * 100_000 + b"]" * 100_000, list, "application/json", None)
    assert http_status(caught.value) == 400


# -- bounds: what cannot be stored or returned is refused at decode (issue 8, items 5-7) ---


class Free(msgspec.Struct, forbid_unknown_fields=True):
    input: dict = {}
    size: int = 0


def _refused(data: bytes, content_type: str = "application/json", limits=None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        if limits is None:
            decode(data, Free, content_type, None)
        else:
            decode(data, Free, content_type, None, limits)
    assert http_status(caught.value) == 400
    return caught.value


BILLION_LAUGHS = b"""
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_yaml_anchors_and_aliases_are_refused_before_they_expand() -> None:
    assert "anchors" in _refused(BILLION_LAUGHS, "application/yaml").message
    assert "anchors" in _refused(b"input: &x {a: 1}\n", "application/yaml").message


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'{"input": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}", "application/json"),
        (b"input: " + b"[" * 40 + b"1" + b"]" * 40 + b"\n", "application/yaml"),
        (b"input = " + b"[" * 40 + b"1" + b"]" * 40 + b"\n", "application/toml"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ],
)
def test_every_format_is_bounded_in_depth(data: bytes, content_type: str) -> None:
    assert "levels deep" in _refused(data, content_type).message


def test_every_format_is_bounded_in_node_count() -> None:
    from treadle.web.bodies import Limits

    many = b'{"input": {"a": [' + b",".join([b"1"] * 2000) + b"]}}"
    assert "values" in _refused(many, limits=Limits(nodes=1000)).message
    yaml_many = b"input:\n  a: [" + b",".join([b"1"] * 2000) + b"]\n"
    assert "values" in _refused(yaml_many, "application/yaml", Limits(nodes=1000)).message


@pytest.mark.parametrize(
    ("data", "content_type", "path"),
    [
        (b'{"input": {"n": 1180591620717411303424}}', "application/json", "$.input.n"),
        (b'{"input": {"n": -9223372036854775809}}', "application/json", "$.input.n"),
        (b"input:\n  n: 1180591620717411303424\n", "application/yaml", "$.input.n"),
        (b"input = { n = 9223372036854775807 }\nsize = 1", "application/toml", None),
        # untyped, msgspec names only the depth of a number past a float's range
        (b'{"input": {"n": 1e400}}', "application/json", "$[...][...]"),
        (b"input:\n  n: .nan\n", "application/yaml", "$.input.n"),
        (b'{"input": {"s": "a\\u0000b"}}', "application/json", "$.input.s"),
        (b'{"input": {"a\\u0000": 1}}', "application/json", "$.input"),
        (b"input:\n  1: x\n", "application/yaml", "$.input"),
        (b"input:\n  b: !!binary aGVsbG8=\n", "application/yaml", "$.input.b"),
    ],
)
def test_values_that_cannot_be_stored_or_returned_are_refused_with_the_path(
    data: bytes, content_type: str, path: str | None
) -> None:
    if path is None:  # the largest 64-bit integer is fine
        assert decode(data, Free, content_type, None).input == {"n": 2**63 - 1}
        return
    error = _refused(data, content_type)
    assert error.details["path"] == path, error.message


def test_native_times_become_text_and_whole_floats_integers() -> None:
    got = decode(b"input:\n  at: 2000-01-01T00:00:00Z\nsize: 203.0\n", Free, "text/yaml", None)
    assert got.input == {"at": "2000-01-01T00:00:00+00:00"} and got.size == 203
    assert isinstance(got.size, int)
