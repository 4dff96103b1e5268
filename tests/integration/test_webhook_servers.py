"""Webhooks on servers of their own: the SSRF guard at creation and at each delivery
(private addresses not allowed), disabling an endpoint that keeps failing, and a server
killed with deliveries in flight redelivering them after its restart."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import bearer, envelope, error_code
from tests.support.jobs import job_org, submit
from tests.support.receiver import Answer, Receiver
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage

pytestmark = pytest.mark.slow


@pytest.fixture
def storage(database_url: str, server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    with own_storage(database_url, server_env, "webhooks") as env:
        yield env


def _start(env: dict[str, str], tmp_path, **settings: str) -> Server:
    env = {
        **env,
        **{f"TREADLE_{k.upper()}": v for k, v in settings.items()},
        "TREADLE_PORT": env.get("TREADLE_PORT") or str(free_port()),
    }
    return start_server("granian", env, tmp_path / f"server-{secrets.token_hex(3)}.log")


def _hook(client: httpx.Client, org: dict, url: str, **fields: Any) -> httpx.Response:
    return client.post(
        "/v1/webhooks",
        json={"organization_id": org["id"], "url": url, **fields},
        headers=bearer(org["owner"]),
    )


def _deliveries(client: httpx.Client, org: dict, hook_id: str) -> list[dict]:
    got = client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=bearer(org["owner"]))
    return list(envelope(got)["data"])


def _until(check, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_private_addresses_are_refused_at_creation_and_again_at_delivery(
    storage: dict[str, str], tmp_path, receiver: Receiver
) -> None:
    server = _start(storage, tmp_path, webhook_allow_private="false")
    try:
        with server.client() as client:
            org = job_org(client)
            for url in (
                receiver.url("/x"),
                f"http://localhost:{receiver.port}/x",
                "http://10.1.2.3/x",
                "http://192.168.0.10/x",
                "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/x",
                "http://[::ffff:127.0.0.1]/x",
                "http://[fe80::1]/x",
                "http://224.0.0.1/x",
                "http://0.0.0.0/x",
                "http://100.64.0.1/x",
            ):
                made = _hook(client, org, url)
                assert made.status_code == 400, (url, made.text)
                assert error_code(made) == "url_refused", url
            # A public address is taken; then its name "changes" to a private address
            # (what DNS rebinding does): each delivery checks again and sends nothing.
            made = _hook(client, org, "http://93.184.215.14/hook", topics=["job.queued"])
            assert made.status_code == 201, made.text
            hook = envelope(made)["data"]
            with psycopg.connect(storage["TREADLE_DATABASE_URL"], autocommit=True) as conn:
                conn.execute(
                    "UPDATE webhook_endpoints SET url = %s WHERE id = %s",
                    (f"http://localhost:{receiver.port}/rebound", hook["id"]),
                )
            sent = client.post(f"/v1/webhooks/{hook['id']}/test", headers=bearer(org["owner"]))
            assert sent.status_code == 202
            dead = _until(
                lambda: [d for d in _deliveries(client, org, hook["id"]) if d["status"] == "dead"]
            )
            assert dead, _deliveries(client, org, hook["id"])
            assert "loopback" in dead[0]["last_error"] and dead[0]["attempts"] == 4
            with psycopg.connect(storage["TREADLE_DATABASE_URL"], autocommit=True) as conn:
                conn.execute(
                    "UPDATE webhook_endpoints SET url = %s WHERE id = %s",
                    (receiver.url("/literal"), hook["id"]),
                )
            client.post(f"/v1/webhooks/{hook['id']}/test", headers=bearer(org["owner"]))
            literal = _until(
                lambda: [
                    d
                    for d in _deliveries(client, org, hook["id"])
                    if d["status"] == "dead" and d["id"] != dead[0]["id"]
                ]
            )
            assert literal and "not sent" in literal[0]["last_error"]
            assert literal[0]["attempts"] == 1
        assert receiver.at("/rebound") == [] and receiver.at("/literal") == []
    finally:
        server.stop()


def test_an_endpoint_failing_for_too_long_is_disabled_with_an_event(
    storage: dict[str, str], tmp_path, receiver: Receiver
) -> None:
    server = _start(
        storage,
        tmp_path,
        webhook_disable_after_seconds="1",
        webhook_retry_schedule=",".join(["0.3"] * 20),
    )
    try:
        with server.client() as client:
            org = job_org(client)
            watch = envelope(
                _hook(client, org, receiver.url("/watch-disabled"), topics=["webhook.disabled"])
            )["data"]
            receiver.expect("/watch-disabled", watch["secret"])
            failing = envelope(_hook(client, org, receiver.url("/always-500")))["data"]
            receiver.script("/always-500", *[Answer(500)] * 100)
            submit(client, org["submit"])
            (said,) = receiver.wait("/watch-disabled", 1, timeout=20)
            assert said.verified_by and said.event["data"]["webhook_id"] == failing["id"]
            assert "failed for 1 seconds" in said.event["data"]["reason"]
            shown = envelope(
                client.get(f"/v1/webhooks/{failing['id']}", headers=bearer(org["owner"]))
            )["data"]
            assert shown["enabled"] is False and shown["failing_since"]
            # What it still had to receive is dead, for a redrive once it is enabled.
            rows = _deliveries(client, org, failing["id"])
            assert rows and all(d["status"] == "dead" for d in rows)
            attempts = len(receiver.at("/always-500"))
            assert 3 <= attempts < 20
    finally:
        server.stop()


def test_deliveries_in_flight_when_the_server_is_killed_go_again_after_restart(
    storage: dict[str, str], tmp_path, receiver: Receiver
) -> None:
    env = {**storage, "TREADLE_PORT": str(free_port()), "TREADLE_WEBHOOK_TIMEOUT_SECONDS": "3"}
    first = _start(env, tmp_path)
    path = "/in-flight"
    with first.client() as client:
        org = job_org(client)
        hook = envelope(_hook(client, org, receiver.url(path), topics=["job.queued"]))["data"]
        receiver.expect(path, hook["secret"])
        # The receiver holds every first answer long enough for the kill to come first.
        receiver.script(path, *[Answer(200, delay=2.5)] * 20)
        jobs = {submit(client, org["submit"])["id"] for _ in range(20)}
    assert len(receiver.wait(path, 20, timeout=15)) >= 20
    first.kill()
    second = _start(env, tmp_path)
    try:
        with second.client() as client:
            done = _until(
                lambda: (
                    (rows := _deliveries(client, org, hook["id"]))
                    and len(rows) == 20
                    and all(d["status"] == "succeeded" for d in rows)
                ),
                timeout=30,
            )
            assert done, _deliveries(client, org, hook["id"])
        got = receiver.at(path)
        assert {r.event["job_id"] for r in got} == jobs  # every event arrived
        assert all(r.verified_by for r in got)
        # At least once: the ones in flight went again, under their same webhook-id.
        assert len(got) >= 40 and len({r.webhook_id for r in got}) == 20
    finally:
        second.stop()


def test_two_server_processes_deliver_each_event_exactly_once(
    storage: dict[str, str], tmp_path, receiver: Receiver
) -> None:
    # A timeout long enough that no attempt is given up on a loaded machine: a retry would
    # be a second delivery of the same event, rightly, and not what this test is about.
    server = _start(storage, tmp_path, workers="2", webhook_timeout_seconds="30")
    path = "/two-workers"
    try:
        with server.client() as client:
            org = job_org(client)
            hook = envelope(_hook(client, org, receiver.url(path), topics=["job.queued"]))["data"]
            receiver.expect(path, hook["secret"])
            response = client.post(
                "/v1/jobs/batch",
                json={"jobs": [{"type": "render"} for _ in range(200)]},
                headers={**org["submit"], "Idempotency-Key": secrets.token_hex(8)},
            )
            assert response.status_code == 201, response.text
            got = receiver.wait(path, 200, timeout=30)
            time.sleep(1.0)  # anything sent twice would have arrived by now
        got = receiver.at(path)
        assert len(got) == 200 and len({r.event["job_id"] for r in got}) == 200
        assert all(r.verified_by for r in got)
        with psycopg.connect(storage["TREADLE_DATABASE_URL"]) as conn:
            attempts = conn.execute(
                "SELECT attempts, count(*) FROM webhook_deliveries GROUP BY 1"
            ).fetchall()
        assert attempts == [(1, 200)]
    finally:
        server.stop()
