"""Live events over SSE and WebSocket: delivery, filters, resume, gaps, keep-alives, slow
subscribers, tenancy, and events crossing server processes."""

from __future__ import annotations

import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.api import bearer, create_key, create_org, envelope, error_code, signup
from tests.support.events import emit, open_stream, ws_url
from tests.support.servers import Server, free_port, start_server

EVENT_ID = re.compile(r"^\d+-\d+$")


@pytest.fixture(scope="module")
def tight(server_env: dict[str, str], tmp_path_factory) -> Iterator[Server]:
    """A second server process with a short keep-alive, a ring of 3 events per
    organization and subscriber queues of 4."""
    env = {
        **server_env,
        "TREADLE_PORT": str(free_port()),
        "TREADLE_EVENT_KEEPALIVE_SECONDS": "0.5",
        "TREADLE_EVENT_RING_SIZE": "3",
        "TREADLE_EVENT_QUEUE_SIZE": "4",
    }
    server = start_server("granian", env, tmp_path_factory.mktemp("tight") / "server.log")
    yield server
    server.stop()


def _tenant(server: Server) -> tuple[dict[str, Any], str]:
    with server.client() as client:
        owner = signup(client)
        return owner, create_org(client, owner)["id"]


def _team(server: Server, owner: dict[str, Any], org_id: str, name: str | None = None) -> str:
    with server.client() as client:
        response = client.post(
            "/v1/teams",
            json={"organization_id": org_id, "name": name or f"team-{uuid.uuid4().hex[:8]}"},
            headers=bearer(owner),
        )
    assert response.status_code == 201, response.text
    return str(envelope(response)["data"]["id"])


def _ws(server: Server, params: Any, headers: dict[str, str] | None = None) -> ClientConnection:
    return connect(ws_url(server, params), additional_headers=headers, open_timeout=10)


def _ws_events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while len(found) < count:
        message = json.loads(ws.recv(timeout=10))
        if message["type"] != "keep-alive":
            found.append(message)
    return found


def _ws_until(ws: ClientConnection, topic: str) -> dict[str, Any]:
    while (message := _ws_events(ws, 1)[0]).get("topic") != topic:
        pass
    return message


def _refused(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=headers, open_timeout=10).close()
    return int(refused.value.response.status_code)


# --- delivery ------------------------------------------------------------------------------


def test_an_audited_action_arrives_over_sse(server: Server) -> None:
    owner, org_id = _tenant(server)
    with open_stream(server, bearer(owner), {"organization_id": org_id}) as stream:
        headers = stream.response.headers
        team_id = _team(server, owner, org_id)
        frame = stream.until("team.create")[-1]
    assert headers["content-type"] == "text/event-stream"
    assert headers["cache-control"] == "no-cache"
    assert headers["x-accel-buffering"] == "no"
    assert EVENT_ID.match(frame["id"])
    event = frame["data"]
    assert event["topic"] == "team.create"
    assert event["organization_id"] == org_id
    assert event["data"]["target_id"] == team_id
    assert event["data"]["actor"]["id"] == owner["user"]["id"]


def test_an_audited_action_arrives_over_websocket(server: Server) -> None:
    owner, org_id = _tenant(server)
    with _ws(server, {"organization_id": org_id}, bearer(owner)) as ws:
        team_id = _team(server, owner, org_id)
        message = _ws_until(ws, "team.create")
    assert message["type"] == "event"
    assert EVENT_ID.match(message["id"])
    assert message["organization_id"] == org_id
    assert message["data"]["target_id"] == team_id
    # Browsers cannot set headers on a handshake: the token may come in the query.
    token = owner["access_token"]
    with _ws(server, {"organization_id": org_id, "access_token": token}) as ws:
        _team(server, owner, org_id)
        assert _ws_until(ws, "team.create")["type"] == "event"


def test_topics_filter_exact_prefix_and_repeated(server: Server) -> None:
    owner, org_id = _tenant(server)
    params = [("organization_id", org_id), ("topic", "team.*,nothing.here"), ("topic", "x")]
    with open_stream(server, bearer(owner), params) as stream:
        with server.client() as client:
            create_key(client, owner, org_id)
        _team(server, owner, org_id)
        first = stream.events(1)[0]
    assert first["event"] == "team.create"  # the api_key.create before it did not match
    with _ws(server, {"organization_id": org_id, "topic": "api_key.create"}, bearer(owner)) as ws:
        _team(server, owner, org_id)
        with server.client() as client:
            create_key(client, owner, org_id)
        assert _ws_events(ws, 1)[0]["topic"] == "api_key.create"


