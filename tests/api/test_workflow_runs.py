"""Workflow runs over HTTP, driven by a worker speaking the job protocol: each node's job is
queued when its upstream nodes have finished, with its input built from the run's data, and
the run advances in the transaction that completes the job."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import create_key, envelope, error_code
from tests.support.events import open_stream
from tests.support.jobs import claim, key_auth, once
from tests.support.servers import Server
from tests.support.workflows import (
    RUNS,
    define,
    nodes,
    run_of,
    start_run,
    wait_for,
    work_one,
    workflow_org,
)


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return workflow_org(client)


def test_a_linear_run_queues_each_job_after_the_last_with_its_output_and_ends_after_a_delay(
    client: httpx.Client, org: dict, server: Server
) -> None:
    claim(client, org["work"], limit=100)  # nothing of other tests is left queued
    definition = define(
        client,
        org,
        [
            {
                "id": "train",
                "type": "job",
                "job_type": "render",
                "input": {"data": {"$ref": "input.dataset"}},
            },
            {
                "id": "score",
                "type": "job",
                "job_type": "quick",
                "after": ["train"],
                "input": {"model": {"$ref": "nodes.train.output.model"}},
            },
            {"id": "cool", "type": "delay", "seconds": 1, "after": ["score"]},
        ],
    )
    created = start_run(client, org, definition, input={"dataset": "s3://d/1"})
    assert created.status_code == 201, created.text
    run = envelope(created)["data"]
    assert run["status"] == "running"
    assert nodes(run) == {"train": "running", "score": "waiting", "cool": "waiting"}

    train = work_one(client, org, {"model": "m-42"})
    assert (train["type"], train["input"]) == ("render", {"data": "s3://d/1"})
    assert (train["workflow_run_id"], train["workflow_node"]) == (run["id"], "train")
    assert nodes(run_of(client, org, run["id"]))["score"] == "running"

    score = work_one(client, org, {"auc": 0.91}, batch=True)
    assert (score["type"], score["input"]) == ("quick", {"model": "m-42"})
    assert nodes(run_of(client, org, run["id"]))["cool"] == "running"

    done = wait_for(client, org, run["id"], "succeeded")
    assert done["status"] == "succeeded", done
    assert nodes(done) == {"train": "succeeded", "score": "succeeded", "cool": "succeeded"}
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        (jobs,) = conn.execute(
            "SELECT count(*) FROM jobs WHERE workflow_run_id = %s", (run["id"],)
        ).fetchone()
    assert jobs == 2  # every node ran exactly once


def test_a_condition_picks_the_branch_and_the_other_is_skipped(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(
        client,
        org,
        [
            {"id": "eval", "type": "job", "job_type": "render"},
            {
                "id": "check",
                "type": "condition",
                "after": ["eval"],
                "cases": [
                    {
                        "outcome": "good",
                        "when": {"field": "nodes.eval.output.score", "op": "ge", "value": 0.9},
                    }
                ],
                "default": "bad",
            },
            {
                "id": "ship",
                "type": "job",
                "job_type": "quick",
                "after": [{"node": "check", "when": "good"}],
            },
            {
                "id": "retrain",
                "type": "job",
                "job_type": "quick",
                "after": [{"node": "check", "when": "bad"}],
            },
        ],
    )
    run = envelope(start_run(client, org, definition))["data"]
    work_one(client, org, {"score": 0.95})
    after = run_of(client, org, run["id"])
    assert nodes(after)["check"] == "succeeded"
    assert {n["node"]: n["outcome"] for n in after["nodes"]}["check"] == "good"
    assert nodes(after)["retrain"] == "skipped"
    ship = work_one(client, org, {"shipped": True})
    assert ship["workflow_node"] == "ship"
    done = run_of(client, org, run["id"])
    assert done["status"] == "succeeded"
    assert done["output"] == {"ship": {"shipped": True}}


def test_a_dead_job_fails_the_run_and_cancels_its_other_jobs(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(
        client,
        org,
        [
            {"id": "a", "type": "job", "job_type": "render"},
            {"id": "b", "type": "job", "job_type": "render"},
            {"id": "c", "type": "job", "job_type": "render", "after": ["a", "b"]},
        ],
    )
    run = envelope(start_run(client, org, definition))["data"]
    first, second = claim(client, org["work"], limit=1)[0], None
    failed = client.post(
        f"/v1/jobs/{first['id']}/fail",
        json={"lease_token": first["lease_token"], "error_code": "bad_input", "retryable": False},
        headers=org["work"],
    )
    assert envelope(failed)["data"]["status"] == "dead"
    after = run_of(client, org, run["id"])
    assert after["status"] == "failed"
    assert after["error_code"] == "bad_input"
    states = nodes(after)
    assert states[first["workflow_node"]] == "failed"
    assert {states[n] for n in ("a", "b") if n != first["workflow_node"]} == {"canceled"}
    assert states["c"] == "canceled"
    assert claim(client, org["work"], limit=10) == [] and second is None


def test_a_run_created_unstarted_waits_then_cancel_reaches_its_jobs(
    client: httpx.Client, org: dict, server: Server
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(client, org, [{"id": "a", "type": "job", "job_type": "render"}])
    run = envelope(start_run(client, org, definition, start=False))["data"]
    assert run["status"] == "created" and nodes(run) == {"a": "waiting"}
    assert claim(client, org["work"], limit=10) == []
    started = client.post(f"{RUNS}/{run['id']}/start", headers=org["defs"])
    assert envelope(started)["data"]["status"] == "running"
    again = client.post(f"{RUNS}/{run['id']}/start", headers=org["defs"])
    assert again.status_code == 409 and error_code(again) == "conflict"
    canceled = client.post(f"{RUNS}/{run['id']}/cancel", headers=org["defs"])
    assert envelope(canceled)["data"]["status"] == "canceled"
    assert claim(client, org["work"], limit=10) == []  # its queued job was canceled
    twice = client.post(f"{RUNS}/{run['id']}/cancel", headers=org["defs"])
    assert twice.status_code == 409
    # Every human action on the run is an audit row, by whom it was done.
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        audited = conn.execute(
            "SELECT action, actor_id FROM audit_logs WHERE target_id = %s ORDER BY created_at",
            (run["id"],),
        ).fetchall()
    owner = org["owner"]["user"]["id"]
    assert [(a, str(who)) for a, who in audited] == [
        ("workflow.run.create", owner),
        ("workflow.run.start", owner),
        ("workflow.run.cancel", owner),
    ]


def test_runs_need_an_idempotency_key_replay_and_bound_their_input(
    client: httpx.Client, org: dict
) -> None:
    definition = define(client, org, [{"id": "a", "type": "delay", "seconds": 60}])
    body = {"organization_id": org["id"], "definition_id": definition["id"]}
    missing = client.post(RUNS, json=body, headers=org["defs"])
    assert missing.status_code == 428
    key = {**org["defs"], "Idempotency-Key": str(uuid.uuid4())}
    first = client.post(RUNS, json=body, headers=key)
    second = client.post(RUNS, json=body, headers=key)
    # The replay is the stored answer, its first request's id and all.
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["data"]["id"] == envelope(first)["data"]["id"]
    # Past the run input's bound (256 KiB by default), though within the body's: 413,
    # and no run is stored.
    refused = start_run(client, org, definition, input={"text": "x" * (300 * 1024)})
    assert refused.status_code == 413, refused.text
    assert error_code(refused) == "payload_too_large"
    assert envelope(refused)["error"]["details"]["path"] == "$.input"
    listed = client.get(
        RUNS,
        params={"organization_id": org["id"], "definition_id": definition["id"]},
        headers=org["defs"],
    )
    assert [r["id"] for r in envelope(listed)["data"]] == [envelope(first)["data"]["id"]]


def test_the_runs_stream_carries_its_run_node_and_job_transitions_in_order(
    client: httpx.Client, org: dict, server: Server
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(
        client,
        org,
        [
            {"id": "a", "type": "job", "job_type": "render"},
            {"id": "b", "type": "job", "job_type": "render", "after": ["a"]},
        ],
    )
    run = envelope(start_run(client, org, definition, start=False))["data"]
    # Another run's events stay off this run's stream.
    other = define(client, org, [{"id": "x", "type": "delay", "seconds": 60}])
    start_run(client, org, other)
    path = f"{RUNS}/{run['id']}/events"
    with open_stream(server, org["defs"], {"after": "0-0"}, path=path) as opened:
        stream = opened.past_gap()
        client.post(f"{RUNS}/{run['id']}/start", headers=org["defs"]).raise_for_status()
        work_one(client, org, {"step": 1})
        work_one(client, org, {"step": 2})
        frames = stream.until("workflow.run.succeeded")
    assert [f["event"] for f in frames] == [
        "workflow.run.created",
        "workflow.run.started",
        "job.queued",
        "workflow.node.running",
        "job.running",
        "job.succeeded",
        "workflow.node.succeeded",
        "job.queued",
        "workflow.node.running",
        "job.running",
        "job.succeeded",
        "workflow.node.succeeded",
        "workflow.run.succeeded",
    ]
    assert {f["data"]["run_id"] for f in frames} == {run["id"]}


def test_a_job_whose_worker_vanished_fails_the_run_once_its_attempts_are_spent(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(
        client,
        org,
        [{"id": "a", "type": "job", "job_type": "render", "max_attempts": 1, "lease_seconds": 1}],
    )
    run = envelope(start_run(client, org, definition))["data"]
    claim(client, org["work"], limit=1)  # and never heartbeat: the reaper buries it
    done = wait_for(client, org, run["id"], "failed")
    assert done["status"] == "failed", done
    assert done["error_code"] == "lease_expired"


def test_a_signal_reaches_the_node_waiting_for_it_and_its_payload_flows_on(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(
        client,
        org,
        [
            {"id": "window", "type": "signal", "signal": "deploy-window"},
            {
                "id": "deploy",
                "type": "job",
                "job_type": "render",
                "after": ["window"],
                "input": {"slot": {"$ref": "nodes.window.output.slot"}},
            },
        ],
    )
    run = envelope(start_run(client, org, definition))["data"]
    assert nodes(run)["window"] == "running"
    wrong = client.post(f"{RUNS}/{run['id']}/signal", json={"name": "other"}, headers=org["defs"])
    assert wrong.status_code == 409
    assert envelope(wrong)["error"]["details"]["waiting_for"] == ["deploy-window"]
    sent = client.post(
        f"{RUNS}/{run['id']}/signal",
        json={"name": "deploy-window", "payload": {"slot": "tonight"}},
        headers=org["defs"],
    )
    assert sent.status_code == 200, sent.text
    assert nodes(envelope(sent)["data"])["window"] == "succeeded"
    deploy = work_one(client, org, {"deployed": True})
    assert deploy["input"] == {"slot": "tonight"}
    assert run_of(client, org, run["id"])["status"] == "succeeded"
    late = client.post(
        f"{RUNS}/{run['id']}/signal", json={"name": "deploy-window"}, headers=org["defs"]
    )
    assert late.status_code == 409
    assert envelope(late)["error"]["details"]["status"] == "succeeded"


def test_a_signal_that_does_not_come_in_time_takes_the_timed_out_edge(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(
        client,
        org,
        [
            {"id": "ack", "type": "signal", "signal": "ack", "timeout_seconds": 1},
            {
                "id": "escalate",
                "type": "job",
                "job_type": "render",
                "after": [{"node": "ack", "when": "timed_out"}],
            },
            {"id": "close", "type": "job", "job_type": "render", "after": ["ack"]},
        ],
    )
    run = envelope(start_run(client, org, definition))["data"]
    deadline = time.monotonic() + 10
    while nodes(run_of(client, org, run["id"]))["ack"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    after = run_of(client, org, run["id"])
    assert {n["node"]: n["outcome"] for n in after["nodes"]}["ack"] == "timed_out"
    assert nodes(after)["close"] == "skipped"
    assert work_one(client, org, None)["workflow_node"] == "escalate"


def test_a_paused_run_dispatches_nothing_keeps_what_finishes_and_moves_on_at_resume(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(
        client,
        org,
        [
            {"id": "a", "type": "job", "job_type": "render"},
            {"id": "b", "type": "job", "job_type": "render", "after": ["a"]},
            {"id": "go", "type": "signal", "signal": "go"},
            {"id": "c", "type": "job", "job_type": "render", "after": ["go"]},
        ],
    )
    run = envelope(start_run(client, org, definition))["data"]
    (a,) = claim(client, org["work"], limit=10)
    paused = client.post(f"{RUNS}/{run['id']}/pause", headers=org["defs"])
    assert envelope(paused)["data"]["status"] == "paused"
    again = client.post(f"{RUNS}/{run['id']}/pause", headers=org["defs"])
    assert again.status_code == 409
    # The running job finishes and is recorded; the signal is kept; nothing is dispatched.
    done = client.post(
        f"/v1/jobs/{a['id']}/complete",
        json={"lease_token": a["lease_token"], "result": {"a": 1}},
        headers=org["work"],
    )
    assert done.status_code == 200, done.text
    kept = client.post(f"{RUNS}/{run['id']}/signal", json={"name": "go"}, headers=org["defs"])
    assert kept.status_code == 200, kept.text
    held = run_of(client, org, run["id"])
    assert nodes(held) == {"a": "succeeded", "b": "waiting", "go": "succeeded", "c": "waiting"}
    assert claim(client, org["work"], limit=10) == []
    resumed = client.post(f"{RUNS}/{run['id']}/resume", headers=org["defs"])
    assert envelope(resumed)["data"]["status"] == "running"
    dispatched = claim(client, org["work"], limit=10)
    assert sorted(j["workflow_node"] for j in dispatched) == ["b", "c"]
    twice = client.post(f"{RUNS}/{run['id']}/resume", headers=org["defs"])
    assert twice.status_code == 409


def test_a_pause_freezes_a_delay_and_resume_counts_what_was_left(
    client: httpx.Client, org: dict
) -> None:
    definition = define(client, org, [{"id": "wait", "type": "delay", "seconds": 2}])
    run = envelope(start_run(client, org, definition))["data"]
    client.post(f"{RUNS}/{run['id']}/pause", headers=org["defs"]).raise_for_status()
    time.sleep(2.5)  # longer than the delay: a paused timer does not fire
    frozen = run_of(client, org, run["id"])
    assert nodes(frozen) == {"wait": "running"}
    assert 1.0 < frozen["nodes"][0]["remaining"] <= 2.0
    assert frozen["nodes"][0]["fire_at"] is None
    client.post(f"{RUNS}/{run['id']}/resume", headers=org["defs"]).raise_for_status()
    assert nodes(run_of(client, org, run["id"])) == {"wait": "running"}
    assert wait_for(client, org, run["id"], "succeeded")["status"] == "succeeded"


def test_bulk_actions_take_the_matching_runs_whose_state_allows_them(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = define(client, org, [{"id": "wait", "type": "delay", "seconds": 300}])
    other = define(client, org, [{"id": "wait", "type": "delay", "seconds": 300}])
    tagged = [
        envelope(start_run(client, org, definition, labels={"batch": "b1"}))["data"]["id"]
        for _ in range(3)
    ]
    envelope(start_run(client, org, definition, labels={"batch": "b2"}))
    untouched = envelope(start_run(client, org, other))["data"]["id"]

    def bulk(action: str, **body: Any) -> dict[str, Any]:
        response = client.post(
            f"{RUNS}/{action}", json={"organization_id": org["id"], **body}, headers=org["defs"]
        )
        assert response.status_code == 200, response.text
        return dict(envelope(response)["data"])

    assert bulk("pause", label={"batch": "b1"}) == {"action": "pause", "changed": 3, "more": False}
    assert {run_of(client, org, r)["status"] for r in tagged} == {"paused"}
    # Already paused: a second pause changes nothing.
    assert bulk("pause", label={"batch": "b1"})["changed"] == 0
    assert bulk("resume", definition_id=definition["id"])["changed"] == 3
    assert bulk("cancel", definition_id=definition["id"], status=["running"])["changed"] == 4
    assert {run_of(client, org, r)["status"] for r in tagged} == {"canceled"}
    assert run_of(client, org, untouched)["status"] == "running"


def test_runs_are_listed_by_status_definition_and_time_with_cursor_paging(
    client: httpx.Client, org: dict
) -> None:
    definition = define(client, org, [{"id": "a", "type": "delay", "seconds": 3600}])
    made = [envelope(start_run(client, org, definition, start=False))["data"] for _ in range(3)]
    client.post(f"{RUNS}/{made[0]['id']}/start", headers=org["defs"]).raise_for_status()
    query = {"organization_id": org["id"], "definition_id": definition["id"]}

    def listed(**params: Any) -> dict[str, Any]:
        page = client.get(RUNS, params={**query, **params}, headers=org["defs"])
        assert page.status_code == 200, page.text
        return envelope(page)

    first = listed(limit=2)
    assert [r["id"] for r in first["data"]] == [made[2]["id"], made[1]["id"]]
    rest = listed(limit=2, cursor=first["meta"]["page"]["next_cursor"])
    assert [r["id"] for r in rest["data"]] == [made[0]["id"]]
    assert [r["id"] for r in listed(status="running")["data"]] == [made[0]["id"]]
    since = listed(since=made[1]["created_at"])["data"]
    assert [r["id"] for r in since] == [made[2]["id"], made[1]["id"]]
    until = listed(until=made[1]["created_at"])["data"]
    assert [r["id"] for r in until] == [made[0]["id"]]
    bad = client.get(RUNS, params={**query, "since": "yesterday"}, headers=org["defs"])
    assert bad.status_code == 400 and error_code(bad) == "validation_failed"


def test_timers_are_swept_by_one_process_at_a_time(
    client: httpx.Client, org: dict, server: Server
) -> None:
    from treadle.store.workflow_runs import SWEEP_LOCK

    definition = define(client, org, [{"id": "wait", "type": "delay", "seconds": 1}])
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        # Another sweeper holds the lock: no process of the server fires the timer.
        conn.execute("SELECT pg_advisory_lock(%s)", (SWEEP_LOCK,))
        try:
            run = envelope(start_run(client, org, definition))["data"]
            time.sleep(2)
            assert run_of(client, org, run["id"])["status"] == "running"
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SWEEP_LOCK,))
    assert wait_for(client, org, run["id"], "succeeded")["status"] == "succeeded"


def test_api_keys_with_workflow_scopes_run_and_read_and_no_more(
    client: httpx.Client, org: dict
) -> None:
    definition = define(client, org, [{"id": "a", "type": "delay", "seconds": 3600}])
    runner = key_auth(
        create_key(client, org["owner"], org["id"], scopes=["workflows.run", "workflows.read"])
    )
    reader = key_auth(create_key(client, org["owner"], org["id"], scopes=["workflows.read"]))
    body = {"definition_id": definition["id"]}
    made = client.post(RUNS, json=body, headers=once(runner))
    assert made.status_code == 201, made.text
    run_id = envelope(made)["data"]["id"]
    assert envelope(made)["data"]["api_key_id"] is not None
    read = client.get(f"{RUNS}/{run_id}", headers=reader)
    assert read.status_code == 200 and envelope(read)["data"]["id"] == run_id
    assert envelope(client.get(RUNS, headers=reader))["data"][0]["id"] == run_id
    assert client.post(RUNS, json=body, headers=once(reader)).status_code == 403
    assert client.post(f"{RUNS}/{run_id}/cancel", headers=reader).status_code == 403
    # Defining is workflows.manage, which neither key holds.
    defining = client.post(
        "/v1/workflow-definitions",
        json={"name": "k", "nodes": [{"id": "a", "type": "delay", "seconds": 1}]},
        headers=runner,
    )
    assert defining.status_code == 403
    assert client.post(f"{RUNS}/{run_id}/cancel", headers=runner).status_code == 200
