"""Telemetry ingest across SIGKILL: a batch whose COPY committed but whose answer never
reached the agent is answered, on retry with the same key, by the committed batch."""

from __future__ import annotations

import secrets
import socket
import time
import uuid
from collections.abc import Iterator

import orjson
import psycopg
import pytest

from tests.support.jobs import job_org
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage
from tests.support.telemetry import enroll, event, post_batch


@pytest.fixture
def storage(database_url: str, server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    with own_storage(database_url, server_env, "telemetry") as env:
        yield env


def _start(env: dict[str, str], tmp_path, port: int) -> Server:
    env = {**env, "TREADLE_PORT": str(port)}
    return start_server("granian", env, tmp_path / f"server-{secrets.token_hex(3)}.log")


def test_a_batch_committed_before_the_crash_is_the_answer_to_its_retry(
    storage: dict[str, str], tmp_path
) -> None:
    port = free_port()
    first = _start(storage, tmp_path, port)
    database_url = storage["TREADLE_DATABASE_URL"]
    key = str(uuid.uuid4())
    batch = [event(value=i) for i in range(500)]
    body = orjson.dumps(batch)
    try:
        with first.client() as client:
            org = job_org(client)
            agent = enroll(client, org)
        # The agent sends the batch and never reads the answer: the process is killed the
        # moment the batch is committed, and what it may have written back is dropped.
        sock = socket.create_connection(("127.0.0.1", port))
        request = (
            f"POST /v1/telemetry/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {agent['credential']['key']}\r\n"
            f"Content-Type: application/json\r\nIdempotency-Key: {key}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(request + body)
        committed = None
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 10
            while committed is None and time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT id FROM telemetry_batches WHERE agent_id = %s",
                    (agent["agent"]["id"],),
                ).fetchone()
                committed = row[0] if row else None
                time.sleep(0.001)
            first.kill()
        sock.close()
    finally:
        first.kill()
    assert committed is not None, "the batch never committed"
    second = _start(storage, tmp_path, free_port())
    try:
        with second.client() as client:
            retried = post_batch(client, agent, body, key=key)
    finally:
        second.stop()
    assert retried.status_code == 201, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json()["data"]["batch_id"] == str(committed)
    assert retried.json()["data"]["accepted"] == 500
    with psycopg.connect(database_url) as conn:
        (events,) = conn.execute(
            "SELECT count(*) FROM telemetry_events WHERE agent_id = %s", (agent["agent"]["id"],)
        ).fetchone()
        (batches,) = conn.execute(
            "SELECT count(*) FROM telemetry_batches WHERE agent_id = %s",
            (agent["agent"]["id"],),
        ).fetchone()
    assert (events, batches) == (500, 1)
