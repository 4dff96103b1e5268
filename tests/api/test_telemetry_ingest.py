"""Telemetry ingest over HTTP: batches as JSON or NDJSON, compressed or not, bad events
refused one by one, replays that write nothing twice, and the listings of what landed."""

from __future__ import annotations

import gzip
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from psycopg import sql

from tests.support.api import bearer, envelope, error_code
from tests.support.jobs import job_org
from tests.support.servers import Server
from tests.support.telemetry import INGEST, enroll, event, post_batch


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return job_org(client)


@pytest.fixture
def agent(client: httpx.Client, org: dict) -> dict[str, Any]:
    return enroll(client, org, name="edge-1")


def listed(client: httpx.Client, org: dict, path: str, **params: Any) -> dict[str, Any]:
    page = client.get(
        path, params={"organization_id": org["id"], **params}, headers=bearer(org["owner"])
    )
    assert page.status_code == 200, page.text
    return envelope(page)


def test_a_batch_takes_its_good_events_and_refuses_the_bad_ones_by_index(
    client: httpx.Client, org: dict, agent: dict
) -> None:
    batch = [
        event("cpu.sample", host="a", value=1),
        {"type": "Bad Type", "timestamp": datetime.now(UTC).isoformat()},
        {**event("disk.sample", host="b", value=2), "id": "evt-2"},
        {"type": "cpu.sample"},  # no timestamp
        "not an object",
    ]
    sent = post_batch(client, agent, batch)
    assert sent.status_code == 201, sent.text
    answer = envelope(sent)["data"]
    assert answer["accepted"] == 2
    assert [(r["index"], r["code"]) for r in answer["rejected"]] == [
        (1, "invalid_type"),
        (3, "invalid_timestamp"),
        (4, "not_an_object"),
    ]
    events = listed(client, org, "/v1/telemetry/events", agent_id=agent["agent"]["id"])["data"]
    assert [(e["seq"], e["type"], e["event_id"], e["attributes"]) for e in events] == [
        (2, "disk.sample", "evt-2", {"host": "b", "value": 2}),
        (0, "cpu.sample", None, {"host": "a", "value": 1}),
    ]
    assert {e["batch_id"] for e in events} == {answer["batch_id"]}
    only_cpu = listed(client, org, "/v1/telemetry/events", type="cpu.sample")["data"]
    assert [e["seq"] for e in only_cpu] == [0]
    (batch_row,) = listed(client, org, "/v1/telemetry/batches")["data"]
    assert (batch_row["id"], batch_row["accepted"], batch_row["rejected"]) == (
        answer["batch_id"],
        2,
        3,
    )
    (status,) = listed(client, org, "/v1/telemetry/status")["data"]
    assert (status["agent_id"], status["accepted"], status["rejected"]) == (
        agent["agent"]["id"],
        2,
        3,
    )
    assert status["last_error"].startswith("event 1:")


def test_a_retry_with_the_same_key_replays_the_answer_and_writes_nothing_twice(
    client: httpx.Client, org: dict, agent: dict, server: Server
) -> None:
    key = str(uuid.uuid4())
    batch = [event(value=i) for i in range(20)]
    first = post_batch(client, agent, batch, key=key)
    second = post_batch(client, agent, batch, key=key)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["data"] == envelope(first)["data"]
    other = post_batch(client, agent, batch[:5], key=key)
    assert other.status_code == 422
    # A batch is its bytes: the same events spaced otherwise are another request.
    spaced = post_batch(client, agent, b"[ " + orjson.dumps(batch)[1:], key=key)
    assert spaced.status_code == 422
    missing = client.post(
        INGEST,
        content=orjson.dumps(batch),
        headers={**agent["auth"], "Content-Type": "application/json"},
    )
    assert missing.status_code == 428
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM telemetry_events WHERE agent_id = %s", (agent["agent"]["id"],)
        ).fetchone()
    assert count == 20


def test_ndjson_gzip_and_zstd_bodies_land_the_same_events(
    client: httpx.Client, org: dict, agent: dict
) -> None:
    lines = [event(value=i) for i in range(3)]
    ndjson = b"\n".join(orjson.dumps(e) for e in lines) + b"\n{broken\n"
    sent = post_batch(client, agent, ndjson, **{"Content-Type": "application/x-ndjson"})
    answer = envelope(sent)["data"]
    assert (answer["accepted"], [r["code"] for r in answer["rejected"]]) == (3, ["invalid_json"])
    zipped = post_batch(
        client, agent, gzip.compress(orjson.dumps(lines)), **{"Content-Encoding": "gzip"}
    )
    assert envelope(zipped)["data"]["accepted"] == 3
    from backports import zstd

    packed = post_batch(
        client, agent, zstd.compress(orjson.dumps(lines)), **{"Content-Encoding": "zstd"}
    )
    assert envelope(packed)["data"]["accepted"] == 3


