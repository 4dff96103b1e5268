"""Map nodes (a job per item, bounded concurrency, results joined in item order) and
workflow nodes (a child run waited for, canceled with its parent) over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import envelope
from tests.support.jobs import claim
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


def complete(client: httpx.Client, org: dict, job: dict, result: Any) -> None:
    done = client.post(
        f"/v1/jobs/{job['id']}/complete",
        json={"lease_token": job["lease_token"], "result": result},
        headers=org["work"],
    )
    assert done.status_code == 200, done.text


def mapped(client: httpx.Client, org: dict, concurrency: int = 2) -> dict[str, Any]:
    return define(
        client,
        org,
        [
            {"id": "list", "type": "job", "job_type": "render"},
            {
                "id": "each",
                "type": "map",
                "after": ["list"],
                "over": "nodes.list.output.files",
                "job_type": "quick",
                "input": {"file": {"$ref": "item.name"}, "bucket": {"$ref": "input.bucket"}},
                "concurrency": concurrency,
            },
            {
                "id": "merge",
                "type": "job",
                "job_type": "render",
                "after": ["each"],
                "input": {"parts": {"$ref": "nodes.each.output"}},
            },
        ],
    )


def until(check: Any, what: str, seconds: float = 10) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return found


def test_a_map_runs_a_job_per_item_at_most_concurrency_at_once_and_joins_in_item_order(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    run = envelope(start_run(client, org, mapped(client, org), input={"bucket": "b1"}))["data"]
    files = [{"name": f"f{i}"} for i in range(5)]
    work_one(client, org, {"files": files})
    first = sorted(claim(client, org["work"], limit=100), key=lambda j: j["workflow_item"])
    assert [(j["workflow_node"], j["input"]) for j in first] == [
        ("each", {"file": "f0", "bucket": "b1"}),
        ("each", {"file": "f1", "bucket": "b1"}),
    ]
    state = next(n for n in run_of(client, org, run["id"])["nodes"] if n["node"] == "each")
    assert (state["items"], state["dispatched"], state["finished"]) == (5, 2, 0)
    # Finished out of order: each one done lets one more in, never more than two at once.
    complete(client, org, first[1], {"size": 1})
    (third,) = claim(client, org["work"], limit=100)
    assert third["input"]["file"] == "f2"
    complete(client, org, third, {"size": 2})
    complete(client, org, first[0], {"size": 0})
    rest = sorted(claim(client, org["work"], limit=100), key=lambda j: j["workflow_item"])
    assert [j["input"]["file"] for j in rest] == ["f3", "f4"]
    done = client.post(
        "/v1/jobs/complete",
        json={
            "items": [
                {"id": j["id"], "lease_token": j["lease_token"], "result": {"size": 3 + k}}
                for k, j in enumerate(rest)
            ]
        },
        headers=org["work"],
    )
    assert all(item["ok"] for item in envelope(done)["data"]), done.text
    (merge,) = claim(client, org["work"], limit=100)
    assert merge["input"] == {"parts": [{"size": i} for i in range(5)]}
    after = run_of(client, org, run["id"])
    each = next(n for n in after["nodes"] if n["node"] == "each")
    assert (each["status"], each["finished"]) == ("succeeded", 5)


def test_a_map_over_nothing_succeeds_at_once_and_over_what_is_not_a_list_fails(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    empty = envelope(start_run(client, org, mapped(client, org)))["data"]
    work_one(client, org, {"files": []})
    (merge,) = claim(client, org["work"], limit=100)
    assert merge["input"] == {"parts": []}
    assert nodes(run_of(client, org, empty["id"]))["each"] == "succeeded"
    wrong = envelope(start_run(client, org, mapped(client, org)))["data"]
    work_one(client, org, {"files": "f0"})
    failed = run_of(client, org, wrong["id"])
    assert (failed["status"], failed["error_code"]) == ("failed", "map_not_a_list")


def test_a_map_wider_than_the_setting_fails_and_a_dead_item_fails_the_run(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    wide = envelope(start_run(client, org, mapped(client, org)))["data"]
    work_one(client, org, {"files": [{"name": "x"}] * 1001})
    failed = run_of(client, org, wide["id"])
    assert (failed["status"], failed["error_code"]) == ("failed", "map_too_wide")
    assert "at most 1000" in failed["error_message"]

    run = envelope(start_run(client, org, mapped(client, org), input={"bucket": "b"}))["data"]
    work_one(client, org, {"files": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    bad, other = sorted(claim(client, org["work"], limit=100), key=lambda j: j["workflow_item"])
    dead = client.post(
        f"/v1/jobs/{bad['id']}/fail",
        json={"lease_token": bad["lease_token"], "error_code": "corrupt", "retryable": False},
        headers=org["work"],
    )
    assert envelope(dead)["data"]["status"] == "dead"
    after = run_of(client, org, run["id"])
    assert (after["status"], after["error_code"]) == ("failed", "corrupt")
    assert "item 0" in after["error_message"]
    late = client.post(
        f"/v1/jobs/{other['id']}/complete",
        json={"lease_token": other["lease_token"], "result": {}},
        headers=org["work"],
    )
    assert late.status_code == 409  # canceled with its run
    assert claim(client, org["work"], limit=100) == []


def parent_of_child(client: httpx.Client, org: dict) -> dict[str, Any]:
    child = define(
        client,
        org,
        [{"id": "step", "type": "job", "job_type": "quick", "input": {"x": {"$ref": "input.x"}}}],
    )
    return define(
        client,
        org,
        [
            {"id": "prep", "type": "job", "job_type": "render"},
            {
                "id": "sub",
                "type": "workflow",
                "after": ["prep"],
                "definition": child["name"],
                "input": {"x": {"$ref": "nodes.prep.output.x"}},
            },
            {
                "id": "after",
                "type": "job",
                "job_type": "render",
                "after": ["sub"],
                "input": {"child": {"$ref": "nodes.sub.output"}},
            },
        ],
    )


def test_a_workflow_node_runs_a_child_and_continues_with_its_output(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    run = envelope(start_run(client, org, parent_of_child(client, org)))["data"]
    work_one(client, org, {"x": 7})
    sub = next(n for n in run_of(client, org, run["id"])["nodes"] if n["node"] == "sub")
    assert sub["status"] == "running" and sub["child_run_id"]
    child = run_of(client, org, sub["child_run_id"])
    assert (child["parent_run_id"], child["parent_node"]) == (run["id"], "sub")
    assert child["input"] == {"x": 7}
    step = work_one(client, org, {"y": 8})
    assert (step["workflow_run_id"], step["input"]) == (child["id"], {"x": 7})
    assert wait_for(client, org, child["id"], "succeeded")["output"] == {"step": {"y": 8}}
    # The parent moves on when its sweep finds the child ended (woken at once here).
    after = until(lambda: claim(client, org["work"], limit=100), "the parent never moved on")
    assert [(j["workflow_node"], j["input"]) for j in after] == [
        ("after", {"child": {"step": {"y": 8}}})
    ]


def test_canceling_a_parent_cancels_its_child_and_a_failed_child_fails_its_parent(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    definition = parent_of_child(client, org)
    run = envelope(start_run(client, org, definition))["data"]
    work_one(client, org, {"x": 1})
    child_id = next(n for n in run_of(client, org, run["id"])["nodes"] if n["node"] == "sub")[
        "child_run_id"
    ]
    client.post(f"{RUNS}/{run['id']}/cancel", headers=org["defs"]).raise_for_status()
    assert run_of(client, org, child_id)["status"] == "canceled"
    assert claim(client, org["work"], limit=100) == []  # the child's job went with it

    other = envelope(start_run(client, org, definition))["data"]
    work_one(client, org, {"x": 2})
    child_id = next(n for n in run_of(client, org, other["id"])["nodes"] if n["node"] == "sub")[
        "child_run_id"
    ]
    client.post(f"{RUNS}/{child_id}/cancel", headers=org["defs"]).raise_for_status()
    failed = wait_for(client, org, other["id"], "failed")
    assert (failed["status"], failed["error_code"]) == ("failed", "child_canceled")


def test_a_child_busy_when_its_parent_is_canceled_is_canceled_by_the_sweep(
    client: httpx.Client, org: dict, server: Server
) -> None:
    claim(client, org["work"], limit=100)
    run = envelope(start_run(client, org, parent_of_child(client, org)))["data"]
    work_one(client, org, {"x": 3})
    child_id = next(n for n in run_of(client, org, run["id"])["nodes"] if n["node"] == "sub")[
        "child_run_id"
    ]
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as holder:
        # Another step holds the child: the parent's cancel does not wait for it.
        holder.execute("SELECT 1 FROM workflow_runs WHERE id = %s FOR UPDATE", (child_id,))
        canceled = client.post(f"{RUNS}/{run['id']}/cancel", headers=org["defs"])
        assert envelope(canceled)["data"]["status"] == "canceled"
        assert run_of(client, org, child_id)["status"] == "running"
        holder.rollback()
    assert wait_for(client, org, child_id, "canceled")["status"] == "canceled"
    assert claim(client, org["work"], limit=100) == []
