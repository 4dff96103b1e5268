"""Authorization, API key and rate-limit hot paths: ``treadle._core`` against the pure-Python
references in ``tests/reference`` and, for authorization, pycasbin on the same policy.

Each benchmark checks its answers first, then times one side. Groups:

- ``authz_check_{1k,10k,100k}``: one check (a member of two teams, a resource with ACL
  entries) in an organization with that many ACL rules: Rust, the Python reference,
  pycasbin (RBAC with deny-override, the same rules as policies and groupings).
- ``authz_batch_1000``: 1,000 checks in one call (Rust ``check_batch`` at 1k and 100k
  rules), as 1,000 Rust ``check`` calls, and through the reference.
- ``authz_permissions``: effective permissions on one resource, Rust and reference.
- ``api_key``: ``api_key_check`` (Rust, reference) and a full cached verification
  (format check + keyed hash + ``KeyCache`` hit).
- ``ratelimit``: one GCRA decision: Rust in-process, the Python reference, and the Lua
  script in Redis (one round trip; skipped when no Redis answers).

pycasbin is a benchmark-only dependency: ``pip install pycasbin``; its benchmarks are
skipped without it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest

from tests.reference.authz import ReferenceAuthz, ReferenceOrg, ReferencePolicy
from tests.reference.keys import api_key_check as py_api_key_check
from tests.reference.ratelimit import ReferenceLimiter
from treadle._core import (
    GCRA_LUA,
    Authz,
    KeyCache,
    Policy,
    RateLimiter,
    Snapshot,
    api_key_check,
    api_key_generate,
    derive_key,
    keyed_hash,
)

ORG_POLICY = {
    "viewer": ["org.read", "doc.read"],
    "member": ["doc.write", "doc.share"],
    "admin": ["doc.delete", "members.manage"],
    "owner": ["*"],
}
TEAM_POLICY = {"viewer": ["team.read"], "member": ["doc.write"], "admin": ["team.manage"]}
ACL_ACTIONS = ["doc.read", "doc.write", "doc.delete", "doc.share", "*"]
USERS = 2_000
TEAMS = 100
SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000}

Item = tuple[str, str, str, str, str | None]


@dataclass
class Workload:
    members: dict[str, str]
    team_members: dict[tuple[str, str], str]
    acl: list[tuple[str, str, str, str, str, str]]
    probe: Item  # the single check that is timed
    items: list[Item]  # 1,000 mixed checks


@cache
def workload(rules: int) -> Workload:
    """An organization with ``rules`` ACL entries, about four per document, so a check
    meets the same number of entries at every size; plus ten team-wide ``*`` entries."""
    rng = random.Random(rules)
    roles = ["viewer", "member", "member", "member", "admin", "owner"]
    members = {f"u{i}": rng.choice(roles) for i in range(USERS)}
    team_members = {
        (f"t{(i + k * 37) % TEAMS}", f"u{i}"): "member" for i in range(USERS) for k in (0, 1)
    }
    docs = max(rules // 4, 1)
    acl = [(f"w{i}", "doc", "*", "doc.delete", f"team:t{i}", "deny") for i in range(10)]
    for n in range(rules - len(acl)):
        user = rng.random() < 0.7
        subject = f"user:u{rng.randrange(USERS)}" if user else f"team:t{rng.randrange(TEAMS)}"
        effect = "deny" if rng.random() < 0.2 else "allow"
        action = rng.choice(ACL_ACTIONS)
        acl.append((f"e{n:06d}", "doc", f"d{rng.randrange(docs)}", action, subject, effect))
    # The probe: u7 (in teams t7 and t44) writing d3, which has entries for u7 and t7.
    acl += [
        ("p1", "doc", "d3", "doc.share", "user:u7", "allow"),
        ("p2", "doc", "d3", "doc.read", "team:t7", "deny"),
    ]
    members["u7"] = "member"
    probe: Item = ("user:u7", "doc.write", "doc", "d3", None)
    items: list[Item] = [
        (
            f"user:u{rng.randrange(USERS + 50)}",
            rng.choice(["doc.read", "doc.write", "doc.delete", "members.manage"]),
            "doc",
            f"d{rng.randrange(docs)}",
            None,
        )
        for _ in range(1_000)
    ]
    return Workload(members, team_members, acl, probe, items)


@cache
def rust_authz(rules: int) -> Authz:
    w = workload(rules)
    authz = Authz(Policy(ORG_POLICY, TEAM_POLICY))
    assert authz.load(Snapshot("org", 1, w.members, w.team_members, w.acl))
    return authz


@cache
def reference_authz(rules: int) -> ReferenceAuthz:
    w = workload(rules)
    authz = ReferenceAuthz(ReferencePolicy(ORG_POLICY, TEAM_POLICY))
    assert authz.load(ReferenceOrg("org", 1, w.members, w.team_members, w.acl))
    return authz


CASBIN_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*")
"""


