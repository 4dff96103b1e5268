"""Operations views over HTTP: failures and their retries, queue depths, component health,
and who may see which organization's."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    envelope,
    error_code,
    new_email,
    signup,
)
from tests.support.jobs import claim, job_org, key_auth, lease, submit
from tests.support.mailbox import Mailbox
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage

FAILURES = "/v1/ops/failures"


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return job_org(client)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return envelope(response)


def dead_job(client: httpx.Client, org: dict[str, Any], **body: Any) -> dict[str, Any]:
    """A job that failed for good: submitted, claimed, failed as not retryable."""
    job = submit(client, org["submit"], type="quick", **body)
    (claimed,) = [j for j in claim(client, org["work"], limit=50) if j["id"] == job["id"]]
    failed = client.post(
        f"/v1/jobs/{job['id']}/fail",
        json={
            **lease(claimed),
            "error_code": "boom",
            "error_message": "it broke",
            "retryable": False,
        },
        headers=org["work"],
    )
    assert envelope(failed)["data"]["status"] == "dead", failed.text
    return job


def failures(client: httpx.Client, headers: dict[str, str], **params: Any) -> list[dict]:
    return list(ok(client.get(FAILURES, params=params, headers=headers))["data"])


def grant_admin(server: Server, email: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    env.update(server.env)
    done = subprocess.run(
        [sys.executable, "-m", "treadle.cli", "admin", "grant", email],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# -- jobs ---------------------------------------------------------------------------------


def test_a_dead_job_is_a_failure_and_its_retry_queues_it_again(
    client: httpx.Client, org: dict
) -> None:
    job = dead_job(client, org)
    owner = bearer(org["owner"])
    (item,) = failures(client, owner, organization_id=org["id"], kind="job")
    assert item["kind"] == "job" and item["id"] == job["id"]
    assert item["organization_id"] == org["id"]
    assert item["error_code"] == "boom" and item["error_message"] == "it broke"
    assert item["attempts"] == 1 and item["summary"] == "quick" and item["failed_at"]
    assert item["retry_url"] == f"{FAILURES}/job/{job['id']}/retry"

    retried = ok(client.post(item["retry_url"], headers=owner))["data"]
    assert retried["kind"] == "job" and retried["status"] == "queued"
    assert retried["resource"]["id"] == job["id"] and retried["resource"]["attempts"] == 0
    assert envelope(client.get(f"/v1/jobs/{job['id']}", headers=owner))["data"]["status"] == (
        "queued"
    )
    assert failures(client, owner, organization_id=org["id"], kind="job") == []
    again = client.post(item["retry_url"], headers=owner)
    assert again.status_code == 409 and error_code(again) == "conflict"
    audit = ok(
        client.get(
            f"/v1/organizations/{org['id']}/audit-logs",
            params={"action": "job.retry", "target_id": job["id"]},
            headers=owner,
        )
    )
    assert len(audit["data"]) == 1


def test_a_canceled_job_is_no_failure_to_retry(client: httpx.Client, org: dict) -> None:
    job = submit(client, org["submit"], type="quick")
    owner = bearer(org["owner"])
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=owner).status_code == 200
    response = client.post(f"{FAILURES}/job/{job['id']}/retry", headers=owner)
    assert response.status_code == 409
    assert envelope(response)["error"]["details"]["status"] == "canceled"


def test_failures_page_newest_first_with_a_cursor(client: httpx.Client, org: dict) -> None:
    made = [dead_job(client, org)["id"] for _ in range(3)]
    owner = bearer(org["owner"])
    first = ok(
        client.get(FAILURES, params={"organization_id": org["id"], "limit": 2}, headers=owner)
    )
    cursor = first["meta"]["page"]["next_cursor"]
    assert len(first["data"]) == 2 and cursor
    second = ok(client.get(first["links"]["next"], headers=owner))
    assert second["meta"]["page"]["next_cursor"] is None
    seen = [i["id"] for i in first["data"] + second["data"]]
    assert seen == list(reversed(made))
    times = [i["failed_at"] for i in first["data"] + second["data"]]
    assert times == sorted(times, reverse=True)


# -- mail ---------------------------------------------------------------------------------


def failed_mail(database_url: str, address: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT id, attempts, last_error FROM mail_outbox"
                " WHERE to_address = %s AND failed_at IS NOT NULL",
                (address,),
            ).fetchone()
            if row is not None:
                return {"id": row[0], "attempts": row[1], "last_error": row[2]}
            time.sleep(0.05)
    raise AssertionError(f"no failed mail to {address}")


def test_failed_mail_is_for_platform_admins_and_its_retry_sends_it_again(
    client: httpx.Client, org: dict, admin: dict, mailbox: Mailbox, database_url: str
) -> None:
    refused = new_email("refused-ops")
    signup(client, refused)  # the verification mail is refused for good (550)
    mail = failed_mail(database_url, refused)
    assert "550" in mail["last_error"]

    items = failures(client, bearer(admin), kind="mail", limit=200)
    (item,) = [i for i in items if i["id"] == str(mail["id"])]
    assert item["organization_id"] is None and item["error_code"] == "mail_failed"
    assert item["attempts"] == mail["attempts"] and item["summary"] == "Verify your email address"
    # An organization's admin sees no mail (it belongs to no organization) and cannot retry it.
    owner = bearer(org["owner"])
    assert failures(client, owner, organization_id=org["id"], kind="mail") == []
    assert failures(client, bearer(admin), organization_id=org["id"], kind="mail") == []
    assert client.post(item["retry_url"], headers=owner).status_code == 404

    # Its link's token was erased when it failed: sent again, it would not work.
    spent = client.post(item["retry_url"], headers=bearer(admin))
    assert spent.status_code == 409 and error_code(spent) == "mail_link_spent"
    # A mail without a single-use link, once the operator fixed what made it fail, goes again.
    fixed = new_email("fixed-ops")
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE mail_outbox SET to_address = %s, body = 'no link here' WHERE id = %s",
            (fixed, mail["id"]),
        )
    retried = ok(client.post(item["retry_url"], headers=bearer(admin)))["data"]
    assert retried["kind"] == "mail" and retried["status"] == "pending"
    assert retried["resource"]["failed_at"] is None
    assert retried["resource"]["attempts"] == mail["attempts"]
    assert "body" not in retried["resource"] and "token" not in retried["resource"]
    (sent,) = mailbox.wait(fixed)
    assert sent["Subject"] == "Verify your email address"
    again = client.post(item["retry_url"], headers=bearer(admin))
    assert again.status_code == 409 and error_code(again) == "conflict"
    audit = ok(
        client.get(
            "/v1/audit-logs",
            params={"action": "ops.mail.retry", "target_id": str(mail["id"])},
            headers=bearer(admin),
        )
    )
    assert len(audit["data"]) == 1


# -- who sees what ------------------------------------------------------------------------


def test_a_platform_admin_sees_every_organization(
    client: httpx.Client, org: dict, admin: dict
) -> None:
    job = dead_job(client, org)
    everywhere = failures(client, bearer(admin), kind="job", limit=200)
    assert job["id"] in [i["id"] for i in everywhere]
    (one,) = failures(client, bearer(admin), kind="job", organization_id=org["id"])
    assert one["id"] == job["id"]
    unknown = client.get(
        FAILURES,
        params={"organization_id": "00000000-0000-4000-8000-000000000000"},
        headers=bearer(admin),
    )
    assert unknown.status_code == 404
    queues = ok(client.get("/v1/ops/queues", headers=bearer(admin)))
    assert queues["meta"]["page"]["limit"] == 50


def test_an_organization_admin_sees_only_their_own(client: httpx.Client, org: dict) -> None:
    other = job_org(client)
    theirs = dead_job(client, other)
    mine = dead_job(client, org)
    admin = signup(client)
    add_member(client, org["owner"], org["id"], admin, "admin")
    as_admin = bearer(admin)
    assert [i["id"] for i in failures(client, as_admin, organization_id=org["id"])] == [mine["id"]]
    for path in (FAILURES, "/v1/ops/queues", "/v1/ops/health"):
        response = client.get(path, params={"organization_id": other["id"]}, headers=as_admin)
        assert response.status_code == 404, (path, response.text)
    response = client.post(f"{FAILURES}/job/{theirs['id']}/retry", headers=as_admin)
    assert response.status_code == 404
    # An API key acts in its own organization, and only there.
    key = key_auth(create_key(client, org["owner"], org["id"], scopes=["ops.read"]))
    assert [i["id"] for i in failures(client, key)] == [mine["id"]]
    response = client.get(FAILURES, params={"organization_id": other["id"]}, headers=key)
    assert response.status_code == 404
    # ops.read does not retry.
    response = client.post(f"{FAILURES}/job/{mine['id']}/retry", headers=key)
    assert response.status_code == 403


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_are_refused(client: httpx.Client, org: dict, role: str) -> None:
    job = dead_job(client, org)
    user = signup(client)
    add_member(client, org["owner"], org["id"], user, role)
    for path in (FAILURES, "/v1/ops/queues", "/v1/ops/health"):
        response = client.get(path, params={"organization_id": org["id"]}, headers=bearer(user))
        assert response.status_code == 403, (path, response.text)
        assert envelope(response)["error"]["details"]["action"] == "ops.read"
    response = client.post(f"{FAILURES}/job/{job['id']}/retry", headers=bearer(user))
    assert response.status_code == 403
    assert envelope(response)["error"]["details"]["action"] == "ops.retry"


def test_bad_parameters_are_400_naming_them(client: httpx.Client, org: dict) -> None:
    owner = bearer(org["owner"])
    base = {"organization_id": org["id"]}
    for params, name in (
        ({"kind": "nope"}, "kind"),
        ({"kind": "job,"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "12.job.123"}, "cursor"),
        ({"cursor": "12.event." + "0" * 20 + "\n"}, "cursor"),
        ({"organization_id": "not-a-uuid"}, "organization_id"),
    ):
        response = client.get(FAILURES, params={**base, **params}, headers=owner)
        assert response.status_code == 400, (params, response.text)
        assert envelope(response)["error"]["details"]["path"] == f"query.{name}", params
    for path, params in (
        ("/v1/ops/queues", {"offset": "-1"}),
        ("/v1/ops/queues", {"limit": "1000"}),
        ("/v1/ops/health", {"organization_id": "x"}),
    ):
        response = client.get(path, params={**base, **params}, headers=owner)
        assert response.status_code == 400, (path, params, response.text)
    # A signed-in user who is no platform admin names the organization.
    missing = client.get(FAILURES, headers=owner)
    assert missing.status_code == 400
    assert envelope(missing)["error"]["details"]["path"] == "query.organization_id"
    # A good cursor from the document's own shape is taken.
    fine = client.get(FAILURES, params={**base, "cursor": "1.mail." + "0" * 20}, headers=owner)
    assert fine.status_code == 200, fine.text


def test_retry_of_an_unknown_kind_or_id_is_not_found(client: httpx.Client, org: dict) -> None:
    owner = bearer(org["owner"])
    unknown = client.post(f"{FAILURES}/spaceship/1/retry", headers=owner)
    assert unknown.status_code == 404 and error_code(unknown) == "not_found"
    assert envelope(unknown)["error"]["details"]["kinds"] == [
        "job",
        "webhook_delivery",
        "event",
        "mail",
    ]
    for path in ("job/nope", "job/00000000-0000-4000-8000-000000000000", "mail/0", "event/x1"):
        response = client.post(f"{FAILURES}/{path}/retry", headers=owner)
        assert response.status_code == 404, (path, response.text)


# -- queues and health --------------------------------------------------------------------


def test_queues_count_jobs_per_type(client: httpx.Client, org: dict) -> None:
    for _ in range(2):
        submit(client, org["submit"], type="render")
    submit(client, org["submit"], type="quick")
    (claimed,) = claim(client, org["work"], types=["render"])
    assert claimed["type"] == "render"
    params = {"organization_id": org["id"]}
    page = ok(client.get("/v1/ops/queues", params=params, headers=bearer(org["owner"])))
    rows = {r["type"]: r for r in page["data"]}
    assert set(rows) == {"render", "quick"} and page["meta"]["page"]["total"] == 2
    render, quick = rows["render"], rows["quick"]
    assert (render["queued"], render["ready"], render["running"]) == (1, 1, 1)
    assert render["claims_last_minute"] == 1
    assert (quick["queued"], quick["running"], quick["claims_last_minute"]) == (1, 0, 0)
    assert all(r["organization_id"] == org["id"] for r in page["data"])
    assert 0 <= render["oldest_queued_seconds"] < 60


def test_health_shows_every_component_ok(client: httpx.Client, org: dict, admin: dict) -> None:
    platform = ok(client.get("/v1/ops/health", headers=bearer(admin)))["data"]
    assert platform["status"] == "ok", platform
    components = platform["components"]
    assert set(components) == {"postgres", "redis", "relay", "webhooks", "mailer"}
    assert all(c["status"] == "ok" for c in components.values()), components
    assert components["postgres"]["latency_ms"] >= 0 and components["redis"]["error"] is None
    assert platform["organization_id"] is None
    mine = ok(
        client.get(
            "/v1/ops/health", params={"organization_id": org["id"]}, headers=bearer(org["owner"])
        )
    )["data"]
    assert mine["status"] == "ok" and mine["organization_id"] == org["id"]
    assert mine["components"]["mailer"] is None  # mail belongs to no organization


# -- events the relay has not moved: a server that does not relay ---------------------------


@pytest.fixture(scope="module")
def unrelayed(
    database_url: str, server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server of its own storage that relays nothing: its outbox rows stay pending."""
    with own_storage(database_url, server_env, "unrelayed") as storage:
        env = {**storage, "TREADLE_PORT": str(free_port()), "TREADLE_EVENT_RELAY": "false"}
        log = tmp_path_factory.mktemp("unrelayed") / "server.log"
        server = start_server("granian", env, log)
        yield server
        server.stop()