def test_resume_with_last_event_id_or_after_has_no_gap_and_no_duplicate(server: Server) -> None:
    owner, org_id = _tenant(server)
    params = {"organization_id": org_id, "topic": "team.create"}
    with open_stream(server, bearer(owner), params) as stream:
        _team(server, owner, org_id, "first")
        seen = stream.events(1)[0]
    # Made while nobody listens.
    missed = [_team(server, owner, org_id, name) for name in ("second", "third")]
    with open_stream(server, {**bearer(owner), "Last-Event-ID": seen["id"]}, params) as stream:
        by_header = stream.events(2)
        _team(server, owner, org_id, "fourth")
        live = stream.events(1)[0]
    assert [f["data"]["data"]["target_id"] for f in by_header] == missed
    assert all(f["event"] == "team.create" for f in by_header)
    assert live["data"]["data"]["target_id"] not in missed
    with open_stream(server, bearer(owner), {**params, "after": seen["id"]}) as stream:
        by_query = stream.events(3)
    assert [f["id"] for f in by_query] == [f["id"] for f in [*by_header, live]]
    # EventSource keeps its URL on reconnect: the header wins over ?after=.
    header = {**bearer(owner), "Last-Event-ID": by_header[0]["id"]}
    with open_stream(server, header, {**params, "after": seen["id"]}) as stream:
        assert stream.events(1)[0]["id"] == by_header[1]["id"]
    with _ws(server, {**params, "after": seen["id"]}, bearer(owner)) as ws:
        assert [m["id"] for m in _ws_events(ws, 3)] == [f["id"] for f in by_query]


def test_a_trimmed_history_is_announced_as_a_gap(server: Server, tight: Server) -> None:
    owner, org_id = _tenant(server)
    params = {"organization_id": org_id, "topic": "team.create"}
    with open_stream(server, bearer(owner), params) as stream:
        for name in "abcde":
            _team(server, owner, org_id, name)
        ids = [f["id"] for f in stream.events(5)]
    # The other process keeps only the newest 3 events of the organization.
    time.sleep(0.3)
    with open_stream(tight, bearer(owner), {**params, "after": ids[0]}) as stream:
        gap, *rest = stream.events(4)
    assert gap["event"] == "gap"
    assert gap["data"]["after"] == ids[0]
    assert ids[0] in gap["data"]["message"]
    assert [f["id"] for f in rest] == ids[2:]
    with _ws(tight, {**params, "after": ids[0]}, bearer(owner)) as ws:
        gap_message, *rest_messages = _ws_events(ws, 4)
    assert gap_message["type"] == "gap"
    assert [m["id"] for m in rest_messages] == ids[2:]
    # With the full history (the first server's ring), the same resume has no gap.
    with open_stream(server, bearer(owner), {**params, "after": ids[0]}) as stream:
        assert [f["id"] for f in stream.events(4)] == ids[1:]


def test_keep_alives_flow_while_nothing_happens(tight: Server) -> None:
    owner, org_id = _tenant(tight)
    with open_stream(tight, bearer(owner), {"organization_id": org_id, "topic": "x"}) as stream:
        assert stream.frame() == {"comment": "keep-alive"}
    with _ws(tight, {"organization_id": org_id, "topic": "x"}, bearer(owner)) as ws:
        assert json.loads(ws.recv(timeout=5)) == {"type": "keep-alive"}


def test_events_cross_server_processes(server: Server, tight: Server) -> None:
    owner, org_id = _tenant(server)
    with open_stream(tight, bearer(owner), {"organization_id": org_id}) as stream:
        team_id = _team(server, owner, org_id)
        frame = stream.until("team.create")[-1]
    assert frame["data"]["data"]["target_id"] == team_id


# --- slow subscribers ----------------------------------------------------------------------


