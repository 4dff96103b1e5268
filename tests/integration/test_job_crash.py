"""A change and its stored answer commit together: a process killed after the handler ran
and before its answer was stored leaves neither, so a retry with the same Idempotency-Key
runs the handler once, at once (the in-flight lock died with the process), and makes one
resource, never two and never a conflict with itself."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.support.api import bearer, create_key, create_org, signup
from tests.support.servers import Server, free_port, start_server


@pytest.fixture
def env(server_env: dict[str, str]) -> dict[str, str]:
    return {**server_env, "TREADLE_PORT": str(free_port())}


@contextlib.contextmanager
def stalled_answers(database_url: str) -> Iterator[None]:
    """Holds a lock that stops the server storing its answer: the window after the handler
    ran and before the reply, held open so the process can be killed in it."""
    with psycopg.connect(database_url) as conn:
        conn.execute("LOCK TABLE idempotency_keys IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def _post_quietly(url: str, body: dict, headers: dict[str, str]) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server dies mid-request, as intended
        httpx.post(url, json=body, headers=headers, timeout=30)


def _wait_for_stalled_insert(database_url: str) -> None:
    """Until a server connection waits for the lock on idempotency_keys."""
    deadline = time.monotonic() + 15
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE 'INSERT INTO idempotency_keys%%'"
            ).fetchone()
            if row and row[0] > 0:
                return
            time.sleep(0.05)
    raise AssertionError("the server never tried to store its answer")


def _count(database_url: str, sql: str, *args: object) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def _crash_in_the_window(
    server: Server, database_url: str, path: str, body: dict, headers: dict[str, str]
) -> None:
    with stalled_answers(database_url):
        sent = threading.Thread(
            target=_post_quietly, args=(server.url + path, body, headers), daemon=True
        )
        sent.start()
        _wait_for_stalled_insert(database_url)
        server.kill()
    sent.join(10)


@pytest.mark.slow
def test_a_retry_after_the_server_died_before_storing_its_answer_runs_once(
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
        job_headers = {**key, "Idempotency-Key": str(uuid.uuid4())}
        job = {"type": "default", "input": {"n": 1}}
        _crash_in_the_window(server, database_url, "/v1/jobs", job, job_headers)
        server.stop()
        server = start_server("granian", env, logs / "second.log")
        team_headers = {**bearer(owner), "Idempotency-Key": str(uuid.uuid4())}
        team = {"organization_id": org["id"], "name": f"crash-{uuid.uuid4().hex[:8]}"}
        _crash_in_the_window(server, database_url, "/v1/teams", team, team_headers)
    finally:
        server.stop()
    # Nothing of either request is left: the change rolled back with its unstored answer.
    answers_sql = "SELECT count(*) FROM idempotency_keys WHERE key = %s"
    for header in (job_headers, team_headers):
        assert _count(database_url, answers_sql, header["Idempotency-Key"]) == 0
    jobs_sql = "SELECT count(*) FROM jobs WHERE idempotency_key = %s"
    teams_sql = "SELECT count(*) FROM teams WHERE organization_id = %s AND name = %s"
    assert _count(database_url, jobs_sql, job_headers["Idempotency-Key"]) == 0
    assert _count(database_url, teams_sql, org["id"], team["name"]) == 0

    again = start_server("granian", env, logs / "third.log")
    try:
        # The first retry is served at once: no lock of the dead process is left to wait out.
        retried = httpx.post(again.url + "/v1/jobs", json=job, headers=job_headers, timeout=10)
        assert retried.status_code == 201, retried.text
        made = httpx.post(again.url + "/v1/teams", json=team, headers=team_headers, timeout=10)
        assert made.status_code == 201, made.text
        for path, body, headers, first in (
            ("/v1/jobs", job, job_headers, retried),
            ("/v1/teams", team, team_headers, made),
        ):
            replay = httpx.post(again.url + path, json=body, headers=headers, timeout=10)
            assert replay.status_code == 201, replay.text
            assert replay.headers["idempotent-replayed"] == "true"
            assert replay.json()["data"]["id"] == first.json()["data"]["id"]
        assert _count(database_url, jobs_sql, job_headers["Idempotency-Key"]) == 1
        assert _count(database_url, teams_sql, org["id"], team["name"]) == 1
        changed = httpx.post(
            again.url + "/v1/jobs", json={"type": "default"}, headers=job_headers, timeout=10
        )
        assert changed.status_code == 422
    finally:
        again.stop()
