"""API key format (``api_key_generate`` / ``api_key_check``) and the verification cache
(``KeyCache``)."""

from __future__ import annotations

import random
import time

import pytest

from tests.reference.keys import BASE62, checksum
from tests.reference.keys import api_key_check as reference_check
from treadle._core import CoreError, KeyCache, api_key_check, api_key_generate


@pytest.mark.parametrize("environment", ["live", "test"])
def test_generated_keys_have_the_documented_format(environment: str) -> None:
    raw, display = api_key_generate(environment)
    prefix = f"trd_{environment}_"
    assert raw.startswith(prefix)
    assert len(raw) == 47
    body, check_digits = raw[9:41], raw[41:]
    assert all(c in BASE62 for c in body)
    assert check_digits == checksum(raw[:41])
    assert display == raw[:17]
    assert api_key_check(raw)


def test_bodies_are_random_and_use_the_whole_alphabet() -> None:
    raws = {api_key_generate("live")[0] for _ in range(500)}
    assert len(raws) == 500
    seen = set("".join(raw[9:41] for raw in raws))
    assert seen == set(BASE62)


def test_every_single_character_change_is_refused() -> None:
    for _ in range(5):
        raw, _ = api_key_generate("test")
        for at, original in enumerate(raw):
            for replacement in BASE62 + "_-":
                if replacement != original:
                    changed = raw[:at] + replacement + raw[at + 1 :]
                    assert not api_key_check(changed), changed
                    assert not reference_check(changed)


def test_malformed_keys_are_refused() -> None:
    raw, _ = api_key_generate("live")
    bad = [
        "",
        raw[:-1],
        raw + "0",
        raw.replace("trd_live_", "trd_prod_", 1),
        raw.replace("trd_live_", "trd_test_", 1),
        raw.upper(),
        " " + raw[1:],
        raw[:20] + "é" + raw[21:],
        raw[1:] + raw[0],
    ]
    for candidate in bad:
        assert not api_key_check(candidate), candidate
        assert not reference_check(candidate)
    # A well-formed key with a body and checksum made by the reference passes.
    forged = "trd_test_" + "A" * 32
    assert api_key_check(forged + checksum(forged))


def test_rust_and_reference_agree_on_random_strings() -> None:
    rng = random.Random(7)
    raw, _ = api_key_generate("live")
    alphabet = BASE62 + "_-é "
    for _ in range(20_000):
        candidate = list(raw)
        for _ in range(rng.choice([1, 2, 3])):
            candidate[rng.randrange(len(candidate))] = rng.choice(alphabet)
        text = "".join(candidate)[: rng.choice([46, 47, 47, 47, 48])]
        assert api_key_check(text) == reference_check(text), text


def test_unknown_environment_is_an_error() -> None:
    with pytest.raises(CoreError, match="unknown API key environment"):
        api_key_generate("prod")


def test_cache_positive_negative_and_miss() -> None:
    cache = KeyCache(60, 60, 100)
    record = {"id": "key_1", "scopes": ["*"]}
    assert cache.get("h1") == (False, None)
    assert cache.put("h1", record)
    assert cache.put_missing("h2")
    hit, found = cache.get("h1")
    assert hit and found is record
    assert cache.get("h2") == (True, None)
    assert len(cache) == 2
    with pytest.raises(ValueError, match="put_missing"):
        cache.put("h3", None)


def test_cache_ttls_are_separate() -> None:
    cache = KeyCache(ttl_seconds=0.5, negative_ttl_seconds=0.05, capacity=100)
    cache.put("known", "record")
    cache.put_missing("unknown")
    time.sleep(0.1)
    assert cache.get("unknown") == (False, None)
    assert cache.get("known") == (True, "record")
    time.sleep(0.45)
    assert cache.get("known") == (False, None)


def test_cache_invalidation_and_generations() -> None:
    cache = KeyCache(60, 60, 100)
    cache.put("h1", "record")
    generation = cache.generation  # a reader starts loading h2 from storage...
    assert cache.invalidate("h1")  # ...a revoke lands meanwhile...
    assert not cache.invalidate("h1")
    assert cache.get("h1") == (False, None)
    assert not cache.put("h2", "stale", generation)  # ...so the stale fill is dropped
    assert not cache.put_missing("h2", generation)
    assert cache.get("h2") == (False, None)
    assert cache.put("h2", "fresh", cache.generation)
    cache.clear()
    assert len(cache) == 0
    assert cache.generation == generation + 3


def test_cache_capacity_is_a_bound() -> None:
    cache = KeyCache(60, 60, 50)
    for i in range(1_000):
        cache.put(f"h{i}", i)
        assert len(cache) <= 50
    assert cache.get("h999") == (True, 999)
    off = KeyCache(60, 60, 0)
    assert not off.put("h", 1)
    assert off.get("h") == (False, None)


@pytest.mark.parametrize("ttl", [-1.0, float("nan"), float("inf")])
def test_cache_rejects_bad_ttls(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        KeyCache(ttl, 1, 10)
    with pytest.raises(ValueError, match="negative_ttl_seconds"):
        KeyCache(1, ttl, 10)


def test_unknown_keys_cannot_evict_valid_ones_from_the_cache() -> None:
    cache = KeyCache(60, 60, 100, negative_capacity=1_000)
    cache.put("valid", {"id": 1})
    for i in range(20_000):
        cache.put_missing(f"unknown-{i}")
    assert cache.get("valid") == (True, {"id": 1})
    assert cache.negative_len <= 1_000
    assert cache.get("unknown-19999") == (True, None)