@cache
def casbin_enforcer(rules: int) -> Any:
    """The same organization for pycasbin: ACL entries as policies on ``doc/<id>``, org
    roles as policies for ``role:<name>`` on every object, users linked to their teams
    and roles, each role to the one below it. Deny-override gives deny ACL > allow ACL
    > role, as treadle decides (every probe user is a member, no team roles asked)."""
    casbin = pytest.importorskip("casbin")
    w = workload(rules)
    model = casbin.model.Model()
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    policies = [
        [subject, f"doc/{resource_id}", action, effect]
        for (_, _, resource_id, action, subject, effect) in w.acl
    ]
    policies += [
        [f"role:{role}", "*", action, "allow"]
        for role, actions in ORG_POLICY.items()
        for action in actions
    ]
    groupings = [[f"user:{user}", f"role:{role}"] for user, role in w.members.items()]
    groupings += [[f"user:{user}", f"team:{team}"] for (team, user) in w.team_members]
    groupings += [["role:owner", "role:admin"], ["role:admin", "role:member"]]
    groupings += [["role:member", "role:viewer"]]
    # add_policies checks each rule against a list (quadratic: minutes at 100k), so the
    # rules go into the model directly, as its file adapter would leave them.
    for sec, rows in (("p", policies), ("g", groupings)):
        assertion = enforcer.get_model()[sec][sec]
        assertion.policy = rows
        assertion.policy_map = {",".join(row): at for at, row in enumerate(rows)}
    enforcer.build_role_links()
    return enforcer


def decided(decision: Any) -> tuple[bool, str, str | None]:
    return decision.allowed, decision.reason, decision.decided_by


def call(check: Callable[..., Any], item: Item) -> Callable[[], Any]:
    """A zero-argument call of ``check`` on ``item``, so the benchmark times the call and
    not the unpacking of an argument tuple (which costs more than a Rust check)."""
    subject, action, resource_type, resource_id, team_id = item
    return lambda: check("org", subject, action, resource_type, resource_id, team_id)


def rust_check(authz: Authz, item: Item) -> Any:
    return authz.check("org", *item)


def reference_check(authz: ReferenceAuthz, item: Item) -> Any:
    return authz.check("org", *item)


def casbin_check(enforcer: Any, item: Item) -> bool:
    subject, action, _, resource_id, _ = item
    return bool(enforcer.enforce(subject, f"doc/{resource_id}", action))


def _agree_with_reference(rules: int, sample: int = 200) -> None:
    w, rust = workload(rules), rust_authz(rules)
    ref = reference_authz(rules)
    for item in [w.probe, *w.items[:sample]]:
        assert decided(rust_check(rust, item)) == decided(reference_check(ref, item)), item
    probe = rust_check(rust, w.probe)
    assert decided(probe) == (True, "org_role", "org_role:member")


# --- single check at 1k / 10k / 100k rules ---------------------------------------------


def _sized(name: str) -> Any:
    return pytest.param(
        SIZES[name], id=name, marks=pytest.mark.benchmark(group=f"authz_check_{name}")
    )


SIZED = [_sized(name) for name in SIZES]


@pytest.mark.parametrize("rules", SIZED)
def test_check_rust(benchmark: Any, rules: int) -> None:
    _agree_with_reference(rules)
    benchmark(call(rust_authz(rules).check, workload(rules).probe))


@pytest.mark.parametrize("rules", SIZED)
def test_check_python_reference(benchmark: Any, rules: int) -> None:
    _agree_with_reference(rules, sample=20)
    ref = reference_authz(rules)
    benchmark(call(ref.check, workload(rules).probe))


