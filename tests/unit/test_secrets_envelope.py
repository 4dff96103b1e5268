"""The envelope scheme of stored credentials, without a database: data keys wrapped per
organization and key version, values bound to (organization, name, version), and the
keyring setting."""

from __future__ import annotations

import os
import secrets
import uuid

import pytest

from treadle.services.secrets import (
    NAME,
    KeyMismatch,
    Keyring,
    open_value,
    parse_keys,
    seal_value,
)
from treadle.settings import SettingsError

SECRET_KEY = secrets.token_hex(32)
ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()


def test_a_data_key_opens_under_its_version_for_its_organization_only() -> None:
    keyring = Keyring(SECRET_KEY, {})
    data_key = os.urandom(32)
    wrapped = keyring.wrap(ORG_A, 1, data_key)
    assert data_key not in wrapped
    assert keyring.unwrap(ORG_A, 1, wrapped) == data_key
    with pytest.raises(KeyMismatch, match="version 2"):
        keyring.unwrap(ORG_A, 2, wrapped)
    with pytest.raises(KeyMismatch):
        keyring.unwrap(ORG_B, 1, wrapped)  # copied onto another organization's row
    # Another platform secret derives other keys.
    with pytest.raises(KeyMismatch):
        Keyring(secrets.token_hex(32), {}).unwrap(ORG_A, 1, wrapped)


def test_versions_derive_distinct_keys_and_listed_keys_replace_derived_ones() -> None:
    derived = Keyring(SECRET_KEY, {})
    listed_key = secrets.token_hex(32)
    listed = Keyring(SECRET_KEY, {2: listed_key})
    data_key = os.urandom(32)
    under_1 = derived.wrap(ORG_A, 1, data_key)
    # Version 1 is not listed: both derive it from the secret key alike.
    assert listed.unwrap(ORG_A, 1, under_1) == data_key
    under_2 = listed.wrap(ORG_A, 2, data_key)
    assert Keyring(secrets.token_hex(32), {2: listed_key}).unwrap(ORG_A, 2, under_2) == data_key
    with pytest.raises(KeyMismatch):
        derived.unwrap(ORG_A, 2, under_2)  # a server that was not given the listed key
    assert derived.unwrap(ORG_A, 2, derived.wrap(ORG_A, 2, data_key)) == data_key
    assert derived.wrap(ORG_A, 2, data_key) != derived.wrap(ORG_A, 2, data_key)  # fresh nonces


def test_the_check_of_a_version_tells_one_key_from_another() -> None:
    ours = Keyring(SECRET_KEY, {3: secrets.token_hex(32)})
    theirs = Keyring(SECRET_KEY, {3: secrets.token_hex(32)})
    assert ours.opens_check(3, ours.check_value(3))
    assert not theirs.opens_check(3, ours.check_value(3))
    assert not ours.opens_check(4, ours.check_value(3))
    assert theirs.opens_check(1, ours.check_value(1))  # both derive version 1


def test_rotation_moves_to_the_highest_listed_version_or_the_next() -> None:
    assert Keyring(SECRET_KEY, {}).next_version(1) == 2
    assert Keyring(SECRET_KEY, {5: secrets.token_hex(32)}).next_version(1) == 5
    assert Keyring(SECRET_KEY, {5: secrets.token_hex(32)}).next_version(5) == 6
    assert Keyring(SECRET_KEY, {1: secrets.token_hex(32)}).next_version(3) == 4


def test_a_value_opens_only_for_its_organization_name_version_and_data_key() -> None:
    data_key = os.urandom(32)
    plain = b"sk-live-" + secrets.token_hex(16).encode()
    sealed = seal_value(data_key, ORG_A, "OPENAI_KEY", 3, plain)
    assert plain not in sealed and plain[8:] not in sealed
    assert open_value(data_key, ORG_A, "OPENAI_KEY", 3, sealed) == plain
    for org, name, version, key in (
        (ORG_B, "OPENAI_KEY", 3, data_key),
        (ORG_A, "OPENAI_KEY2", 3, data_key),
        (ORG_A, "OPENAI_KE", 3, data_key),
        (ORG_A, "OPENAI_KEY", 2, data_key),
        (ORG_A, "OPENAI_KEY", 3, os.urandom(32)),
    ):
        with pytest.raises(ValueError):
            open_value(key, org, name, version, sealed)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(ValueError):
        open_value(data_key, ORG_A, "OPENAI_KEY", 3, bytes(tampered))


def test_the_keys_setting_is_parsed_and_refused_without_echoing_keys() -> None:
    one, two = secrets.token_hex(32), secrets.token_hex(32)
    assert parse_keys("") == {}
    assert parse_keys(f" 2:{two} , 1:{one},") == {2: two, 1: one}
    for raw, problem in (
        (f"x:{one}", "VERSION:KEY"),
        (f"0:{one}", "VERSION:KEY"),
        (one, "VERSION:KEY"),
        ("2:tooSmallKey", "shorter than 32 bytes"),
        (f"2:{one},2:{two}", "version 2 twice"),
    ):
        with pytest.raises(SettingsError, match=problem) as caught:
            parse_keys(raw)
        assert one not in str(caught.value) and "tooSmallKey" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("OPENAI_API_KEY", True),
        ("a", True),
        ("db.password-2", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        (".", False),
        ("..", False),
        ("...", True),
        ("a/b", False),
        ("a b", False),
        ("naïve", False),
        ("a\n", False),
    ],
)
def test_names(name: str, ok: bool) -> None:
    assert bool(NAME.match(name)) is ok