def test_bodies_that_are_not_batches_or_too_big_are_refused_whole(
    client: httpx.Client, org: dict, agent: dict
) -> None:
    not_json = post_batch(client, agent, b"hello, world")
    assert not_json.status_code == 400 and error_code(not_json) == "bad_request"
    assert envelope(not_json)["error"]["details"]["reason"] == "not_json"
    corrupt = post_batch(client, agent, b"\x1f\x8b\x08garbage", **{"Content-Encoding": "gzip"})
    assert corrupt.status_code == 400
    # A bomb: 64 MiB of spaces in 64 KiB of gzip; the policy allows 1 MiB unpacked.
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]", compresslevel=9)
    started = time.monotonic()
    refused = post_batch(client, agent, bomb, **{"Content-Encoding": "gzip"})
    assert refused.status_code == 413 and error_code(refused) == "payload_too_large"
    assert time.monotonic() - started < 5
    put = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"telemetry": {"max_batch_events": 10, "allowed_types": ["cpu.sample"]}},
        headers=bearer(org["owner"]),
    )
    assert put.status_code == 200, put.text
    # Larger than a plain route's body (1 MiB) is a batch route's to take: the policy
    # (1 MiB once decompressed) is what refuses it.
    wide = post_batch(client, agent, b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert wide.status_code == 413
    assert envelope(wide)["error"]["details"]["reason"] == "too_large"
    many = post_batch(client, agent, [event() for _ in range(11)])
    assert many.status_code == 413
    assert envelope(many)["error"]["details"]["reason"] == "too_many_events"
    forbidden = envelope(post_batch(client, agent, [event(), event("gpu.sample")]))["data"]
    assert forbidden["accepted"] == 1
    assert [(r["index"], r["code"]) for r in forbidden["rejected"]] == [(1, "type_not_allowed")]
    wrong_type = post_batch(client, agent, b"a,b", **{"Content-Type": "text/csv"})
    assert wrong_type.status_code == 415
    (status,) = listed(client, org, "/v1/telemetry/status")["data"]
    assert status["last_error"] is not None


def test_only_agents_ingest_and_events_are_paged_by_cursor(
    client: httpx.Client, org: dict, agent: dict
) -> None:
    as_owner = client.post(
        INGEST,
        params={"organization_id": org["id"]},
        content=orjson.dumps([event()]),
        headers={
            **bearer(org["owner"]),
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    assert as_owner.status_code == 403
    old = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for i in range(5):
        post_batch(
            client,
            agent,
            [{**event(value=i), "timestamp": old if i == 0 else event()["timestamp"]}],
        )
    first = listed(client, org, "/v1/telemetry/events", limit=3)
    rest = listed(
        client, org, "/v1/telemetry/events", limit=3, cursor=first["meta"]["page"]["next_cursor"]
    )
    values = [e["attributes"]["value"] for e in first["data"] + rest["data"]]
    assert values == [4, 3, 2, 1, 0]
    recent = listed(
        client,
        org,
        "/v1/telemetry/events",
        since=(datetime.now(UTC) - timedelta(minutes=10)).isoformat(),
    )
    assert sorted(e["attributes"]["value"] for e in recent["data"]) == [1, 2, 3, 4]


def test_retention_drops_whole_day_partitions_past_the_organizations_setting(
    client: httpx.Client, org: dict, agent: dict, server: Server
) -> None:
    assert post_batch(client, agent, [event()]).status_code == 201
    org_hex = uuid.UUID(org["id"]).hex
    old_day = (datetime.now(UTC) - timedelta(days=10)).date()
    name = f"telemetry_events_{org_hex}_{old_day:%Y%m%d}"
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                sql.Identifier(name),
                sql.Identifier(f"telemetry_events_{org_hex}"),
                sql.Literal(f"{old_day} 00:00:00+00"),
                sql.Literal(f"{old_day + timedelta(days=1)} 00:00:00+00"),
            )
        )
        conn.execute(
            "INSERT INTO telemetry_partitions (organization_id, day, name) VALUES (%s, %s, %s)",
            (org["id"], old_day, name),
        )
        conn.execute(
            "INSERT INTO telemetry_events (organization_id, agent_id, batch_id, seq, type, ts,"
            " attributes, received_at) VALUES (%s, %s, %s, 0, 'old', %s, '{}', %s)",
            (
                org["id"],
                agent["agent"]["id"],
                uuid.uuid4(),
                f"{old_day} 12:00:00+00",
                f"{old_day} 12:00:00+00",
            ),
        )
    put = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"retention": {"telemetry_days": 7}},
        headers=bearer(org["owner"]),
    )
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + 10  # the test servers sweep every second
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        while time.monotonic() < deadline:
            (left,) = conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
            if left is None:
                break
            time.sleep(0.3)
        assert left is None, "the old partition was not dropped"
        (today,) = conn.execute(
            "SELECT count(*) FROM telemetry_events WHERE organization_id = %s", (org["id"],)
        ).fetchone()
    assert today == 1


def test_garbage_cursors_and_filters_are_refused_with_the_parameter_named(
    client: httpx.Client, org: dict
) -> None:
    for path, params, where in (
        ("/v1/telemetry/events", {"cursor": "1.2.3"}, "query.cursor"),
        ("/v1/telemetry/events", {"cursor": f"1.{'0' * 32}.999999"}, "query.cursor"),
        ("/v1/telemetry/events", {"agent_id": "not-a-uuid"}, "query.agent_id"),
        ("/v1/telemetry/events", {"since": "\x00"}, "query.since"),
        ("/v1/telemetry/batches", {"cursor": "x"}, "query.cursor"),
        ("/v1/edge-agents", {"cursor": "9" * 30}, "query.cursor"),
    ):
        bad = client.get(
            path, params={"organization_id": org["id"], **params}, headers=bearer(org["owner"])
        )
        assert bad.status_code == 400, (path, params, bad.text)
        assert envelope(bad)["error"]["details"]["path"] == where, (path, params)
