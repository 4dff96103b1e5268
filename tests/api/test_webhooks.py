"""Webhooks over HTTP: endpoints, signed deliveries verified by a real receiver with the
``standardwebhooks`` package, retries, dead letters and redrive, 410 and rotation,
ordering, test sends, and tenancy."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import add_member, bearer, envelope, error_code, signup
from tests.support.jobs import job_org, submit
from tests.support.receiver import Answer, Receiver
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return job_org(client)


_paths = iter(range(1_000_000))


def endpoint(
    client: httpx.Client, org: dict, receiver: Receiver, **fields: Any
) -> tuple[dict[str, Any], str]:
    """A new endpoint at a fresh path of the receiver, which knows its secret."""
    path = f"/hook/{next(_paths)}"
    body = {"url": receiver.url(path), "organization_id": org["id"], **fields}
    made = client.post("/v1/webhooks", json=body, headers=bearer(org["owner"]))
    assert made.status_code == 201, made.text
    data = envelope(made)["data"]
    receiver.expect(path, data["secret"])
    return data, path


def deliveries(client: httpx.Client, org: dict, hook: dict, **params: Any) -> list[dict]:
    got = client.get(
        f"/v1/webhooks/{hook['id']}/deliveries", params=params, headers=bearer(org["owner"])
    )
    assert got.status_code == 200, got.text
    return list(envelope(got)["data"])


def settled(client: httpx.Client, org: dict, hook: dict, count: int, timeout: float = 15) -> list:
    """The endpoint's deliveries once ``count`` of them are finished (succeeded or dead)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = deliveries(client, org, hook)
        done = [d for d in rows if d["status"] in ("succeeded", "dead")]
        if len(done) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_an_event_is_delivered_signed_and_verified_by_the_receiver(
    client: httpx.Client, org: dict, receiver: Receiver, server: Server
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["job.queued"], description="ci")
    assert hook["secret"].startswith("whsec_")
    assert (hook["topics"], hook["enabled"], hook["ordered"]) == (["job.queued"], True, False)
    shown = envelope(client.get(f"/v1/webhooks/{hook['id']}", headers=bearer(org["owner"])))
    assert "secret" not in shown["data"]  # shown once, at creation
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        (sealed,) = conn.execute(
            "SELECT secret FROM webhook_endpoints WHERE id = %s", (hook["id"],)
        ).fetchone()
    assert hook["secret"].encode() not in bytes(sealed)
    assert hook["secret"].removeprefix("whsec_").encode() not in bytes(sealed)

    job = submit(client, org["submit"])
    (got,) = receiver.wait(path, 1)
    assert got.verified_by == hook["secret"]  # standardwebhooks.Webhook.verify passed
    assert got.webhook_id.startswith("msg_")
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    event = got.event
    assert (event["topic"], event["job_id"], event["organization_id"]) == (
        "job.queued",
        job["id"],
        org["id"],
    )
    assert event["id"] and "-" in event["id"]  # the event's stream id, as SSE gives it
    (row,) = settled(client, org, hook, 1)
    assert (row["status"], row["attempts"], row["response_status"]) == ("succeeded", 1, 200)
    assert row["response_body"] == "ok" and row["latency_ms"] >= 0
    assert row["event_id"] == event["id"] and row["topic"] == "job.queued"


def test_topic_filters_pick_the_events_and_each_event_is_delivered_once_per_endpoint(
    client: httpx.Client, org: dict, receiver: Receiver, server: Server
) -> None:
    jobs_hook, jobs_path = endpoint(client, org, receiver, topics=["job.*"])
    queued_hook, queued_path = endpoint(client, org, receiver, topics=["job.queued", "team.*"])
    _, none_path = endpoint(client, org, receiver, topics=["workflow_run.*"])
    for _ in range(3):
        submit(client, org["submit"])
    assert len(receiver.wait(queued_path, 3)) == 3
    assert len(receiver.wait(jobs_path, 3)) >= 3
    time.sleep(0.5)
    assert {r.event["topic"] for r in receiver.at(jobs_path)} == {"job.queued"}
    assert receiver.at(none_path) == []
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT endpoint_id, event_id, count(*) FROM webhook_deliveries"
            " WHERE organization_id = %s GROUP BY 1, 2",
            (org["id"],),
        ).fetchall()
    assert rows and all(n == 1 for _, _, n in rows)
    assert {str(e) for e, _, _ in rows} == {jobs_hook["id"], queued_hook["id"]}
    ids = [r.webhook_id for r in receiver.at(queued_path)]
    assert len(set(ids)) == 3


