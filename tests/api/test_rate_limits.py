"""Rate limits over HTTP: the IETF fields on every answer, 429 with Retry-After past the limit."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    error_code,
    set_policies,
    signup,
)
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def test_users_see_their_policy_in_the_headers(client: httpx.Client) -> None:
    account = signup(client)
    first = client.get("/v1/me", headers=bearer(account))
    second = client.get("/v1/me", headers=bearer(account))
    assert first.headers["ratelimit-policy"] == '"user";q=1200;w=60'
    remaining = [
        int(re.search(r"r=(\d+)", r.headers["ratelimit"]).group(1)) for r in (first, second)
    ]
    assert remaining[1] == remaining[0] - 1


def test_a_key_policy_from_organization_settings_is_enforced(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    set_policies(client, owner, org["id"], ("tiny", 3, 60))
    key = create_key(client, owner, org["id"], rate_limit_policy="tiny")["key"]
    answers = [client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}) for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[3]
    assert error_code(refused) == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 20
    assert refused.headers["ratelimit-policy"] == '"tiny";q=3;w=60'
    assert re.search(r"r=0", refused.headers["ratelimit"])
    # Another key of the same organization has its own budget.
    other = create_key(client, owner, org["id"])["key"]
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_duplicate_policy_names_are_refused(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    policy = {"name": "a", "limit": 1, "period_seconds": 1}
    response = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"rate_limit_policies": [policy, policy]},
        headers=bearer(owner),
    )
    assert response.status_code == 400


def test_the_organization_policy_bounds_all_its_keys_together(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    keys = [create_key(client, owner, org["id"])["key"] for i in range(2)]
    # Set last: the owner's own requests in the organization would count against it too.
    set_policies(client, owner, org["id"], ("organization", 4, 60))
    statuses = [
        client.get("/v1/me", headers={"Authorization": f"Bearer {keys[i % 2]}"}).status_code
        for i in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]


def test_members_acting_in_the_organization_share_its_policy(client: httpx.Client) -> None:
    owner, member = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], member, "member")
    set_policies(client, owner, org["id"], ("organization", 5, 60))
    path = f"/v1/organizations/{org['id']}"
    statuses = [client.get(path, headers=bearer(who)).status_code for who in [owner, member] * 4]
    assert statuses == [200] * 5 + [429] * 3
    # Outside the organization, nothing is charged to it.
    assert client.get("/v1/me", headers=bearer(member)).status_code == 200


def test_a_policy_above_the_platform_maximum_is_refused(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    policies = [
        {"name": "fine", "limit": 100_000, "period_seconds": 60},
        {"name": "greedy", "limit": 200_000, "period_seconds": 60},
    ]
    response = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"rate_limit_policies": policies},
        headers=bearer(owner),
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "validation_failed"
    assert response.json()["error"]["details"]["path"] == "$.rate_limit_policies[1].limit"
    # Same limit over a shorter window is a higher rate: refused too.
    fast = [{"name": "fast", "limit": 100_000, "period_seconds": 30}]
    response = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"rate_limit_policies": fast},
        headers=bearer(owner),
    )
    assert response.status_code == 400, response.text
    set_policies(client, owner, org["id"], ("slow", 100_000, 120))