@pytest.mark.parametrize("rules", SIZED)
def test_check_pycasbin(benchmark: Any, rules: int) -> None:
    enforcer = casbin_enforcer(rules)
    w, rust = workload(rules), rust_authz(rules)
    for item in [w.probe, *w.items[: max(50_000 // rules, 5)]]:
        subject = item[0].removeprefix("user:")
        if subject in w.members:  # pycasbin has no notion of membership
            assert casbin_check(enforcer, item) == rust_check(rust, item).allowed, item
    benchmark(casbin_check, enforcer, w.probe)


# --- 1,000 checks ----------------------------------------------------------------------


def rust_batch(authz: Authz, items: list[Item]) -> list[Any]:
    return authz.check_batch("org", items)


def rust_loop(authz: Authz, items: list[Item]) -> list[Any]:
    return [authz.check("org", *item) for item in items]


def reference_batch(authz: ReferenceAuthz, items: list[Item]) -> list[Any]:
    return authz.check_batch("org", items)


@pytest.mark.parametrize("rules", [pytest.param(1_000, id="1k"), pytest.param(100_000, id="100k")])
@pytest.mark.benchmark(group="authz_batch_1000")
def test_batch_rust(benchmark: Any, rules: int) -> None:
    items, rust = workload(rules).items, rust_authz(rules)
    batch = rust_batch(rust, items)
    assert batch == rust_loop(rust, items)
    assert {d.reason for d in batch} >= {"org_role", "not_member", "no_grant", "acl_allow"}
    if rules == 1_000:
        ref = reference_authz(rules)
        assert [decided(d) for d in batch] == [decided(d) for d in reference_batch(ref, items)]
    benchmark(rust_batch, rust, items)


@pytest.mark.benchmark(group="authz_batch_1000")
def test_batch_rust_as_single_calls(benchmark: Any) -> None:
    items, rust = workload(1_000).items, rust_authz(1_000)
    assert rust_loop(rust, items) == rust_batch(rust, items)
    benchmark(rust_loop, rust, items)


@pytest.mark.benchmark(group="authz_batch_1000")
def test_batch_python_reference_1k(benchmark: Any) -> None:
    items = workload(1_000).items
    ref, rust = reference_authz(1_000), rust_authz(1_000)
    got = [decided(d) for d in reference_batch(ref, items)]
    assert got == [decided(d) for d in rust_batch(rust, items)]
    benchmark(reference_batch, ref, items)


# --- effective permissions -------------------------------------------------------------


@pytest.mark.benchmark(group="authz_permissions")
def test_permissions_rust(benchmark: Any) -> None:
    rust, ref = rust_authz(1_000), reference_authz(1_000)
    args = ("org", "user:u7", "doc", "d3")
    perms = rust.permissions(*args)
    assert perms == ref.permissions(*args)
    assert "doc.write" in perms and "doc.read" not in perms
    benchmark(lambda: rust.permissions("org", "user:u7", "doc", "d3"))


@pytest.mark.benchmark(group="authz_permissions")
def test_permissions_python_reference(benchmark: Any) -> None:
    rust, ref = rust_authz(1_000), reference_authz(1_000)
    args = ("org", "user:u7", "doc", "d3")
    assert ref.permissions(*args) == rust.permissions(*args)
    benchmark(lambda: ref.permissions("org", "user:u7", "doc", "d3"))


# --- API keys --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_key() -> str:
    return api_key_generate("live")[0]


@pytest.mark.benchmark(group="api_key")
def test_api_key_check_rust(benchmark: Any, api_key: str) -> None:
    assert api_key_check(api_key) and not api_key_check(api_key[:-1] + "!")
    assert py_api_key_check(api_key)
    benchmark(lambda: api_key_check(api_key))


@pytest.mark.benchmark(group="api_key")
def test_api_key_check_python_reference(benchmark: Any, api_key: str) -> None:
    assert py_api_key_check(api_key) and not py_api_key_check(api_key[:-1] + "!")
    benchmark(lambda: py_api_key_check(api_key))


@pytest.mark.benchmark(group="api_key")
def test_api_key_verify_cached_rust(benchmark: Any, api_key: str) -> None:
    """What a request with a known key costs after the first one: format check, keyed
    hash, cache hit."""
    hash_key = derive_key("treadle bench api-key hashing", b"bench secret")
    cache = KeyCache(60.0, 5.0, 100_000)
    record = {"id": "key_1", "org_id": "org", "scopes": ["*"]}
    cache.put(keyed_hash(hash_key, api_key.encode()), record)

    def verify(raw: str) -> object | None:
        if not api_key_check(raw):
            return None
        hit, found = cache.get(keyed_hash(hash_key, raw.encode()))
        return found if hit else None

    assert verify(api_key) is record
    assert verify(api_key_generate("live")[0]) is None
    assert verify(api_key[:-1] + "!") is None
    benchmark(lambda: verify(api_key))


# --- rate limiting ---------------------------------------------------------------------


@pytest.mark.benchmark(group="ratelimit")
def test_ratelimit_rust(benchmark: Any) -> None:
    limiter, reference = RateLimiter(), ReferenceLimiter()
    for now in (0.0, 0.0, 0.0, 0.5, 2.0):
        got = limiter.check("probe", 2, 1.0, 1, now)
        assert got == reference.check("probe", 2, 1.0, 1, now)
    benchmark(lambda: limiter.check("org_1:key_1", 1_000_000_000, 1.0))


@pytest.mark.benchmark(group="ratelimit")
def test_ratelimit_python_reference(benchmark: Any) -> None:
    reference = ReferenceLimiter()
    assert [reference.check("probe", 2, 1.0, 1, 0.0)[0] for _ in range(3)] == [True, True, False]
    benchmark(lambda: reference.check("org_1:key_1", 1_000_000_000, 1.0))


@pytest.fixture(scope="module")
def redis_client() -> Iterator[Any]:
    redis = pytest.importorskip("redis")
    url = os.environ.get("TREADLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url}")
    key = f"treadle-bench-gcra-{os.getpid()}"
    yield client, key
    client.delete(key, f"{key}:probe")
    client.close()


@pytest.mark.benchmark(group="ratelimit")
def test_ratelimit_redis_lua(benchmark: Any, redis_client: Any) -> None:
    client, key = redis_client
    sha = client.script_load(GCRA_LUA)
    limiter = RateLimiter()
    for now in (0.0, 0.0, 0.0, 0.5):
        want = limiter.check("probe", 2, 1.0, 1, now)
        got = client.evalsha(sha, 1, key + ":probe", 2, 1_000_000, 1, round(now * 1e6))
        assert (bool(got[0]), got[1], got[2], got[3] / 1e6, got[4] / 1e6) == want
    benchmark(lambda: client.evalsha(sha, 1, key, 1_000_000_000, 1_000_000, 1))