def test_events_the_relay_missed_are_failures_and_their_retry_wakes_it(
    unrelayed: Server,
) -> None:
    url = unrelayed.env["TREADLE_DATABASE_URL"]
    with unrelayed.client() as client:
        owner = signup(client)
        org = create_org(client, owner)
        other_owner = signup(client)
        other = create_org(client, other_owner)
        as_owner = bearer(owner)
        assert failures(client, as_owner, organization_id=org["id"], kind="event") == []
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE event_outbox SET created_at = now() - interval '2 minutes'"
                " WHERE organization_id IN (%s, %s)",
                (org["id"], other["id"]),
            )
            renamed = client.patch(
                f"/v1/organizations/{org['id']}", json={"name": "Renamed"}, headers=as_owner
            )
            assert renamed.status_code == 200, renamed.text
            young = conn.execute(
                "SELECT max(id) FROM event_outbox WHERE organization_id = %s", (org["id"],)
            ).fetchone()[0]
        items = failures(client, as_owner, organization_id=org["id"], kind="event")
        assert items and all(i["organization_id"] == org["id"] for i in items)
        assert all(i["error_code"] == "not_relayed" and i["attempts"] is None for i in items)

        health = ok(
            client.get("/v1/ops/health", params={"organization_id": org["id"]}, headers=as_owner)
        )
        relay = health["data"]["components"]["relay"]
        assert relay["status"] == "down" and relay["oldest_age_seconds"] >= 120
        assert health["data"]["status"] == "down"

        with psycopg.connect(url, autocommit=True) as listener:
            listener.execute("LISTEN treadle_events")
            retried = ok(client.post(items[0]["retry_url"], headers=as_owner))["data"]
            assert retried["status"] == "pending"
            assert retried["resource"]["relayed_at"] is None
            woken = list(listener.notifies(timeout=5.0, stop_after=1))
            assert [n.channel for n in woken] == ["treadle_events"], "no wake-up sent"
        audit = ok(
            client.get(
                f"/v1/organizations/{org['id']}/audit-logs",
                params={"action": "ops.event.retry"},
                headers=as_owner,
            )
        )
        assert [a["target_id"] for a in audit["data"]] == [items[0]["id"]]
        # Not stuck yet: nothing to retry. Another tenant's: not found.
        response = client.post(f"{FAILURES}/event/{young}/retry", headers=as_owner)
        assert response.status_code == 409
        (theirs, *_) = failures(
            client, bearer(other_owner), organization_id=other["id"], kind="event"
        )
        response = client.post(theirs["retry_url"], headers=as_owner)
        assert response.status_code == 404