def test_a_burst_past_the_queue_ends_the_stream_with_slow_consumer(
    server: Server, tight: Server, server_env: dict[str, str]
) -> None:
    owner, org_id = _tenant(server)
    params = {"organization_id": org_id, "topic": "test.burst"}
    with (
        open_stream(tight, bearer(owner), params) as slow,
        open_stream(server, bearer(owner), params) as normal,
    ):
        emit(server_env["TREADLE_DATABASE_URL"], org_id, 20)
        everything = normal.events(20)
        got: list[dict[str, Any]] = []
        while not got or got[-1].get("event") != "error":
            got += slow.events(1)
        with pytest.raises(EOFError):
            slow.frame()
    assert [f["data"]["data"]["i"] for f in everything] == list(range(20))
    *delivered, error = got
    assert 1 <= len(delivered) < 20
    assert [f["id"] for f in delivered] == [f["id"] for f in everything[: len(delivered)]]
    assert error["data"]["code"] == "slow_consumer"
    assert f"Last-Event-ID: {delivered[-1]['id']}" in error["data"]["message"]
    # Resuming where it stopped, from a process that holds the history, loses nothing.
    with open_stream(server, bearer(owner), {**params, "after": delivered[-1]["id"]}) as again:
        rest = again.events(20 - len(delivered))
    assert [f["id"] for f in delivered + rest] == [f["id"] for f in everything]


def test_a_websocket_client_that_stops_reading_is_dropped_others_get_everything(
    server: Server, tight: Server, server_env: dict[str, str]
) -> None:
    owner, org_id = _tenant(server)
    params = {"organization_id": org_id, "topic": "test.big"}
    # A small receive buffer, and a client that queues at most one message before it
    # stops reading the socket: the server's sends stall, its queue of 4 overflows.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(tight.url.rsplit(":", 1)[1])))
    stuck = connect(
        ws_url(tight, params),
        sock=sock,
        additional_headers=bearer(owner),
        max_queue=1,
        ping_interval=None,
    )
    with stuck, _ws(tight, params, bearer(owner)) as reader:
        # 8 MB: more than the kernel buffers of both ends hold.
        count = 40
        emit(
            server_env["TREADLE_DATABASE_URL"],
            org_id,
            count,
            topic="test.big",
            pad=200_000,
            together=False,
            spacing=0.02,
        )
        everything = _ws_events(reader, count)
        got: list[dict[str, Any]] = []
        while not got or got[-1]["type"] != "error":
            got += _ws_events(stuck, 1)
    assert [m["data"]["i"] for m in everything] == list(range(count))
    *delivered, error = got
    assert error["code"] == "slow_consumer"
    assert len(delivered) < count
    assert [m["id"] for m in delivered] == [m["id"] for m in everything[: len(delivered)]]


# --- access and validation -----------------------------------------------------------------


def test_a_subscriber_never_sees_another_organizations_events(server: Server) -> None:
    owner_a, org_a = _tenant(server)
    owner_b, org_b = _tenant(server)
    with server.client() as client:
        key_a = create_key(client, owner_a, org_a, scopes=["events.read"])
    key_headers = {"Authorization": f"Bearer {key_a['key']}"}
    with (
        open_stream(server, bearer(owner_a), {"organization_id": org_a}) as by_user,
        open_stream(server, key_headers) as by_key,
        _ws(server, {"organization_id": org_a, "topic": "team.create"}, bearer(owner_a)) as ws,
    ):
        _team(server, owner_b, org_b, "b-secret")
        team_a = _team(server, owner_a, org_a, "a-team")
        for stream in (by_user, by_key):
            frames = stream.until("team.create")
            assert {f["data"]["organization_id"] for f in frames} == {org_a}
            assert frames[-1]["data"]["data"]["target_id"] == team_a
        assert _ws_events(ws, 1)[0]["data"]["target_id"] == team_a
    with server.client() as client:
        as_outsider = client.get(
            "/v1/events/stream", params={"organization_id": org_b}, headers=bearer(owner_a)
        )
        key_elsewhere = client.get(
            "/v1/events/stream", params={"organization_id": org_b}, headers=key_headers
        )
        narrow = create_key(client, owner_a, org_a, scopes=["org.read"])
        unscoped = client.get(
            "/v1/events/stream", headers={"Authorization": f"Bearer {narrow['key']}"}
        )
    assert as_outsider.status_code == 404 and error_code(as_outsider) == "not_found"
    assert key_elsewhere.status_code == 404
    assert unscoped.status_code == 403 and error_code(unscoped) == "forbidden"
    url = ws_url(server, {"organization_id": org_b})
    assert _refused(url, bearer(owner_a)) == 404


