from __future__ import annotations

import msgspec
import pytest

from treadle.web.bodies import decode
from treadle.web.errors import ApiError


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
    assert (error.status, error.code) == (400, "validation_failed")
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
    assert (error.status, error.code) == (400, "bad_request")
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
    assert (error.status, error.code) == (415, "unsupported_media_type")
    assert "application/json" in error.message


def test_non_utf8_charset_is_415() -> None:
    assert _error(b"{}", "application/json; charset=latin-1").status == 415


def test_compressed_body_is_415() -> None:
    error = _error(b"\x1f\x8b\x08\x00", "application/json", "gzip")
    assert error.status == 415
    assert "uncompressed" in error.message


def test_deep_nesting_is_refused_not_crashing() -> None:
    with pytest.raises(ApiError) as caught:
        decode(b"[" * 100_000 + b"]" * 100_000, list, "application/json", None)
    assert caught.value.status == 400
