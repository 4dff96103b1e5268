"""Redis Cluster readiness without a cluster: the keys each Lua script touches share one
slot, and ``redis+cluster://`` URLs parse (or say what to fix)."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from treadle.bus.events import stream_keys
from treadle.bus.leases import Lease, Leases
from treadle.bus.redis import ClusterUrl, cluster_url, connect
from treadle.settings import Settings, SettingsError

PREFIXES = ["treadle:", "treadle-test-1a2b:treadle_cluster_99:", "x"]


def _slots(keys: list[str]) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_relay_script_touches_one_slot(prefix: str) -> None:
    stream, marker, origin = stream_keys(prefix)
    assert len(_slots([stream, marker, origin])) == 1
    # The feed reads the stream and the origin by their own names: the same ones.
    assert stream.startswith(prefix) and origin.startswith(stream)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_lease_scripts_touch_one_slot_whatever_the_principals(prefix: str) -> None:
    # A client that never connects: only the key names are looked at.
    leases = Leases(connect("redis://127.0.0.1:1/0"), prefix, 20, 100, 100)
    held = [
        Lease("m1", "user:6f1c0f8e", "9b2d0c4a"),
        Lease("m2", "api_key:0d9a7e31", "ffee0011"),
        Lease("m3", "user:aa", "bb"),
    ]
    # _RENEW takes every held lease's two sets in one call, _ACQUIRE one lease's two.
    keys = [key for lease in held for key in leases._keys(lease)]
    assert len(_slots(keys)) == 1
    assert len(set(keys)) == 6


def test_untagged_keys_would_spread_over_slots() -> None:
    # What the tags prevent: without them these land on different slots (CROSSSLOT).
    assert len(_slots(["treadle:events", "treadle:events:origin", "treadle:events:relayed"])) > 1


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+cluster://10.0.0.1:7000,10.0.0.2:7001/",
            ClusterUrl((("10.0.0.1", 7000), ("10.0.0.2", 7001)), None, None, False),
        ),
        (
            "rediss+cluster://app:s%40cret@redis-a,redis-b:6380",
            ClusterUrl((("redis-a", 6379), ("redis-b", 6380)), "app", "s@cret", True),
        ),
        (
            "redis+cluster://:pw@[::1]:7000/0",
            ClusterUrl((("::1", 7000),), None, "pw", False),
        ),
    ],
)
def test_cluster_urls_name_their_seed_nodes(url: str, expected: ClusterUrl) -> None:
    assert cluster_url(url) == expected


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://h:1/2", "unix:///tmp/s"])
def test_other_urls_are_one_server(url: str) -> None:
    assert cluster_url(url) is None


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis+cluster://h:7000/3", "only database 0"),
        ("redis+cluster://h:7000/?timeout=3", "takes no query options"),
        ("redis+cluster://h:70000/", "is not a host:port"),
        ("redis+cluster://h:7000,,h:7001/", "is not a host:port"),
        ("redis+cluster:///", "is not a host:port"),
        ("redis+cluster://" + ",".join(f"h:{7000 + i}" for i in range(65)), "at most 64"),
    ],
)
def test_bad_cluster_urls_say_what_to_fix(url: str, fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env({"TREADLE_REDIS_URL": url})


def test_a_prefix_with_a_brace_is_refused() -> None:
    # The first {...} of a key is its hash tag: such a prefix would move every key's slot.
    with pytest.raises(SettingsError, match="must not contain"):
        Settings.from_env({"TREADLE_REDIS_PREFIX": "treadle:{a}:"})
