"""The providers gateway over HTTP, against real local servers speaking OpenAI chat
completions and Anthropic Messages: configuration and tenancy, whole and streamed calls,
usage records and costs, estimates, budgets, retries with Retry-After, timeouts, truncated
streams, the circuit breaker, fallbacks and idempotent replays."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    envelope,
    error_code,
    signup,
)
from tests.support.model_servers import API_KEY, INPUT_TOKENS, WORDS, ModelServer, Script
from tests.support.servers import Server, free_port, start_server
from treadle.services.secrets import Secrets

PRICES = {"input_price": 2.0, "output_price": 10.0}
BREAKER_FAILURES = 3
HAS_SECRETS = hasattr(Secrets, "reveal")


@pytest.fixture(scope="module")
def models() -> Iterator[ModelServer]:
    server = ModelServer(api_key=None).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own: it may call 127.0.0.1, retries quickly, and its breaker opens
    after 3 failures for 1 s."""
    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_PROVIDER_ALLOW_PRIVATE": "true",
        "TREADLE_PROVIDER_RETRY_BASE_SECONDS": "0.02",
        "TREADLE_PROVIDER_RETRY_MAX_SECONDS": "2",
        "TREADLE_PROVIDER_BREAKER_FAILURES": str(BREAKER_FAILURES),
        "TREADLE_PROVIDER_BREAKER_SECONDS": "1",
        "TREADLE_PROVIDER_CONFIG_CACHE_SECONDS": "0.2",
    }
    tmp: Path = tmp_path_factory.mktemp("providers")
    server = start_server("granian", env, tmp / "granian.log")
    yield server
    server.stop()


@pytest.fixture
def client(gateway: Server) -> Iterator[httpx.Client]:
    with gateway.client() as c:
        yield c


def configure(
    client: httpx.Client, org: dict, name: str, kind: str, url: str, **fields: Any
) -> httpx.Response:
    body = {
        "kind": kind,
        "base_url": url + ("/v1" if kind == "openai" else ""),
        "models": [
            {"name": "small", **PRICES},
            {"name": "large", **PRICES, "max_output_tokens": 64},
        ],
        "price_version": "2025-01",
        "timeout_seconds": 2,
        "max_retries": 2,
        **fields,
    }
    return client.put(
        f"/v1/organizations/{org['id']}/providers/{name}", json=body, headers=bearer(org["owner"])
    )


@pytest.fixture
def org(client: httpx.Client, models: ModelServer) -> dict[str, Any]:
    owner = signup(client)
    made = create_org(client, owner)
    org = {**made, "owner": owner}
    for name, kind in (("oa", "openai"), ("an", "anthropic")):
        done = configure(client, org, name, kind, models.url)
        assert done.status_code == 200, done.text
    key = create_key(client, owner, org["id"], scopes=["providers.execute", "providers.read"])
    org["key"] = {"Authorization": f"Bearer {key['key']}"}
    org["key_id"] = key["id"]
    return org


def ask(provider: str = "oa", model: str = "small", **fields: Any) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        **fields,
    }


def unique_model(models: ModelServer, org: dict, client: httpx.Client, provider: str) -> str:
    """A model name no other test scripts, added to the provider's price table."""
    name = f"m-{uuid.uuid4().hex[:8]}"
    kind = "openai" if provider.startswith("oa") else "anthropic"
    models_list = [{"name": "small", **PRICES}, {"name": name, **PRICES}]
    done = configure(client, org, provider, kind, models.url, models=models_list)
    assert done.status_code == 200, done.text
    return name


def sse(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in response.text.split("\n\n"):
        if not frame.strip():
            continue
        lines = dict(line.split(": ", 1) for line in frame.split("\n"))
        out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def calls(gateway: Server, org: dict, expected: int = 1, wait: float = 0.0) -> list[dict[str, Any]]:
    """The organization's call records. An answered call's are committed before its
    answer, so they are read at once; a call the client left is recorded without anybody
    waiting: ``wait`` seconds for ``expected`` records."""
    deadline = time.monotonic() + wait
    while True:
        with psycopg.connect(gateway.env["TREADLE_DATABASE_URL"]) as conn:
            cur = conn.cursor(row_factory=psycopg.rows.dict_row)
            cur.execute(
                "SELECT * FROM provider_calls WHERE organization_id = %s ORDER BY created_at",
                (org["id"],),
            )
            rows = cur.fetchall()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def set_budget(gateway: Server, client: httpx.Client, org: dict, cap: float) -> None:
    """The organization's monthly_budget, through its settings."""
    put = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"monthly_budget": cap},
        headers=bearer(org["owner"]),
    )
    assert put.status_code == 200, put.text


