"""Live events across process deaths: nothing committed is lost or doubled, history
survives a restart, and SIGTERM ends open streams instead of waiting for them."""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest
import redis
from websockets.sync.client import connect

from tests.support.api import bearer, create_org, signup
from tests.support.events import open_stream, ws_url
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage
from treadle.bus.events import _XADD_BATCH, stream_keys


@pytest.fixture
def storage(database_url: str, server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A database and key prefix of its own: no other server relays this outbox."""
    with own_storage(database_url, server_env, "events") as env:
        yield env


def _start(env: dict[str, str], tmp_path, kind: str = "granian", **extra: str) -> Server:
    env = {**env, "TREADLE_PORT": str(free_port()), **extra}
    return start_server(kind, env, tmp_path / f"server-{secrets.token_hex(3)}.log")


def test_an_event_committed_just_before_a_kill_is_delivered_once_after_restart(
    storage: dict[str, str], tmp_path
) -> None:
    first = _start(storage, tmp_path, TREADLE_EVENT_RELAY="false")
    try:
        with first.client() as client:
            owner = signup(client)
            org_id = create_org(client, owner)["id"]
            client.post(
                "/v1/teams", json={"organization_id": org_id, "name": "t"}, headers=bearer(owner)
            ).raise_for_status()
    finally:
        first.kill()  # SIGKILL: no shutdown hook runs
    with psycopg.connect(storage["TREADLE_DATABASE_URL"]) as conn:
        pending = conn.execute(
            "SELECT id, organization_id, topic, payload FROM event_outbox"
            " WHERE relayed_at IS NULL ORDER BY id"
        ).fetchall()
    assert "team.create" in [row[2] for row in pending]
    # A relayer that died after its XADD, before its commit: the stream has the first
    # event, the outbox still says pending.
    prefix = storage["TREADLE_REDIS_PREFIX"]
    client = redis.Redis.from_url(storage["TREADLE_REDIS_URL"])
    outbox_id, org, topic, payload = pending[0]
    stream, marker, origin = stream_keys(prefix)
    half_done = client.eval(
        _XADD_BATCH,
        3,
        stream,
        marker,
        origin,
        1000,
        "0-0",
        outbox_id,
        str(org),
        topic,
        "",
        "",
        bytes(payload),
    )[0].decode()

    second = _start(storage, tmp_path)
    try:
        with open_stream(second, bearer(owner), {"organization_id": org_id, "after": "0-0"}) as s:
            frames = s.until("team.create")
    finally:
        second.stop()
    assert [f["event"] for f in frames] == [row[2] for row in pending]
    assert frames[0]["id"] == half_done
    assert client.xlen(stream) == len(pending)
    # Committed: the relayer's markers are gone, the one left by the dead relayer too.
    assert client.hlen(marker) == 0
    with psycopg.connect(storage["TREADLE_DATABASE_URL"]) as conn:
        relayed = conn.execute("SELECT stream_id FROM event_outbox ORDER BY id").fetchall()
    assert [row[0] for row in relayed] == [f["id"] for f in frames]

    # A fresh process loads the stream: a client resumes across the restart.
    third = _start(storage, tmp_path)
    try:
        headers = {**bearer(owner), "Last-Event-ID": frames[0]["id"]}
        with open_stream(third, headers, {"organization_id": org_id}) as stream:
            resumed = stream.events(len(frames) - 1)
    finally:
        third.stop()
        client.close()
    assert [f["id"] for f in resumed] == [f["id"] for f in frames[1:]]


@pytest.mark.parametrize("kind", ["granian", pytest.param("robyn", marks=pytest.mark.robyn)])
def test_sigterm_ends_open_streams_and_exits_promptly(
    kind: str, storage: dict[str, str], tmp_path
) -> None:
    server = _start(storage, tmp_path, kind)
    try:
        with server.client() as client:
            owner = signup(client)
            org_id = create_org(client, owner)["id"]
        params = {"organization_id": org_id, "topic": "nothing"}
        with open_stream(server, bearer(owner), params) as stream:
            ws = (
                connect(ws_url(server, params), additional_headers=bearer(owner))
                if kind == "granian"
                else None
            )
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            last = stream.events(1)[0]
            with pytest.raises(EOFError):
                stream.frame()
            if ws is not None:
                with ws:
                    message = json.loads(ws.recv(timeout=10))
                assert message["type"] == "error"
                assert message["code"] == "shutting_down"
        assert server.proc.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        server.stop()
    assert last["event"] == "error"
    assert last["data"]["code"] == "shutting_down"
    assert "Last-Event-ID" in last["data"]["message"]