@pytest.mark.parametrize(
    ("params", "headers", "path"),
    [
        ({"topic": "team create"}, {}, "query.topic"),
        ({"topic": "team.*.x"}, {}, "query.topic"),
        ({"topic": ""}, {}, "query.topic"),
        ({"after": "yesterday"}, {}, "query.after"),
        ({"after": "1-2-3"}, {}, "query.after"),
        ({}, {"Last-Event-ID": "abc"}, "header.Last-Event-ID"),
    ],
)
def test_bad_parameters_are_400_with_what_to_fix(
    server: Server, params: dict[str, str], headers: dict[str, str], path: str
) -> None:
    owner, org_id = _tenant(server)
    with server.client() as client:
        response = client.get(
            "/v1/events/stream",
            params={"organization_id": org_id, **params},
            headers={**bearer(owner), **headers},
        )
    body = envelope(response)
    assert response.status_code == 400
    assert body["error"]["code"] == "validation_failed"
    assert body["error"]["details"]["path"] == path
    url = ws_url(server, {"organization_id": org_id, **params})
    assert _refused(url, {**bearer(owner), **headers}) == 400


def test_a_user_must_name_the_organization(server: Server) -> None:
    owner, _ = _tenant(server)
    with server.client() as client:
        response = client.get("/v1/events/stream", headers=bearer(owner))
    assert response.status_code == 400
    assert envelope(response)["error"]["details"]["path"] == "query.organization_id"


def test_no_credentials_is_401(server: Server) -> None:
    _, org_id = _tenant(server)
    with server.client() as client:
        response = client.get("/v1/events/stream", params={"organization_id": org_id})
        job = client.get(f"/v1/jobs/{uuid.uuid4()}/events")
    assert response.status_code == 401 and error_code(response) == "unauthenticated"
    assert job.status_code == 401
    assert _refused(ws_url(server, {"organization_id": org_id})) == 401
    bad = ws_url(server, {"organization_id": org_id, "access_token": "nope"})
    assert _refused(bad) == 401


def test_the_websocket_route_over_plain_http_says_how_to_connect(server: Server) -> None:
    owner, org_id = _tenant(server)
    with server.client() as client:
        response = client.get(
            "/v1/events/ws", params={"organization_id": org_id}, headers=bearer(owner)
        )
    assert response.status_code == 400
    assert "WebSocket" in envelope(response)["error"]["message"]


@pytest.mark.robyn
def test_robyn_serves_sse_and_explains_the_websocket_route(robyn_server: Server) -> None:
    owner, org_id = _tenant(robyn_server)
    with open_stream(robyn_server, bearer(owner), {"organization_id": org_id}) as stream:
        team_id = _team(robyn_server, owner, org_id)
        assert stream.until("team.create")[-1]["data"]["data"]["target_id"] == team_id
    # actix holds a handshake without ever answering it, so this is all Robyn can say.
    with robyn_server.client() as client:
        response = client.get(
            "/v1/events/ws", params={"organization_id": org_id}, headers=bearer(owner)
        )
    assert response.status_code == 400
    assert "Robyn server serves none" in envelope(response)["error"]["message"]


# --- per job -------------------------------------------------------------------------------


def test_a_job_stream_carries_only_that_jobs_events(server: Server) -> None:
    owner, org_id = _tenant(server)

    def submit() -> str:
        with server.client() as client:
            response = client.post(
                "/v1/jobs",
                json={"organization_id": org_id, "type": "default"},
                headers={**bearer(owner), "Idempotency-Key": str(uuid.uuid4())},
            )
        assert response.status_code in (200, 201, 202), response.text
        return str(envelope(response)["data"]["id"])

    job_id, other_id = submit(), submit()
    path = f"/v1/jobs/{job_id}/events"
    with open_stream(server, bearer(owner), {"after": "0-0"}, path=path) as stream:
        queued = stream.past_gap().events(1)[0]
        with server.client() as client:
            for target in (other_id, job_id):
                client.post(
                    f"/v1/jobs/{target}/cancel",
                    headers={**bearer(owner), "Idempotency-Key": str(uuid.uuid4())},
                ).raise_for_status()
        canceled = stream.events(1)[0]
    assert queued["event"] == "job.queued"
    assert canceled["event"] == "job.canceled"
    assert {f["data"]["job_id"] for f in (queued, canceled)} == {job_id}
    with server.client() as client:
        missing = client.get(f"/v1/jobs/{uuid.uuid4()}/events", headers=bearer(owner))
    assert missing.status_code == 404
