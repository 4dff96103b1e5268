"""Live events after Redis loses its data (issue 8, item 20): a client resuming from an
id of the lost stream gets an explicit gap, whether treadle restarts or not, and the
relay and feed carry on by themselves."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api import bearer, create_org, signup
from tests.support.events import open_stream
from tests.support.redis import OwnRedis
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage


@pytest.fixture
def storage(database_url: str, server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A database of its own: no other test server relays this outbox elsewhere."""
    with own_storage(database_url, server_env, "loss") as env:
        yield env


@pytest.fixture
def valkey(tmp_path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def _start(env: dict[str, str], valkey: OwnRedis, tmp_path) -> Server:
    env = {**env, "TREADLE_PORT": str(free_port()), "TREADLE_REDIS_URL": valkey.url}
    return start_server("granian", env, tmp_path / f"server-{secrets.token_hex(3)}.log")


def _team(server: Server, owner: dict[str, Any], org_id: str) -> None:
    with server.client() as client:
        client.post(
            "/v1/teams",
            json={"organization_id": org_id, "name": f"t-{uuid.uuid4().hex[:6]}"},
            headers=bearer(owner),
        ).raise_for_status()


def _resume(server: Server, owner: dict[str, Any], org_id: str, after: str) -> list[Any]:
    params = {"organization_id": org_id, "after": after}
    with open_stream(server, bearer(owner), params) as stream:
        return stream.until("team.create")


def _last_id(server: Server, owner: dict[str, Any], org_id: str) -> str:
    frames = _resume(server, owner, org_id, "0-0")
    return str(frames[-1]["id"])


def _a_client_behind_one_event(server: Server) -> tuple[dict, str, str]:
    """An owner, its organization, and the id of the last event it saw, with one event
    after it relayed to Redis (and so lost with Redis's data)."""
    with server.client() as client:
        owner = signup(client)
        org_id = create_org(client, owner)["id"]
    _team(server, owner, org_id)
    seen = _last_id(server, owner, org_id)
    _team(server, owner, org_id)
    _resume(server, owner, org_id, seen)
    return owner, org_id, seen


def test_a_resume_from_a_lost_stream_gets_a_gap_after_redis_and_treadle_restart(
    storage: dict[str, str], valkey: OwnRedis, tmp_path
) -> None:
    server = _start(storage, valkey, tmp_path)
    try:
        owner, org_id, seen = _a_client_behind_one_event(server)
    finally:
        server.stop()
    valkey.stop()
    valkey.start()  # empty
    server = _start(storage, valkey, tmp_path)
    try:
        _team(server, owner, org_id)
        frames = _resume(server, owner, org_id, seen)
    finally:
        server.stop()
    assert frames[0]["event"] == "gap", frames
    assert frames[0]["data"]["after"] == seen
    assert frames[-1]["event"] == "team.create"


def test_feed_and_relay_recover_when_redis_comes_back_empty_under_a_running_server(
    storage: dict[str, str], valkey: OwnRedis, tmp_path
) -> None:
    server = _start(storage, valkey, tmp_path)
    try:
        owner, org_id, seen = _a_client_behind_one_event(server)
        valkey.stop()
        valkey.start()  # empty, the server keeps running
        _team(server, owner, org_id)
        deadline = time.monotonic() + 20
        while True:
            try:
                frames = _resume(server, owner, org_id, seen)
                if frames[0]["event"] == "gap":
                    break
            except (AssertionError, EOFError, OSError):
                pass  # 503 while the feed reloads, or a resync end
            assert time.monotonic() < deadline, "no gap after Redis lost the stream"
            time.sleep(0.5)
        assert frames[0]["data"]["after"] == seen
        # And new events keep flowing without a restart.
        _team(server, owner, org_id)
        assert _resume(server, owner, org_id, frames[-1]["id"])[-1]["event"] == "team.create"
    finally:
        server.stop()
