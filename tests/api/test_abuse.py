"""Abuse limits on dedicated servers: per-address limits on routes without credentials,
the bounded password-hash queue, the sign-in lockout under a burst, and rate limits that
keep working (in-process) while Redis is down."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.api import (
    PASSWORD,
    bearer,
    create_key,
    create_org,
    error_code,
    new_email,
    signup,
)
from tests.support.redis import OwnRedis
from tests.support.servers import Server, free_port, start_server


@pytest.fixture(scope="module")
def dedicated(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[object]:
    """Start servers with their own settings; every one is stopped at the module's end."""
    started: list[Server] = []
    tmp = tmp_path_factory.mktemp("abuse")

    def start(**env: str) -> Server:
        full = {**server_env, **{f"TREADLE_{k.upper()}": v for k, v in env.items()}}
        full["TREADLE_PORT"] = str(free_port())
        server = start_server("granian", full, tmp / f"server-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _signup(client: httpx.Client, **headers: str) -> httpx.Response:
    body = {"email": new_email(), "password": PASSWORD}
    return client.post("/v1/auth/signup", json=body, headers=headers)


def _login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/v1/auth/login", json={"email": email, "password": password})


def test_routes_without_credentials_are_limited_per_address(dedicated) -> None:
    server = dedicated(rate_limit_anonymous="3/60")
    with server.client() as client:
        statuses = [_signup(client).status_code for _ in range(3)]
        refused = _login(client, new_email(), PASSWORD)
        # A forwarded-for header from an untrusted peer changes nothing.
        spoofed = _signup(client, **{"X-Forwarded-For": "203.0.113.9"})
        health = client.get("/healthz")
    assert statuses == [201, 201, 201]
    for answer in (refused, spoofed):
        assert answer.status_code == 429, answer.text
        assert error_code(answer) == "rate_limited"
        assert 1 <= int(answer.headers["retry-after"]) <= 60
        assert answer.headers["ratelimit-policy"] == '"anonymous";q=3;w=60'
        assert re.search(r"r=0", answer.headers["ratelimit"])
    assert health.status_code == 200


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(dedicated) -> None:
    server = dedicated(rate_limit_anonymous="2/60", trusted_proxies="10.9.0.0/16, 127.0.0.1")
    with server.client() as client:
        first = [_signup(client, **{"X-Forwarded-For": "203.0.113.1"}) for _ in range(3)]
        # The client may write whatever it likes on the left; the right-most untrusted hop
        # is what counts.
        spoofed = _signup(client, **{"X-Forwarded-For": "198.51.100.7, 203.0.113.1"})
        # Hops through our own proxies are skipped.
        via_proxy = _signup(client, **{"X-Forwarded-For": "203.0.113.1, 10.9.3.4"})
        other = _signup(client, **{"X-Forwarded-For": "203.0.113.2"})
        rfc7239 = _signup(client, Forwarded='for="[2001:db8::1]:4711";proto=http')
    assert [a.status_code for a in first] == [201, 201, 429]
    assert spoofed.status_code == via_proxy.status_code == 429
    assert other.status_code == rfc7239.status_code == 201


def test_logins_past_the_hash_queue_get_503_with_retry_after(dedicated) -> None:
    server = dedicated(
        password_hash_concurrency="1",
        password_hash_queue="1",
        argon2_time_cost="3",
        argon2_memory_kib="32768",
    )
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(12)

    def attempt() -> None:
        with server.client() as client:
            client.get("/healthz")
            barrier.wait()
            answers.append(_login(client, new_email(), PASSWORD))

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    busy = [a for a in answers if a.status_code == 503]
    assert set(statuses) <= {401, 503}, statuses
    assert 1 <= statuses.count(401) <= 11 and busy, statuses
    for answer in busy:
        assert error_code(answer) == "unavailable"
        assert int(answer.headers["retry-after"]) >= 1


def _burst(server: Server, email: str, right_after: float) -> tuple[list[int], int]:
    """29 wrong passwords at once and the right one ``right_after`` seconds later."""
    wrong: list[int] = []
    right: list[int] = []
    barrier = threading.Barrier(30)

    def attempt(password: str, delay: float, into: list[int]) -> None:
        with server.client() as client:
            client.get("/healthz")
            barrier.wait()
            time.sleep(delay)
            into.append(_login(client, email, password).status_code)

    threads = [
        threading.Thread(target=attempt, args=(f"wrong password {i}", 0.0, wrong))
        for i in range(29)
    ]
    threads.append(threading.Thread(target=attempt, args=(PASSWORD, right_after, right)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong, right[0]


@pytest.fixture(scope="module")
def lockout_server(dedicated) -> Server:
    # A hash that takes a while, so that the burst's checks overlap as they would under load.
    return dedicated(login_max_failures="5", argon2_time_cost="2", argon2_memory_kib="16384")


def test_the_lockout_holds_under_a_burst_of_concurrent_attempts(lockout_server: Server) -> None:
    with lockout_server.client() as client:
        email = signup(client)["user"]["email"]
    wrong, right = _burst(lockout_server, email, 0.2)
    # Every 401 is a password check that ran: no more than the limit.
    assert wrong.count(401) <= 5, wrong
    assert set(wrong) <= {401, 429}, wrong
    assert right == 429
    with lockout_server.client() as client:
        assert _login(client, email, PASSWORD).status_code == 429


def test_wrong_current_passwords_on_change_password_lock_the_account(
    lockout_server: Server,
) -> None:
    with lockout_server.client() as client:
        account = signup(client)
        body = {"current_password": "not the password", "new_password": "another good one"}
        statuses = [
            client.post("/v1/auth/change-password", json=body, headers=bearer(account)).status_code
            for _ in range(6)
        ]
        right = {"current_password": PASSWORD, "new_password": "another good one"}
        after = client.post("/v1/auth/change-password", json=right, headers=bearer(account))
        login = _login(client, account["user"]["email"], PASSWORD)
    assert statuses == [403] * 5 + [429], statuses
    assert after.status_code == 429
    assert login.status_code == 429


def test_rate_limits_fall_back_to_local_while_redis_is_down(dedicated, tmp_path: Path) -> None:
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        server = dedicated(redis_url=redis.url, rate_limit_mode="redis")
        with server.client() as client:
            owner = signup(client)
            org = create_org(client, owner)
            key = {"Authorization": f"Bearer {create_key(client, owner, org['id'])['key']}"}
            for headers in (bearer(owner), key):
                up = client.get("/v1/me", headers=headers)
                assert up.status_code == 200, up.text
                assert "ratelimit-mode" not in up.headers
            redis.stop()
            for headers in (bearer(owner), key):
                down = client.get("/v1/me", headers=headers)
                assert down.status_code == 200, down.text
                assert down.headers["ratelimit-mode"] == "local"
                assert "ratelimit" in down.headers
            redis.start()
            deadline = time.monotonic() + 10
            while True:
                back = client.get("/v1/me", headers=key)
                if "ratelimit-mode" not in back.headers or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert back.status_code == 200, back.text
            assert "ratelimit-mode" not in back.headers
            assert client.get("/v1/me", headers=bearer(owner)).status_code == 200
    finally:
        redis.stop()
