from __future__ import annotations

import time

from treadle.cache import MISSING, TTLCache


def test_expiry_and_drop() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=0.05)
    cache.put("a", 1)
    assert cache.get("a") == 1
    cache.drop("a")
    assert cache.get("a") is MISSING
    cache.put("b", None)  # type: ignore[arg-type]
    assert cache.get("b") is None  # a cached "absent" is a hit, not a miss
    time.sleep(0.06)
    assert cache.get("b") is MISSING


def test_a_fill_that_raced_an_invalidation_does_not_land() -> None:
    cache: TTLCache[str, str] = TTLCache(ttl=60)
    generation = cache.generation  # a reader starts loading from the database...
    cache.drop("user")  # ...an invalidation arrives meanwhile...
    cache.put("user", "stale", generation)  # ...so its now-stale result is discarded
    assert cache.get("user") is MISSING
    cache.put("user", "fresh", cache.generation)
    assert cache.get("user") == "fresh"


def test_bounded() -> None:
    cache: TTLCache[int, int] = TTLCache(ttl=60, max_entries=10)
    for i in range(25):
        cache.put(i, i)
    assert cache.get(24) == 24
    assert sum(cache.get(i) is not MISSING for i in range(25)) <= 10