# --- configuration and tenancy -----------------------------------------------------------


def test_configuration_round_trips_and_lists_in_the_catalogue(
    client: httpx.Client, org: dict
) -> None:
    got = client.get(f"/v1/organizations/{org['id']}/providers/oa", headers=bearer(org["owner"]))
    data = envelope(got)["data"]
    assert data["kind"] == "openai" and data["price_version"] == "2025-01"
    assert [m["name"] for m in data["models"]] == ["small", "large"]
    listed = client.get("/v1/providers", headers=org["key"])
    entries = {e["name"]: e for e in envelope(listed)["data"]}
    assert set(entries) == {"an", "oa"}
    assert entries["an"]["capabilities"]["stream"] is True
    assert entries["oa"]["circuit"] == "closed"
    assert entries["oa"]["models"][1] == {"name": "large", **PRICES, "max_output_tokens": 64}


def test_bad_configurations_are_refused(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    assert configure(client, org, "x", "grpc", models.url).status_code == 400
    dup = configure(client, org, "x", "openai", models.url, models=[{"name": "a", **PRICES}] * 2)
    assert dup.status_code == 400
    bad_name = configure(client, org, "Bad Name", "openai", models.url)
    assert bad_name.status_code in (400, 404)
    negative = configure(
        client,
        org,
        "x",
        "openai",
        models.url,
        models=[{"name": "a", "input_price": -1, "output_price": 1}],
    )
    assert negative.status_code == 400


def test_private_base_urls_are_refused_by_default(server: Server, models: ModelServer) -> None:
    # The shared server keeps the default: no provider on loopback or private addresses.
    with server.client() as client:
        owner = signup(client)
        made = {**create_org(client, owner), "owner": owner}
        refused = configure(client, made, "local", "openai", models.url)
        if refused.status_code == 200:
            pytest.skip("the shared servers allow private provider URLs")
        assert error_code(refused) == "url_refused"
        metadata = configure(client, made, "meta", "openai", "http://169.254.169.254")
        assert error_code(metadata) == "url_refused"


def test_another_tenants_provider_is_not_found(client: httpx.Client, org: dict) -> None:
    stranger = signup(client)
    other = {**create_org(client, stranger), "owner": stranger}
    got = client.get(f"/v1/organizations/{org['id']}/providers/oa", headers=bearer(stranger))
    assert got.status_code == 404
    # Naming the other organization in the body: not found, not called.
    theirs = client.post(
        "/v1/providers/execute", json=ask(organization_id=org["id"]), headers=bearer(stranger)
    )
    assert theirs.status_code == 404
    # Their own organization has no provider of that name.
    mine = client.post(
        "/v1/providers/execute", json=ask(organization_id=other["id"]), headers=bearer(stranger)
    )
    assert error_code(mine) == "not_found"
    # A key of one organization naming another: not found.
    crossed = client.post(
        "/v1/providers/execute", json=ask(organization_id=other["id"]), headers=org["key"]
    )
    assert crossed.status_code == 404


def test_roles_read_execute_and_manage(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    viewer, member = signup(client), signup(client)
    add_member(client, org["owner"], org["id"], viewer, "viewer")
    add_member(client, org["owner"], org["id"], member, "member")
    body = ask(organization_id=org["id"])
    listed = client.get(
        "/v1/providers", params={"organization_id": org["id"]}, headers=bearer(viewer)
    )
    assert listed.status_code == 200
    assert (
        client.post("/v1/providers/execute", json=body, headers=bearer(viewer)).status_code == 403
    )
    assert (
        client.post("/v1/providers/execute", json=body, headers=bearer(member)).status_code == 200
    )
    as_member = {**org, "owner": member}
    assert configure(client, as_member, "mine", "openai", models.url).status_code == 403


def test_delete_removes_the_provider(client: httpx.Client, org: dict, models: ModelServer) -> None:
    assert configure(client, org, "gone", "openai", models.url).status_code == 200
    path = f"/v1/organizations/{org['id']}/providers/gone"
    deleted = client.delete(path, headers=bearer(org["owner"]))
    assert envelope(deleted)["data"]["name"] == "gone"
    assert client.get(path, headers=bearer(org["owner"])).status_code == 404
    assert client.delete(path, headers=bearer(org["owner"])).status_code == 404
    time.sleep(0.3)  # the configuration cache of the test server
    assert (
        client.post("/v1/providers/execute", json=ask("gone"), headers=org["key"]).status_code
        == 404
    )


# --- calls ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["oa", "an"])
def test_execute_answers_with_usage_and_cost(
    client: httpx.Client, gateway: Server, org: dict, models: ModelServer, provider: str
) -> None:
    done = client.post("/v1/providers/execute", json=ask(provider), headers=org["key"])
    data = envelope(done)["data"]
    assert data["content"] == "".join(WORDS)
    assert data["usage"] == {
        "input_tokens": INPUT_TOKENS,
        "output_tokens": len(WORDS),
        "estimated": False,
    }
    expected = (INPUT_TOKENS * 2.0 + len(WORDS) * 10.0) / 1_000_000
    assert data["cost"]["total"] == pytest.approx(expected)
    assert data["attempts"] == 1 and data["fallback"] is False
    sent = models.calls("small")[-1]
    if provider == "an":
        assert sent.path == "/v1/messages"
        assert sent.body["system"] == "Be brief."
        assert [m["role"] for m in sent.body["messages"]] == ["user"]
        assert sent.headers["anthropic-version"]
    else:
        assert sent.path == "/v1/chat/completions"
        assert sent.body["messages"][0]["role"] == "system"
    [record] = calls(gateway, org)
    assert record["provider"] == provider and record["status"] == "ok"
    assert record["input_tokens"] == INPUT_TOKENS and record["output_tokens"] == len(WORDS)
    assert str(record["api_key_id"]) == org["key_id"] and record["latency_ms"] > 0
    assert float(record["cost"]) == pytest.approx(expected)


def test_a_call_is_answered_once_its_records_are_committed_or_after_the_wait(
    client: httpx.Client, gateway: Server, org: dict
) -> None:
    assert client.post("/v1/providers/execute", json=ask(), headers=org["key"]).is_success
    calls(gateway, org, 1)
    # Hold the organization's spend row, which each batch of records updates: the next
    # call's records cannot commit while it is held.
    with psycopg.connect(gateway.env["TREADLE_DATABASE_URL"]) as holder:
        holder.execute(
            "SELECT 1 FROM provider_spend WHERE organization_id = %s FOR UPDATE", (org["id"],)
        )
        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                client.post, "/v1/providers/execute", json=ask(), headers=org["key"]
            )
            time.sleep(0.5)
            assert not pending.done()  # waiting for its records
            holder.commit()
            answer = pending.result(timeout=5)
        assert answer.status_code == 200 and time.monotonic() - started < 2
        assert len(calls(gateway, org)) == 2  # committed before the answer
        # Held past provider_usage_wait_seconds (2 s), the call is answered anyway and
        # its records follow.
        holder.execute(
            "SELECT 1 FROM provider_spend WHERE organization_id = %s FOR UPDATE", (org["id"],)
        )
        started = time.monotonic()
        late = client.post("/v1/providers/execute", json=ask(), headers=org["key"])
        assert late.status_code == 200 and 1.9 < time.monotonic() - started < 4
        assert len(calls(gateway, org)) == 2
        holder.commit()
    assert len(calls(gateway, org, 3, wait=5)) == 3


def test_usage_records_reach_the_usage_summary(
    client: httpx.Client, gateway: Server, org: dict
) -> None:
    for _ in range(2):
        assert (
            client.post("/v1/providers/execute", json=ask(), headers=org["key"]).status_code == 200
        )
    calls(gateway, org, 2)
    got = client.get(f"/v1/organizations/{org['id']}/usage", headers=bearer(org["owner"]))
    total = {r["metric"]: r for r in envelope(got)["data"]["totals"]}
    assert total["provider.input_tokens"]["quantity"] == 2 * INPUT_TOKENS
    assert total["provider.output_tokens"]["quantity"] == 2 * len(WORDS)
    assert total["provider.output_tokens"]["cost"] == pytest.approx(2 * len(WORDS) * 10 / 1e6)


@pytest.mark.parametrize("provider", ["oa", "an"])
def test_stream_relays_tokens_then_usage_and_cost(
    client: httpx.Client, gateway: Server, org: dict, provider: str
) -> None:
    got = client.post("/v1/providers/execute/stream", json=ask(provider), headers=org["key"])
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/event-stream")
    events = sse(got)
    assert [e for e, _ in events] == ["token"] * len(WORDS) + ["done"]
    assert "".join(d["text"] for e, d in events if e == "token") == "".join(WORDS)
    done = events[-1][1]
    assert done["usage"] == {
        "input_tokens": INPUT_TOKENS,
        "output_tokens": len(WORDS),
        "estimated": False,
    }
    assert done["cost"]["total"] > 0 and done["first_token_ms"] is not None
    [record] = calls(gateway, org)
    assert record["stream"] is True and record["status"] == "ok"


def test_stream_tokens_arrive_as_the_provider_sends_them(
    gateway: Server, org: dict, models: ModelServer
) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        model = unique_model(models, org, client, "oa")
        models.script(model, Script(gap=0.3))
        arrivals = []
        with client.stream(
            "POST", "/v1/providers/execute/stream", json=ask(model=model), headers=org["key"]
        ) as got:
            for line in got.iter_lines():
                if line.startswith("event: token"):
                    arrivals.append(time.monotonic())
    assert len(arrivals) == len(WORDS)
    # Relayed one by one, not gathered until the end.
    assert arrivals[-1] - arrivals[0] > 0.3 * (len(WORDS) - 2)


def test_a_truncated_stream_ends_with_an_error_event_and_is_recorded(
    client: httpx.Client, gateway: Server, org: dict, models: ModelServer
) -> None:
    model = unique_model(models, org, client, "an")
    models.script(model, Script(truncate_after=4))
    got = client.post("/v1/providers/execute/stream", json=ask("an", model), headers=org["key"])
    events = sse(got)
    assert events[-1][0] == "error"
    assert events[-1][1]["code"] == "provider_error"
    assert events[-1][1]["usage"]["input_tokens"] == INPUT_TOKENS
    [record] = calls(gateway, org)
    assert record["status"] == "error" and record["error_code"] == "provider_error"


def test_a_stalled_stream_times_out(client: httpx.Client, org: dict, models: ModelServer) -> None:
    model = unique_model(models, org, client, "oa")
    models.script(model, Script(gap=3))  # past the provider's timeout of 2 s
    got = client.post("/v1/providers/execute/stream", json=ask(model=model), headers=org["key"])
    events = sse(got)
    assert events[-1][0] == "error" and events[-1][1]["code"] == "provider_timeout"


def test_a_client_leaving_a_stream_ends_it_and_it_is_recorded(
    gateway: Server, org: dict, models: ModelServer
) -> None:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        model = unique_model(models, org, client, "oa")
        models.script(model, Script(gap=0.5, words=["a"] * 20))
        with client.stream(
            "POST", "/v1/providers/execute/stream", json=ask(model=model), headers=org["key"]
        ) as got:
            for line in got.iter_lines():
                if line.startswith("event: token"):
                    break
    [record] = calls(gateway, org, wait=5)
    assert record["status"] == "cancelled"
    assert 1 <= record["output_tokens"] < 20


def test_a_slow_provider_times_out_with_504(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    model = unique_model(models, org, client, "oa")
    models.script(model, Script(delay=3))
    got = client.post("/v1/providers/execute", json=ask(model=model), headers=org["key"])
    assert got.status_code == 504 and error_code(got) == "provider_timeout"


# --- resilience ----------------------------------------------------------------------------


def test_429_is_retried_after_its_retry_after(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    model = unique_model(models, org, client, "oa")
    models.script(model, Script(status=429, retry_after="1"))
    started = time.monotonic()
    got = client.post("/v1/providers/execute", json=ask(model=model), headers=org["key"])
    assert envelope(got)["data"]["attempts"] == 2
    seen = models.calls(model)
    assert len(seen) == 2 and seen[1].at - seen[0].at >= 0.95
    assert time.monotonic() - started >= 0.95


def test_500s_are_retried_then_mapped_to_502(
    client: httpx.Client, gateway: Server, org: dict, models: ModelServer
) -> None:
    model = unique_model(models, org, client, "an")
    models.script(model, Script(status=500), Script(status=503))
    ok = client.post("/v1/providers/execute", json=ask("an", model), headers=org["key"])
    assert envelope(ok)["data"]["attempts"] == 3
    models.script(model, *[Script(status=500)] * 3)
    failed = client.post("/v1/providers/execute", json=ask("an", model), headers=org["key"])
    body = envelope(failed)
    assert failed.status_code == 502 and body["error"]["code"] == "provider_error"
    assert body["error"]["details"]["upstream_status"] == 500
    assert body["error"]["details"]["attempts"] == 3
    assert [r["status"] for r in calls(gateway, org, 2)] == ["ok", "error"]


def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    model = unique_model(models, org, client, "oa")
    models.script(model, Script(status=429, retry_after="120"))
    started = time.monotonic()
    got = client.post("/v1/providers/execute", json=ask(model=model), headers=org["key"])
    assert got.status_code == 503 and error_code(got) == "provider_unavailable"
    assert int(got.headers["retry-after"]) == 120
    assert time.monotonic() - started < 2


def test_the_breaker_opens_then_lets_a_probe_through(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    done = configure(client, org, "brk", "openai", models.url, max_retries=0)
    assert done.status_code == 200
    models.script("small", *[Script(status=500)] * BREAKER_FAILURES)
    for _ in range(BREAKER_FAILURES):
        failed = client.post("/v1/providers/execute", json=ask("brk"), headers=org["key"])
        assert failed.status_code == 502
    before = len(models.calls("small"))
    refused = client.post("/v1/providers/execute", json=ask("brk"), headers=org["key"])
    assert refused.status_code == 503 and error_code(refused) == "provider_unavailable"
    assert envelope(refused)["error"]["details"]["reason"] == "circuit_open"
    assert "retry-after" in refused.headers
    assert len(models.calls("small")) == before  # not called
    listed = envelope(client.get("/v1/providers", headers=org["key"]))["data"]
    assert {e["name"]: e["circuit"] for e in listed}["brk"] == "open"
    time.sleep(1.1)
    probe = client.post("/v1/providers/execute", json=ask("brk"), headers=org["key"])
    assert probe.status_code == 200
    listed = envelope(client.get("/v1/providers", headers=org["key"]))["data"]
    assert {e["name"]: e["circuit"] for e in listed}["brk"] == "closed"


def test_fallbacks_answer_in_order_when_the_model_fails(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    model = unique_model(models, org, client, "oa")
    models.script(model, *[Script(status=500)] * 3)
    body = ask(model=model, fallbacks=[{"provider": "an", "model": "small"}])
    got = client.post("/v1/providers/execute", json=body, headers=org["key"])
    data = envelope(got)["data"]
    assert data["provider"] == "an" and data["model"] == "small" and data["fallback"] is True
    assert data["attempts"] == 4
    # A stream falls back while it opens too.
    models.script(model, *[Script(status=500)] * 3)
    streamed = client.post("/v1/providers/execute/stream", json=body, headers=org["key"])
    done = sse(streamed)[-1]
    assert done[0] == "done" and done[1]["provider"] == "an" and done[1]["fallback"] is True


def test_an_idempotency_key_replays_without_calling_again(
    client: httpx.Client, org: dict, models: ModelServer
) -> None:
    model = unique_model(models, org, client, "oa")
    headers = {**org["key"], "Idempotency-Key": str(uuid.uuid4())}
    first = client.post("/v1/providers/execute", json=ask(model=model), headers=headers)
    again = client.post("/v1/providers/execute", json=ask(model=model), headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["data"] == envelope(first)["data"]
    assert len(models.calls(model)) == 1
    other = client.post(
        "/v1/providers/execute", json=ask(model=model, max_tokens=5), headers=headers
    )
    assert other.status_code == 422


# --- estimates and budgets -------------------------------------------------------------


def test_estimate_prices_prompt_and_max_tokens(client: httpx.Client, org: dict) -> None:
    got = client.post("/v1/providers/estimate", json=ask(max_tokens=100), headers=org["key"])
    data = envelope(got)["data"]
    assert data["price_version"] == "2025-01" and data["output_tokens"] == 100
    assert data["input_tokens"] > 0
    expected = (data["input_tokens"] * 2.0 + 100 * 10.0) / 1e6
    assert data["cost"]["total"] == pytest.approx(expected)
    assert data["budget"] == {"monthly_budget": None, "spent": 0, "allowed": True}


def test_an_unknown_model_is_a_400_naming_the_known_ones(client: httpx.Client, org: dict) -> None:
    for route in ("/v1/providers/estimate", "/v1/providers/execute"):
        got = client.post(route, json=ask(model="nope"), headers=org["key"])
        body = envelope(got)
        assert got.status_code == 400
        assert body["error"]["details"]["known"] == ["small", "large"]
        assert "small" in body["error"]["message"]


def test_bodies_are_bounded(client: httpx.Client, org: dict) -> None:
    too_many = ask(messages=[{"role": "user", "content": "x"}] * 257)
    too_long = ask(messages=[{"role": "user", "content": "x" * 200_001}])
    bad_role = ask(messages=[{"role": "tool", "content": "x"}])
    none = ask(messages=[])
    over = ask(model="large", max_tokens=65)
    for body in (too_many, too_long, bad_role, none, over, ask(max_tokens=0), ask(temperature=3)):
        got = client.post("/v1/providers/execute", json=body, headers=org["key"])
        assert got.status_code == 400, body


def test_a_budget_refuses_calls_that_would_exceed_it(
    client: httpx.Client, gateway: Server, org: dict, models: ModelServer
) -> None:
    # One call reserves (prompt + 100 output tokens) at the prices: about 0.001.
    set_budget(gateway, client, org, 0.0025)
    body = ask(max_tokens=100)
    before = len(models.calls())
    assert client.post("/v1/providers/execute", json=body, headers=org["key"]).status_code == 200
    assert client.post("/v1/providers/execute", json=body, headers=org["key"]).status_code == 200
    assert len(models.calls()) == before + 2
    # Spent so far: the real costs (about 0.00007 each), so far more calls fit...
    big = ask(max_tokens=1000)  # ... but not one that may cost 0.01.
    refused = client.post("/v1/providers/execute", json=big, headers=org["key"])
    assert refused.status_code == 402 and error_code(refused) == "budget_exceeded"
    details = envelope(refused)["error"]["details"]
    assert details["monthly_budget"] == pytest.approx(0.0025)
    assert len(models.calls()) == before + 2  # the provider was not called
    streamed = client.post("/v1/providers/execute/stream", json=big, headers=org["key"])
    assert streamed.status_code == 402
    calls(gateway, org, 2)  # settled: the spend holds the real costs now
    estimate = envelope(client.post("/v1/providers/estimate", json=big, headers=org["key"]))
    assert estimate["data"]["budget"]["allowed"] is False
    assert estimate["data"]["budget"]["spent"] == pytest.approx(
        2 * (INPUT_TOKENS * 2.0 + len(WORDS) * 10.0) / 1e6
    )


@pytest.mark.skipif(
    not HAS_SECRETS, reason="the secrets store (services/secrets.py) has no reveal yet"
)
def test_the_credential_comes_from_the_secrets_store(
    client: httpx.Client, gateway: Server, org: dict
) -> None:
    keyed = ModelServer(api_key=API_KEY).start()
    try:
        put = client.put(
            f"/v1/organizations/{org['id']}/secrets/model-key",
            json={"value": API_KEY},
            headers=bearer(org["owner"]),
        )
        assert put.status_code in (200, 201), put.text
        done = configure(client, org, "keyed", "openai", keyed.url, credential="model-key")
        assert done.status_code == 200, done.text
        got = client.post("/v1/providers/execute", json=ask("keyed"), headers=org["key"])
        assert got.status_code == 200, got.text
        assert keyed.calls()[-1].headers["Authorization"] == f"Bearer {API_KEY}"
        assert API_KEY not in gateway.log()
        missing = configure(client, org, "nokey", "openai", keyed.url, credential="absent")
        assert missing.status_code == 200
        refused = client.post("/v1/providers/execute", json=ask("nokey"), headers=org["key"])
        assert refused.status_code == 409 and API_KEY not in refused.text
    finally:
        keyed.stop()