def test_failures_are_retried_on_the_schedule_then_succeed(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["job.queued"])
    receiver.script(path, Answer(500, b"oops"), Answer(503), Answer(200, b"fine"))
    submit(client, org["submit"])
    got = receiver.wait(path, 3)
    assert len(got) == 3
    assert len({r.webhook_id for r in got}) == 1  # the same message id on every attempt
    assert all(r.verified_by for r in got)
    (row,) = settled(client, org, hook, 1)
    assert (row["status"], row["attempts"], row["response_body"]) == ("succeeded", 3, "fine")


def test_retry_after_is_honoured(client: httpx.Client, org: dict, receiver: Receiver) -> None:
    _, path = endpoint(client, org, receiver, topics=["job.queued"])
    receiver.script(path, Answer(429, headers=(("Retry-After", "2"),)))
    submit(client, org["submit"])
    first, second = receiver.wait(path, 2)
    # The schedule says 0.2 s; the receiver asked for 2.
    assert second.at - first.at >= 1.9


def test_a_delivery_is_dead_after_its_last_attempt_and_a_redrive_sends_it_again(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["job.queued"])
    receiver.script(path, *[Answer(500)] * 4)
    submit(client, org["submit"])
    assert len(receiver.wait(path, 4)) == 4
    (row,) = settled(client, org, hook, 1)
    assert (row["status"], row["attempts"], row["response_status"]) == ("dead", 4, 500)
    assert "last attempt" in row["last_error"]
    assert [d["id"] for d in deliveries(client, org, hook, status="dead")] == [row["id"]]
    assert deliveries(client, org, hook, status="succeeded") == []
    time.sleep(0.5)
    assert len(receiver.at(path)) == 4  # nothing after the last attempt

    retried = client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{row['id']}/retry", headers=bearer(org["owner"])
    )
    assert retried.status_code == 202, retried.text
    assert envelope(retried)["data"]["redrives"] == 1
    assert len(receiver.wait(path, 5)) == 5
    (row,) = settled(client, org, hook, 1)
    assert (row["status"], row["attempts"], row["redrives"]) == ("succeeded", 1, 1)
    again = client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{row['id']}/retry", headers=bearer(org["owner"])
    )
    assert again.status_code == 409 and error_code(again) == "conflict"


def test_an_answer_that_is_not_retried_kills_the_delivery_at_once(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["job.queued"])
    receiver.script(path, Answer(400, b"\x00bad request" + b"x" * 3000))
    submit(client, org["submit"])
    (row,) = settled(client, org, hook, 1)
    assert (row["status"], row["attempts"], row["response_status"]) == ("dead", 1, 400)
    assert "not retried" in row["last_error"]
    assert len(row["response_body"].encode()) <= 1024 * 3 and "\x00" not in row["response_body"]


