"""Idempotency-Key answers in PostgreSQL: 409 while the first request still runs, gone
(replayed no more) once the retention window has passed, and replayed from memory without
PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.api import bearer, create_key, create_org, envelope, error_code, signup
from tests.support.proxy import proxied_database
from tests.support.servers import Server, free_port, start_server

KEEP_SECONDS = 2


@pytest.fixture(scope="module")
def short_memory(server_env: dict[str, str], tmp_path_factory) -> Iterator[Server]:
    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_IDEMPOTENCY_KEEP_SECONDS": str(KEEP_SECONDS),
        "TREADLE_RETENTION_SWEEP_SECONDS": "0.5",
    }
    server = start_server("granian", env, tmp_path_factory.mktemp("idem") / "server.log")
    yield server
    server.stop()


def _stored(database_url: str, key: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM idempotency_keys WHERE key = %s", (key,))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_the_same_key_while_the_first_request_runs_is_409(
    short_memory: Server, database_url: str
) -> None:
    with short_memory.client() as client:
        owner = signup(client)
    headers = {**bearer(owner), "Idempotency-Key": str(uuid.uuid4())}
    url = short_memory.url + "/v1/organizations"
    first: list[httpx.Response] = []
    with psycopg.connect(database_url) as conn:
        # The first request does its work, then waits to store its answer behind this lock.
        conn.execute("LOCK TABLE idempotency_keys IN EXCLUSIVE MODE")
        running = threading.Thread(
            target=lambda: first.append(httpx.post(url, json={"name": "Slow"}, headers=headers))
        )
        running.start()
        time.sleep(0.5)
        second = httpx.post(url, json={"name": "Slow"}, headers=headers)
        assert second.status_code == 409
        assert error_code(second) == "idempotency_in_flight"
        assert second.headers["retry-after"] == "1"
        conn.rollback()
    running.join(10)
    assert first[0].status_code == 201
    third = httpx.post(url, json={"name": "Slow"}, headers=headers)
    assert third.headers["idempotent-replayed"] == "true"
    assert third.json()["data"]["id"] == first[0].json()["data"]["id"]


def test_answers_are_purged_after_the_retention_window(
    short_memory: Server, database_url: str
) -> None:
    with short_memory.client() as client:
        owner = signup(client)
        key = str(uuid.uuid4())
        headers = {**bearer(owner), "Idempotency-Key": key}
        first = client.post("/v1/organizations", json={"name": "Once"}, headers=headers)
        replay = client.post("/v1/organizations", json={"name": "Once"}, headers=headers)
        assert replay.headers["idempotent-replayed"] == "true"
        assert _stored(database_url, key) == 1
        deadline = time.monotonic() + KEEP_SECONDS + 5
        while _stored(database_url, key) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _stored(database_url, key) == 0
        # Forgotten, in this process's cache too: the key now starts a new operation.
        later = client.post("/v1/organizations", json={"name": "Once"}, headers=headers)
        assert later.status_code == 201
        assert "idempotent-replayed" not in later.headers
        assert envelope(later)["data"]["id"] != envelope(first)["data"]["id"]


def test_a_retry_answered_from_memory_needs_no_postgresql(
    server_env: dict[str, str], tmp_path
) -> None:
    proxy, url = proxied_database(server_env["TREADLE_DATABASE_URL"])
    env = {**server_env, "TREADLE_DATABASE_URL": url, "TREADLE_PORT": str(free_port())}
    server = start_server("granian", env, tmp_path / "server.log")
    try:
        with server.client() as client:
            owner = signup(client)
            org = create_org(client, owner)
            issued = create_key(client, owner, org["id"], scopes=["jobs.submit"])
            auth = {"Authorization": f"Bearer {issued['key']}"}
            headers = {**auth, "Idempotency-Key": str(uuid.uuid4())}
            body = {"type": "default"}
            first = client.post("/v1/jobs", json=body, headers=headers)
            assert first.status_code == 201, first.text
            # The first retry reads the answer from PostgreSQL, the second is identical to it.
            for _ in range(2):
                assert client.post("/v1/jobs", json=body, headers=headers).status_code == 201
            proxy.cut()
            for _ in range(3):
                again = client.post("/v1/jobs", json=body, headers=headers)
                assert again.status_code == 201, again.text
                assert again.headers["idempotent-replayed"] == "true"
                assert again.json()["data"] == first.json()["data"]
            # PostgreSQL is gone indeed: a new operation cannot run.
            new = client.post("/v1/jobs", json=body, headers={**auth, "Idempotency-Key": "new"})
            assert new.status_code == 503, new.text
    finally:
        server.stop()
        proxy.stop()
