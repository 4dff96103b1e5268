"""A job committed by a process that died before answering is found, not made twice, when
the client retries with the same Idempotency-Key."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.api import create_key, create_org, envelope, signup
from tests.support.servers import free_port, start_server


@pytest.fixture
def env(server_env: dict[str, str]) -> dict[str, str]:
    # The dead process's in-flight lock lapses quickly, as it would after a crash.
    return {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_IDEMPOTENCY_LOCK_SECONDS": "1",
    }


@contextlib.contextmanager
def stalled_answers(database_url: str) -> Iterator[None]:
    """Holds a lock that lets jobs commit but stops the server storing its answer: the
    window between the commit and the reply, held open so the process can be killed in it."""
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE idempotency_keys IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def _post_quietly(url: str, body: dict, headers: dict[str, str]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server dies mid-request, as intended
        httpx.post(url, json=body, headers=headers, timeout=30)


def test_a_retry_after_the_server_died_between_commit_and_reply_finds_the_job(
    env: dict[str, str], tmp_path_factory, database_url: str
) -> None:
    logs = tmp_path_factory.mktemp("crash")
    server = start_server("granian", env, logs / "first.log")
    try:
        with server.client() as client:
            owner = signup(client)
            org = create_org(client, owner, "Crash")
            issued = create_key(client, owner, org["id"], scopes=["jobs.submit", "jobs.read"])
        key = {"Authorization": f"Bearer {issued['key']}"}
        idem = str(uuid.uuid4())
        headers = {**key, "Idempotency-Key": idem}
        body = {"type": "default", "input": {"n": 1}}
        with stalled_answers(database_url):
            sent = threading.Thread(
                target=_post_quietly, args=(server.url + "/v1/jobs", body, headers), daemon=True
            )
            sent.start()
            committed = _wait_for_job(database_url, idem)
            server.kill()
    finally:
        server.stop()
    sent.join(10)
    with psycopg.connect(database_url, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM idempotency_keys WHERE key = %s", (idem,))
        assert stored.fetchone() == (0,), "the first answer was stored: no crash window tested"

    again = start_server("granian", env, logs / "second.log")
    try:
        deadline = time.monotonic() + 10
        while True:
            retry = httpx.post(again.url + "/v1/jobs", json=body, headers=headers, timeout=10)
            if retry.status_code != 409 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the dead process's in-flight lock has not lapsed yet
        assert retry.status_code == 201, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        assert envelope(retry)["data"]["id"] == committed
        listed = envelope(httpx.get(again.url + "/v1/jobs", headers=key))["data"]
        assert [j["id"] for j in listed] == [committed]
        changed = httpx.post(
            again.url + "/v1/jobs", json={"type": "default"}, headers=headers, timeout=10
        )
        assert changed.status_code == 422
    finally:
        again.stop()


def _wait_for_job(database_url: str, idem: str) -> str:
    deadline = time.monotonic() + 15
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT id FROM jobs WHERE idempotency_key = %s", (idem,)).fetchone()
            if row is not None:
                return str(row[0])
            time.sleep(0.05)
    raise AssertionError("the job was never committed")