def test_410_gone_disables_the_endpoint_and_says_so_in_an_event(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    _, watch_path = endpoint(client, org, receiver, topics=["webhook.disabled"])
    hook, path = endpoint(client, org, receiver, topics=["job.queued"])
    receiver.script(path, Answer(410))
    submit(client, org["submit"])
    (said,) = receiver.wait(watch_path, 1)
    assert said.event["data"]["webhook_id"] == hook["id"]
    assert "410" in said.event["data"]["reason"]
    shown = envelope(client.get(f"/v1/webhooks/{hook['id']}", headers=bearer(org["owner"])))
    assert shown["data"]["enabled"] is False and "410" in shown["data"]["disabled_reason"]
    submit(client, org["submit"])
    time.sleep(0.8)
    assert len(receiver.at(path)) == 1  # a disabled endpoint gets nothing more
    refused = client.post(f"/v1/webhooks/{hook['id']}/test", headers=bearer(org["owner"]))
    assert refused.status_code == 409
    enabled = client.patch(
        f"/v1/webhooks/{hook['id']}", json={"enabled": True}, headers=bearer(org["owner"])
    )
    assert envelope(enabled)["data"]["disabled_reason"] is None
    submit(client, org["submit"])
    assert len(receiver.wait(path, 2)) == 2


def test_a_rotation_signs_with_both_secrets_for_the_overlap(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["job.queued"])
    rotated = client.post(
        f"/v1/webhooks/{hook['id']}/rotate",
        json={"overlap_seconds": 3600},
        headers=bearer(org["owner"]),
    )
    assert rotated.status_code == 200, rotated.text
    new = envelope(rotated)["data"]
    assert new["secret"] != hook["secret"] and new["previous_until"]
    submit(client, org["submit"])
    (got,) = receiver.wait(path, 1)
    signatures = got.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (hook["secret"], new["secret"]):
        lone = Receiver()  # verify with this one secret alone
        lone.secrets["/"] = [secret]
        assert lone._handle("/", got.headers, got.body) and lone.received[0].verified_by
    cut = client.post(
        f"/v1/webhooks/{hook['id']}/rotate",
        json={"overlap_seconds": 0},
        headers=bearer(org["owner"]),
    )
    newest = envelope(cut)["data"]["secret"]
    receiver.expect(path, newest)
    submit(client, org["submit"])
    second = receiver.wait(path, 2)[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    assert second.verified_by == newest


def test_an_ordered_endpoint_delivers_in_event_order_one_at_a_time(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["job.queued"], ordered=True)
    # The first delivery fails twice: the others wait behind it.
    receiver.script(path, Answer(500), Answer(500), *[Answer(200, delay=0.05)] * 5)
    jobs = [submit(client, org["submit"])["id"] for _ in range(5)]
    got = receiver.wait(path, 7)
    assert len(got) == 7
    order = [r.event["job_id"] for r in got]
    assert order == [jobs[0], jobs[0], *jobs]
    rows = settled(client, org, hook, 5)
    assert all(d["status"] == "succeeded" for d in rows)


def test_a_test_send_reaches_the_endpoint_whatever_its_topics(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["workflow_run.succeeded"])
    sent = client.post(f"/v1/webhooks/{hook['id']}/test", headers=bearer(org["owner"]))
    assert sent.status_code == 202, sent.text
    assert envelope(sent)["data"]["topic"] == "webhook.test"
    (got,) = receiver.wait(path, 1)
    assert got.verified_by and got.event["topic"] == "webhook.test"
    assert got.event["data"]["webhook_id"] == hook["id"]


def test_patch_list_and_delete(client: httpx.Client, org: dict, receiver: Receiver) -> None:
    hook, _ = endpoint(client, org, receiver)
    other, _ = endpoint(client, org, receiver)
    assert hook["topics"] == ["*"]
    changed = client.patch(
        f"/v1/webhooks/{hook['id']}",
        json={"topics": ["job.*"], "description": "jobs only", "ordered": True},
        headers=bearer(org["owner"]),
    )
    data = envelope(changed)["data"]
    assert (data["topics"], data["description"], data["ordered"]) == (["job.*"], "jobs only", True)
    listed = client.get(
        "/v1/webhooks",
        params={"organization_id": org["id"], "limit": 1},
        headers=bearer(org["owner"]),
    )
    page = envelope(listed)
    assert [w["id"] for w in page["data"]] == [other["id"]]
    rest = client.get(
        "/v1/webhooks",
        params={"organization_id": org["id"], "cursor": page["meta"]["page"]["next_cursor"]},
        headers=bearer(org["owner"]),
    )
    assert [w["id"] for w in envelope(rest)["data"]] == [hook["id"]]
    gone = client.delete(f"/v1/webhooks/{hook['id']}", headers=bearer(org["owner"]))
    assert gone.status_code == 200
    assert client.get(f"/v1/webhooks/{hook['id']}", headers=bearer(org["owner"])).status_code == 404


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "ftp://example.com/x"}, "validation_failed"),
        ({"url": "http://user:pw@example.com/x"}, "url_refused"),
        ({"url": "http://example.com/x#frag"}, "url_refused"),
        ({"url": "http://no-such-host.invalid/x"}, "url_refused"),
        ({"url": "http://example.com/\x00"}, "validation_failed"),
        ({"url": "http://example.com/" + "a" * 3000}, "validation_failed"),
        ({"url": "http://127.0.0.1/x", "topics": ["job.**"]}, "validation_failed"),
        ({"url": "http://127.0.0.1/x", "topics": []}, "validation_failed"),
        ({"url": "http://127.0.0.1/x", "topics": ["a"] * 51}, "validation_failed"),
        ({"url": "http://127.0.0.1/x", "description": "a\x00b"}, "validation_failed"),
        ({"url": "http://127.0.0.1/x", "secret": "whsec_x"}, "validation_failed"),
    ],
)
def test_bad_endpoints_are_refused_with_what_to_fix(
    client: httpx.Client, org: dict, body: dict, code: str
) -> None:
    made = client.post(
        "/v1/webhooks", json={"organization_id": org["id"], **body}, headers=bearer(org["owner"])
    )
    assert made.status_code == 400, made.text
    assert error_code(made) == code


