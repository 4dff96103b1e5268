"""treadle on a real three-master Redis Cluster, with two server workers: everything that
crosses processes through Redis works across the cluster's nodes (issue 9)."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    envelope,
    new_email,
    set_policies,
    signup,
)
from tests.support.events import EventStream, open_stream
from tests.support.faults import server_workers, wait_workers_started
from tests.support.redis_cluster import RedisCluster, redis_cluster
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage
from treadle.bus.events import stream_keys

__all__ = ["redis_cluster"]  # the fixture, used by name


@pytest.fixture(scope="module")
def on_cluster(
    redis_cluster: RedisCluster, database_url: str, server_env: dict[str, str], tmp_path_factory
) -> Iterator[Server]:
    """Two workers whose Redis is the cluster, with shared rate limits."""
    base = {**server_env, "TREADLE_REDIS_URL": redis_cluster.url}
    with own_storage(database_url, base, "cluster") as env:
        env = {
            **env,
            "TREADLE_PORT": str(free_port()),
            "TREADLE_WORKERS": "2",
            "TREADLE_RATE_LIMIT_MODE": "redis",
        }
        server = start_server("granian", env, tmp_path_factory.mktemp("cluster") / "server.log")
        try:
            wait_workers_started(server, 2)
            yield server
        finally:
            server.stop()


def _fresh(server: Server, headers: dict[str, str], n: int, path: str = "/v1/me") -> list[int]:
    # A new connection per request, so the kernel's accept spreads them over both workers.
    return [httpx.get(server.url + path, headers=headers).status_code for _ in range(n)]


def test_shared_rate_limits_admit_the_policy_across_workers(on_cluster: Server) -> None:
    with on_cluster.client() as client:
        owner = signup(client)
        org = create_org(client, owner)
        set_policies(client, owner, org["id"], ("burst", 20, 3600))
        key = create_key(client, owner, org["id"], rate_limit_policy="burst")["key"]
    headers = {"Authorization": f"Bearer {key}"}

    def call(_: int) -> httpx.Response:
        return httpx.get(on_cluster.url + "/v1/me", headers=headers, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(60)))
    statuses = [a.status_code for a in answers]
    # Decided in Redis, not per process: no worker fell back to its own limits.
    assert not [a for a in answers if "ratelimit-mode" in a.headers]
    assert statuses.count(200) == 20, statuses
    assert statuses.count(429) == 40


def test_a_revoked_key_and_a_removed_member_are_refused_by_both_workers_at_once(
    on_cluster: Server,
) -> None:
    with on_cluster.client() as client:
        owner, member = signup(client), signup(client)
        org = create_org(client, owner)
        add_member(client, owner, org["id"], member, "member")
        key = create_key(client, owner, org["id"])
    key_headers = {"Authorization": f"Bearer {key['key']}"}
    org_path = f"/v1/organizations/{org['id']}"
    # Both workers now cache the key and the organization's snapshot.
    assert set(_fresh(on_cluster, key_headers, 20)) == {200}
    assert set(_fresh(on_cluster, bearer(member), 20, org_path)) == {200}
    with on_cluster.client() as client:
        client.delete(f"/v1/api-keys/{key['id']}", headers=bearer(owner)).raise_for_status()
        member_path = f"{org_path}/members/{member['user']['id']}"
        client.delete(member_path, headers=bearer(owner)).raise_for_status()
    time.sleep(0.2)
    assert set(_fresh(on_cluster, key_headers, 20)) == {401}
    assert set(_fresh(on_cluster, bearer(member), 20, org_path)) == {404}


def _worker_of(server: Server, response: httpx.Response) -> int:
    """The pid of the worker holding a streaming response's connection."""
    port = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    for worker in server_workers(server):
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED:
                return int(worker.pid)
    raise AssertionError(f"no worker holds the connection from port {port}")


