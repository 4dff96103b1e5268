"""Two server workers keep providers' configurations, credentials and budgets in memory
(for seconds, a minute for credentials); a change made through one is seen by both at
once, through the invalidation bus, not when their caches expire."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import bearer, create_key, create_org, envelope, error_code, signup
from tests.support.model_servers import API_KEY, ModelServer
from tests.support.servers import Server, free_port, start_server

# Requests on fresh connections, which the kernel spreads over both workers: the chance
# that 24 of them all reach the same one is 2**-23.
SPREAD = 24


@pytest.fixture(scope="module")
def models() -> Iterator[ModelServer]:
    server = ModelServer(api_key=API_KEY).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_WORKERS": "2",
        "TREADLE_PROVIDER_ALLOW_PRIVATE": "true",
        # The defaults, said out loud: far longer than the test waits.
        "TREADLE_PROVIDER_CONFIG_CACHE_SECONDS": "5",
        "TREADLE_PROVIDER_CREDENTIAL_CACHE_SECONDS": "60",
    }
    tmp: Path = tmp_path_factory.mktemp("provider_workers")
    server = start_server("granian", env, tmp / "granian.log")
    yield server
    server.stop()


@pytest.fixture
def org(gateway: Server, models: ModelServer) -> dict[str, Any]:
    with gateway.client() as client:
        owner = signup(client)
        made = create_org(client, owner)
        org = {**made, "owner": bearer(owner)}
        put = client.put(
            f"/v1/organizations/{made['id']}/secrets/model-key",
            json={"value": API_KEY},
            headers=org["owner"],
        )
        assert put.status_code == 200, put.text
        assert configure(client, org, models).status_code == 200
        key = create_key(client, owner, made["id"], scopes=["providers.execute"])
    return {**org, "key": {"Authorization": f"Bearer {key['key']}"}}


def configure(
    client: httpx.Client, org: dict, models: ModelServer, **fields: Any
) -> httpx.Response:
    body = {
        "kind": "openai",
        "base_url": models.url + "/v1",
        "credential": "model-key",
        "models": [{"name": "small", "input_price": 1.0, "output_price": 2.0}],
        "price_version": "1",
        "timeout_seconds": 2,
        "max_retries": 0,
        **fields,
    }
    return client.put(
        f"/v1/organizations/{org['id']}/providers/oa", json=body, headers=org["owner"]
    )


def spread_calls(gateway: Server, org: dict) -> list[tuple[int, str | None]]:
    """SPREAD calls, each on a connection of its own: (status, error code) of each."""
    ask = {"provider": "oa", "model": "small", "messages": [{"role": "user", "content": "Hi"}]}
    out = []
    for _ in range(SPREAD):
        with gateway.client() as client:
            got = client.post("/v1/providers/execute", json=ask, headers=org["key"])
        out.append((got.status_code, None if got.is_success else error_code(got)))
    return out


def warm(gateway: Server, org: dict) -> None:
    """Both workers have the configuration, the credential and the budget in memory."""
    assert {status for status, _ in spread_calls(gateway, org)} == {200}


def test_a_disabled_provider_is_refused_by_every_worker_at_once(
    gateway: Server, org: dict, models: ModelServer
) -> None:
    warm(gateway, org)
    with gateway.client() as client:
        assert configure(client, org, models, enabled=False).status_code == 200
    time.sleep(0.2)
    assert set(spread_calls(gateway, org)) == {(409, "conflict")}


def test_a_deleted_credential_is_used_by_no_worker_after_the_delete(
    gateway: Server, org: dict
) -> None:
    warm(gateway, org)
    with gateway.client() as client:
        gone = client.delete(
            f"/v1/organizations/{org['id']}/secrets/model-key", headers=org["owner"]
        )
        assert gone.status_code == 200, gone.text
    time.sleep(0.2)
    # Not among the organization's secrets any more: refused before the provider is called.
    assert set(spread_calls(gateway, org)) == {(409, "conflict")}


def test_a_budget_set_is_enforced_by_every_worker_at_once(gateway: Server, org: dict) -> None:
    warm(gateway, org)
    with gateway.client() as client:
        put = client.put(
            f"/v1/organizations/{org['id']}/settings",
            json={"monthly_budget": 1e-9},
            headers=org["owner"],
        )
        assert put.status_code == 200, put.text
        assert envelope(put)["data"]["monthly_budget"] == pytest.approx(1e-9)
    time.sleep(0.2)
    assert set(spread_calls(gateway, org)) == {(402, "budget_exceeded")}