def test_other_tenants_and_lesser_roles_are_kept_out(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, _ = endpoint(client, org, receiver)
    stranger = job_org(client)
    for method, path in (
        ("GET", f"/v1/webhooks/{hook['id']}"),
        ("PATCH", f"/v1/webhooks/{hook['id']}"),
        ("DELETE", f"/v1/webhooks/{hook['id']}"),
        ("GET", f"/v1/webhooks/{hook['id']}/deliveries"),
        ("POST", f"/v1/webhooks/{hook['id']}/test"),
    ):
        answer = client.request(
            method, path, json={} if method == "PATCH" else None, headers=bearer(stranger["owner"])
        )
        assert answer.status_code == 404, (method, path, answer.text)
    member = signup(client)
    add_member(client, org["owner"], org["id"], member, "member")
    made = client.post(
        "/v1/webhooks",
        json={"organization_id": org["id"], "url": "http://127.0.0.1/x"},
        headers=bearer(member),
    )
    assert made.status_code == 403
    shown = client.get(f"/v1/webhooks/{hook['id']}", headers=bearer(member))
    assert shown.status_code == 403
    # A delivery of one endpoint is not reachable through another's path.
    mine, _ = endpoint(client, stranger, receiver)
    sent = envelope(
        client.post(f"/v1/webhooks/{mine['id']}/test", headers=bearer(stranger["owner"]))
    )["data"]
    crossed = client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{sent['id']}/retry", headers=bearer(org["owner"])
    )
    assert crossed.status_code == 404


def test_finished_deliveries_past_the_retention_are_swept(
    client: httpx.Client, org: dict, receiver: Receiver, server: Server
) -> None:
    hook, _ = endpoint(client, org, receiver, topics=["nothing.here"])
    put = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"retention": {"webhook_delivery_days": 1}},
        headers=bearer(org["owner"]),
    )
    assert put.status_code == 200, put.text
    for _ in range(2):
        client.post(f"/v1/webhooks/{hook['id']}/test", headers=bearer(org["owner"]))
    old, fresh = sorted(settled(client, org, hook, 2), key=lambda d: d["created_at"])
    assert old["status"] == fresh["status"] == "succeeded"
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE webhook_deliveries SET finished_at = now() - interval '2 days' WHERE id = %s",
            (old["id"],),
        )
    deadline = time.monotonic() + 10  # TREADLE_RETENTION_SWEEP_SECONDS=1 in the test servers
    while time.monotonic() < deadline and len(deliveries(client, org, hook)) > 1:
        time.sleep(0.3)
    assert [d["id"] for d in deliveries(client, org, hook)] == [fresh["id"]]


def test_no_answer_holding_a_secret_is_kept_for_idempotent_replay(
    client: httpx.Client, org: dict, receiver: Receiver, server: Server
) -> None:
    key = {"Idempotency-Key": f"hook-{time.time_ns()}", **bearer(org["owner"])}
    body = {"url": receiver.url("/kept"), "organization_id": org["id"]}
    first = envelope(client.post("/v1/webhooks", json=body, headers=key))["data"]
    rotated = envelope(client.post(f"/v1/webhooks/{first['id']}/rotate", json={}, headers=key))[
        "data"
    ]
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        stored = conn.execute(
            "SELECT count(*) FROM idempotency_keys WHERE key = %s", (key["Idempotency-Key"],)
        ).fetchone()
    assert stored == (0,)
    assert first["secret"] != rotated["secret"]


def test_a_dead_delivery_is_an_operations_failure_and_its_retry_redrives_it(
    client: httpx.Client, org: dict, receiver: Receiver
) -> None:
    hook, path = endpoint(client, org, receiver, topics=["nothing.here"])
    receiver.script(path, Answer(404, b"no such hook"))
    client.post(f"/v1/webhooks/{hook['id']}/test", headers=bearer(org["owner"]))
    (dead,) = settled(client, org, hook, 1)
    assert dead["status"] == "dead"
    listed = client.get(
        "/v1/ops/failures",
        params={"organization_id": org["id"], "kind": "webhook_delivery"},
        headers=bearer(org["owner"]),
    )
    (item,) = envelope(listed)["data"]
    assert (item["id"], item["error_code"], item["summary"]) == (
        dead["id"],
        "http_404",
        "webhook.test",
    )
    retried = client.post(item["retry_url"], headers=bearer(org["owner"]))
    assert retried.status_code == 200, retried.text
    assert envelope(retried)["data"]["status"] == "pending"
    assert len(receiver.wait(path, 2)) == 2
    (row,) = settled(client, org, hook, 1)
    assert (row["status"], row["redrives"]) == ("succeeded", 1)
    stranger = job_org(client)
    foreign = client.post(item["retry_url"], headers=bearer(stranger["owner"]))
    assert foreign.status_code == 404