def test_an_event_reaches_subscribers_on_both_workers(on_cluster: Server) -> None:
    with on_cluster.client() as client:
        owner = signup(client)
        org_id = create_org(client, owner)["id"]
    timeout = httpx.Timeout(10.0, read=10.0)
    clients: list[httpx.Client] = []
    streams: dict[int, EventStream] = {}
    try:
        # Fresh connections until each worker serves one stream (both get some soon).
        for _ in range(30):
            client = httpx.Client(base_url=on_cluster.url, timeout=timeout)
            clients.append(client)
            params = {"organization_id": org_id}
            request = client.build_request(
                "GET", "/v1/events/stream", params=params, headers=bearer(owner)
            )
            response = client.send(request, stream=True)
            assert response.status_code == 200, response.read()
            streams.setdefault(_worker_of(on_cluster, response), EventStream(response))
            if len(streams) == 2:
                break
        assert len(streams) == 2, "every stream landed on one worker"
        with on_cluster.client() as client:
            team = client.post(
                "/v1/teams", json={"organization_id": org_id, "name": "t"}, headers=bearer(owner)
            )
        team_id = envelope(team)["data"]["id"]
        for stream in streams.values():
            frame = stream.until("team.create")[-1]
            assert frame["data"]["data"]["target_id"] == team_id
    finally:
        for client in clients:
            client.close()


def test_concurrent_posts_with_one_idempotency_key_create_one_job(on_cluster: Server) -> None:
    with on_cluster.client() as client:
        owner = signup(client)
        org = create_org(client, owner, "Jobs race")
        issued = create_key(client, owner, org["id"], scopes=["jobs.submit", "jobs.read"])
    key = {"Authorization": f"Bearer {issued['key']}"}
    headers = {**key, "Idempotency-Key": str(uuid.uuid4())}

    def post(_: int) -> httpx.Response:
        return httpx.post(
            f"{on_cluster.url}/v1/jobs", json={"type": "default"}, headers=headers, timeout=30
        )

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {201, 409}, statuses
    created = {a.json()["data"]["id"] for a in answers if a.status_code == 201}
    assert len(created) == 1
    jobs = envelope(httpx.get(f"{on_cluster.url}/v1/jobs", headers=key))["data"]
    assert [j["id"] for j in jobs] == list(created)


def test_metrics_add_up_across_workers(on_cluster: Server) -> None:
    for _ in range(30):
        httpx.get(on_cluster.url + "/version")
    time.sleep(2.5)  # each worker publishes its series every 2 s
    text = httpx.get(on_cluster.url + "/metrics").text
    line = next((row for row in text.splitlines() if 'route="/version",status="200"' in row), "x 0")
    assert int(float(line.rsplit(" ", 1)[1])) >= 30


