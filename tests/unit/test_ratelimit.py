"""GCRA rate limiting: the in-process ``RateLimiter``, and ``GCRA_LUA`` run in Redis,
which must compute the same numbers for the same requests."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator

import pytest
import redis

from tests.reference.ratelimit import ReferenceLimiter
from treadle._core import GCRA_LUA, CoreError, RateLimiter

T0 = 1_700_000_000.0


def test_a_burst_of_exactly_limit_then_refusal() -> None:
    limiter = RateLimiter()
    results = [limiter.check("k", 10, 60.0, now=T0) for _ in range(12)]
    assert [r[0] for r in results] == [True] * 10 + [False] * 2
    assert [r[2] for r in results[:10]] == list(range(9, -1, -1))
    allowed, limit, remaining, reset_after, retry_after = results[10]
    assert (allowed, limit, remaining) == (False, 10, 0)
    assert retry_after == pytest.approx(6.0)  # one emission interval: 60 s / 10
    assert reset_after == pytest.approx(60.0)
    assert all(r[4] == 0.0 for r in results[:10])


def test_refills_one_interval_at_a_time() -> None:
    limiter = RateLimiter()
    for _ in range(5):
        limiter.check("k", 5, 1.0, now=T0)
    assert not limiter.check("k", 5, 1.0, now=T0 + 0.1)[0]
    assert limiter.check("k", 5, 1.0, now=T0 + 0.2)[0]
    assert not limiter.check("k", 5, 1.0, now=T0 + 0.2)[0]
    allowed, _, remaining, reset_after, _ = limiter.check("k", 5, 1.0, cost=0, now=T0 + 5)
    assert (allowed, remaining, reset_after) == (True, 5, 0.0)


def test_retry_after_is_when_it_would_pass() -> None:
    limiter = RateLimiter()
    for _ in range(3):
        limiter.check("k", 3, 3.0, now=T0)
    retry_after = limiter.check("k", 3, 3.0, now=T0)[4]
    assert not limiter.check("k", 3, 3.0, now=T0 + retry_after - 0.001)[0]
    assert limiter.check("k", 3, 3.0, now=T0 + retry_after)[0]


def test_costs_keys_and_reads() -> None:
    limiter = RateLimiter()
    assert limiter.check("a", 5, 5.0, cost=3, now=T0)[:3] == (True, 5, 2)
    refused = limiter.check("a", 5, 5.0, cost=3, now=T0)
    assert refused[:3] == (False, 5, 2)
    assert refused[4] == pytest.approx(1.0)
    assert limiter.check("a", 5, 5.0, cost=0, now=T0)[:3] == (True, 5, 2)
    assert limiter.check("b", 5, 5.0, now=T0)[:3] == (True, 5, 4)
    assert not limiter.check("c", 5, 5.0, cost=6, now=T0)[0]
    assert len(limiter) == 2
    limiter.clear()
    assert len(limiter) == 0


def test_default_clock_is_the_unix_time() -> None:
    limiter = RateLimiter()
    limiter.check("k", 1, 3600.0)
    assert not limiter.check("k", 1, 3600.0)[0]
    assert limiter.check("k", 1, 3600.0, now=T0 * 2)[0]


@pytest.mark.parametrize(
    ("limit", "period", "now"),
    [(0, 1.0, T0), (1, 0.0, T0), (1, float("nan"), T0), (1, 1.0, float("inf"))],
)
def test_bad_quotas_are_errors(limit: int, period: float, now: float) -> None:
    with pytest.raises(CoreError):
        RateLimiter().check("k", limit, period, now=now)


# --- the Lua script in Redis ----------------------------------------------------------


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    prefix = f"treadle-test-gcra-{secrets.token_hex(6)}:"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def lua(
    client: redis.Redis, key: str, limit: int, period: float, cost: int, now: float | None
) -> tuple[bool, int, int, float, float]:
    argv = [limit, round(period * 1e6), cost] + ([] if now is None else [round(now * 1e6)])
    allowed, lim, remaining, reset_us, retry_us = client.evalsha(
        client.script_load(GCRA_LUA), 1, key, *argv
    )
    return bool(allowed), lim, remaining, reset_us / 1e6, retry_us / 1e6


def test_lua_agrees_with_rust_on_random_sequences(client: redis.Redis, prefix: str) -> None:
    rng = random.Random(20_240_601)
    for run in range(40):
        limit = rng.choice([1, 2, 3, 7, 10, 100])
        period = rng.choice([0.5, 1.0, 3.0, 60.0])
        limiter, reference = RateLimiter(), ReferenceLimiter()
        key, now = f"{prefix}{run}", T0 + rng.random()
        for _ in range(60):
            now += rng.choice([0.0, 0.0, rng.random() * period / limit, rng.random() * period])
            cost = rng.choice([0, 1, 1, 1, 2, limit, limit + 1])
            want = limiter.check("k", limit, period, cost, now)
            assert reference.check("k", limit, period, cost, now) == want
            assert lua(client, key, limit, period, cost, now) == want, (run, limit, period)


def test_lua_with_the_server_clock(client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}server-clock"
    results = [lua(client, key, 5, 3600.0, 1, None) for _ in range(7)]
    assert [r[0] for r in results] == [True] * 5 + [False] * 2
    assert [r[2] for r in results[:5]] == [4, 3, 2, 1, 0]
    assert 719 < results[5][4] <= 720  # one interval: 3600 s / 5
    ttl_ms = client.pttl(key)
    assert 0 < ttl_ms <= 3_600_000


def test_lua_reads_do_not_write(client: redis.Redis, prefix: str) -> None:
    key = f"{prefix}read"
    assert lua(client, key, 5, 1.0, 0, T0) == (True, 5, 5, 0.0, 0.0)
    assert client.exists(key) == 0