def _keys_by_master(cluster: RedisCluster, prefix: str) -> dict[int, list[str]]:
    held = {}
    for port in cluster.ports:
        found = subprocess.run(
            [cluster.cli, "-p", str(port), "--scan", "--pattern", f"{prefix}*"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        held[port] = found.stdout.split()
    return held


def test_treadles_keys_spread_over_every_master(
    on_cluster: Server, redis_cluster: RedisCluster
) -> None:
    # Single-key state (here sign-in failure counters, one per email, kept for the lockout)
    # hashes to many slots: a real cluster serves it from all three masters.
    prefix = on_cluster.env["TREADLE_REDIS_PREFIX"]
    with on_cluster.client() as client:
        create_org(client, signup(client))  # an event, so that the stream exists
        for attempt in range(60):
            wrong = {"email": new_email("nobody"), "password": "not-the-password-1"}
            assert client.post("/v1/auth/login", json=wrong).status_code == 401
            if attempt % 10 == 9 and all(_keys_by_master(redis_cluster, prefix).values()):
                break
    held = _keys_by_master(redis_cluster, prefix)
    assert all(held.values()), {port: len(keys) for port, keys in held.items()}
    # The event stream and its origin live together, on one master.
    stream = stream_keys(prefix)[0]
    homes = [port for port, keys in held.items() if stream in keys]
    assert len(homes) == 1, held
    assert [port for port, keys in held.items() if f"{stream}:origin" in keys] == homes


@pytest.mark.robyn
def test_robyn_on_the_cluster_relays_and_streams_an_event(on_cluster: Server, tmp_path) -> None:
    # The granian workers' storage, so that their relay moves this server's events too.
    env = {**on_cluster.env, "TREADLE_PORT": str(free_port()), "TREADLE_WORKERS": "1"}
    server = start_server("robyn", env, tmp_path / "robyn.log")
    try:
        with server.client() as client:
            owner = signup(client)
            org_id = create_org(client, owner)["id"]
        with open_stream(server, bearer(owner), {"organization_id": org_id}) as stream:
            with server.client() as client:
                team = client.post(
                    "/v1/teams",
                    json={"organization_id": org_id, "name": "t"},
                    headers=bearer(owner),
                )
            team_id = envelope(team)["data"]["id"]
            assert stream.until("team.create")[-1]["data"]["data"]["target_id"] == team_id
        assert httpx.get(server.url + "/readyz").status_code == 200
    finally:
        server.stop()


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    return subprocess.run(
        [sys.executable, "-m", "treadle.cli", "serve"],
        env={**base, **env, "TREADLE_PORT": str(free_port())},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_plain_url_at_a_cluster_node_is_refused_with_the_cluster_form(
    redis_cluster: RedisCluster, server_env: dict[str, str]
) -> None:
    node = f"redis://127.0.0.1:{redis_cluster.ports[0]}/0"
    done = _serve({**server_env, "TREADLE_REDIS_URL": node})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "it is a Redis Cluster node" in lines[0]
    assert "redis+cluster://" in lines[0]


def test_an_unreachable_cluster_is_one_line(server_env: dict[str, str]) -> None:
    dead = [free_port(), free_port()]
    url = f"redis+cluster://127.0.0.1:{dead[0]},127.0.0.1:{dead[1]}/"
    done = _serve({**server_env, "TREADLE_REDIS_URL": url})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"treadle: cannot reach Redis at 127.0.0.1:{dead[0]},127.0.0.1:")


def _master_of(cluster: RedisCluster, key: str) -> int:
    def ask(*command: str) -> str:
        return subprocess.run(
            [cluster.cli, "-p", str(cluster.ports[0]), *command],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout

    slot = int(ask("CLUSTER", "KEYSLOT", key))
    # CLUSTER NODES: id host:port@bus flags master ping pong epoch state first-last ...
    for line in ask("CLUSTER", "NODES").splitlines():
        fields = line.split()
        for span in fields[8:]:
            first, _, last = span.partition("-")
            if first.isdigit() and int(first) <= slot <= int(last or first):
                return int(fields[1].split("@")[0].rsplit(":", 1)[1])
    raise AssertionError(f"no master serves slot {slot} of {key}")


def _timed_get(server: Server, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    started = time.monotonic()
    response = httpx.get(server.url + path, headers=headers, timeout=15)
    took = time.monotonic() - started
    assert took < BOUND, f"{path} took {took:.1f} s"
    return response


# An answer slower than this counts as a hang (redis-py's default cluster retries held
# requests about 5 s while a master was down; ours give up within about 0.5 s).
BOUND = 3.0


def test_a_lost_master_degrades_answers_and_its_return_restores_them(
    on_cluster: Server, redis_cluster: RedisCluster
) -> None:
    """Last in the module: it kills the master holding the event stream, then restarts it
    (with its slots and none of its data, like a master without persistence)."""
    with on_cluster.client() as client:
        owner = signup(client)
        org_id = create_org(client, owner)["id"]
    victim = _master_of(redis_cluster, stream_keys(on_cluster.env["TREADLE_REDIS_PREFIX"])[0])
    redis_cluster.kill(victim)
    try:
        deadline = time.monotonic() + 20
        while (ready := _timed_get(on_cluster, "/readyz")).status_code == 200:
            assert time.monotonic() < deadline, "still ready without one master"
            time.sleep(0.2)
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "2"
        assert envelope(ready)["error"]["details"]["checks"]["redis"] == "unreachable"
        # Requests are still answered, in bounded time, whatever Redis key they touch.
        for _ in range(6):
            assert _timed_get(on_cluster, "/v1/me", bearer(owner)).status_code == 200
    finally:
        redis_cluster.restart(victim)
    deadline = time.monotonic() + 30
    while _timed_get(on_cluster, "/readyz").status_code != 200:
        assert time.monotonic() < deadline, "not ready again after the master came back"
        time.sleep(0.2)
    # Events flow again: the relay writes a fresh stream, every worker's feed reads it. A
    # feed that finds its stream lost reloads and ends its streams (resync): the client
    # resumes, as any client would, from the start of what the server still holds.
    params = {"organization_id": org_id, "after": "0-0"}
    team_id = None
    for _ in range(5):
        with open_stream(on_cluster, bearer(owner), params) as stream:
            if team_id is None:
                with on_cluster.client() as client:
                    team = client.post(
                        "/v1/teams",
                        json={"organization_id": org_id, "name": "t"},
                        headers=bearer(owner),
                    )
                team_id = envelope(team)["data"]["id"]
            try:
                frame = stream.until("team.create")[-1]
                break
            except EOFError:
                continue
    else:
        raise AssertionError("the team's event never arrived after the master came back")
    assert frame["data"]["data"]["target_id"] == team_id
