"""Approval gates over HTTP: who may decide them, N of M approvals, one rejection, expiry,
decisions kept through a pause, and the outcome choosing the branch that runs."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import add_member, bearer, envelope, error_code, signup
from tests.support.jobs import claim
from tests.support.servers import Server
from tests.support.workflows import RUNS, define, nodes, run_of, start_run, workflow_org


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    """A workflow organization (its owner starts the runs) with alice (a member the gates
    name), bob (a member of the team the gates name), carol (an admin) and dave (a member
    no gate names)."""
    org = workflow_org(client)
    owner = org["owner"]
    people = {name: signup(client) for name in ("alice", "bob", "carol", "dave")}
    for name, role in (("alice", "member"), ("bob", "member"), ("carol", "admin")):
        add_member(client, owner, org["id"], people[name], role)
    add_member(client, owner, org["id"], people["dave"], "member")
    team = envelope(
        client.post(
            "/v1/teams", json={"organization_id": org["id"], "name": "Release"}, headers=org["defs"]
        )
    )["data"]
    client.post(
        f"/v1/teams/{team['id']}/members",
        json={"user_id": people["bob"]["user"]["id"]},
        headers=org["defs"],
    ).raise_for_status()
    return {**org, **people, "team": team}


def gated(client: httpx.Client, org: dict, **gate: Any) -> dict[str, Any]:
    """A definition: the gate, then ship if approved, rollback if rejected, note if expired."""
    approvers = {
        "users": [org["alice"]["user"]["id"]],
        "teams": [org["team"]["id"]],
        "roles": ["owner", "admin"],
    }
    return define(
        client,
        org,
        [
            {"id": "gate", "type": "approval", "approvers": approvers, **gate},
            *(
                {
                    "id": node,
                    "type": "job",
                    "job_type": "quick",
                    "after": [{"node": "gate", "when": when}],
                }
                for node, when in (
                    ("ship", "approved"),
                    ("rollback", "rejected"),
                    ("note", "expired"),
                )
            ),
        ],
    )


def decide(
    client: httpx.Client, who: dict, run: dict, decision: str = "approve", node: str = "gate"
) -> httpx.Response:
    return client.post(
        f"{RUNS}/{run['id']}/approve",
        json={"node": node, "decision": decision, "comment": f"{decision}d\nby me"},
        headers=bearer(who),
    )


def gates(client: httpx.Client, org: dict, who: dict, **params: str) -> list[dict[str, Any]]:
    listed = client.get(
        "/v1/approvals", params={"organization_id": org["id"], **params}, headers=bearer(who)
    )
    assert listed.status_code == 200, listed.text
    return list(envelope(listed)["data"])


def queued_nodes(client: httpx.Client, org: dict) -> list[str]:
    return sorted(j["workflow_node"] for j in claim(client, org["work"], limit=100))


def test_two_approvals_open_the_gate_for_the_approved_branch_and_each_is_recorded(
    client: httpx.Client, org: dict, server: Server
) -> None:
    claim(client, org["work"], limit=100)
    run = envelope(start_run(client, org, gated(client, org, required=2)))["data"]
    assert nodes(run)["gate"] == "running"
    # The gate is listed to those it names, by user, team and role, and to no one else.
    (listed,) = gates(client, org, org["alice"], run_id=run["id"])
    assert (listed["status"], listed["required"], listed["approvals"]) == ("pending", 2, 0)
    assert [g["run_id"] for g in gates(client, org, org["bob"], run_id=run["id"])] == [run["id"]]
    assert [g["run_id"] for g in gates(client, org, org["carol"], run_id=run["id"])] == [run["id"]]
    assert gates(client, org, org["dave"], run_id=run["id"]) == []
    # The owner's role is named, but the owner submitted the run and the gate does not allow it.
    assert gates(client, org, org["owner"], run_id=run["id"]) == []
    refused = decide(client, org["owner"], run)
    assert refused.status_code == 403 and "submitter" in envelope(refused)["error"]["message"]
    stranger = decide(client, org["dave"], run)
    assert stranger.status_code == 403 and error_code(stranger) == "forbidden"

    first = decide(client, org["alice"], run)
    assert first.status_code == 200, first.text
    assert nodes(envelope(first)["data"])["gate"] == "running"  # one of two
    twice = decide(client, org["alice"], run)
    assert twice.status_code == 409 and "already decided" in envelope(twice)["error"]["message"]
    second = decide(client, org["bob"], run)
    after = envelope(second)["data"]
    gate = next(n for n in after["nodes"] if n["node"] == "gate")
    assert (gate["status"], gate["outcome"]) == ("succeeded", "approved")
    assert [(d["user_id"], d["decision"], d["comment"]) for d in gate["output"]["decisions"]] == [
        (org["alice"]["user"]["id"], "approve", "approved\nby me"),
        (org["bob"]["user"]["id"], "approve", "approved\nby me"),
    ]
    assert nodes(after) == {
        "gate": "succeeded",
        "ship": "running",
        "rollback": "skipped",
        "note": "skipped",
    }
    assert queued_nodes(client, org) == ["ship"]
    late = decide(client, org["carol"], run)
    assert late.status_code == 409 and envelope(late)["error"]["details"]["gate"] == "approved"
    (closed,) = gates(client, org, org["alice"], run_id=run["id"], status="approved")
    assert (closed["approvals"], closed["decided_by_me"]) == (2, True)
    assert gates(client, org, org["alice"], run_id=run["id"], status="pending") == []
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        audited = conn.execute(
            "SELECT actor_id, after->>'decision' FROM audit_logs WHERE target_id = %s"
            " AND action = 'workflow.approval.decide' ORDER BY created_at",
            (run["id"],),
        ).fetchall()
        topics = conn.execute(
            "SELECT topic FROM event_outbox WHERE topic LIKE 'approval.%%' AND run_id = %s"
            " ORDER BY id",
            (run["id"],),
        ).fetchall()
    assert [(str(a), d) for a, d in audited] == [
        (org["alice"]["user"]["id"], "approve"),
        (org["bob"]["user"]["id"], "approve"),
    ]
    assert [t for (t,) in topics] == ["approval.requested", "approval.decided", "approval.decided"]


def test_one_rejection_takes_the_rejected_branch(client: httpx.Client, org: dict) -> None:
    claim(client, org["work"], limit=100)
    run = envelope(start_run(client, org, gated(client, org, required=2)))["data"]
    decide(client, org["alice"], run).raise_for_status()
    rejected = envelope(decide(client, org["carol"], run, "reject"))["data"]
    gate = next(n for n in rejected["nodes"] if n["node"] == "gate")
    assert gate["outcome"] == "rejected"
    assert nodes(rejected)["ship"] == "skipped"
    assert queued_nodes(client, org) == ["rollback"]


def test_an_api_key_or_a_wrong_node_cannot_decide_and_a_gate_not_reached_is_a_409(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    approvers = {"users": [org["alice"]["user"]["id"]]}
    definition = define(
        client,
        org,
        [
            {"id": "build", "type": "job", "job_type": "quick"},
            {"id": "gate", "type": "approval", "approvers": approvers, "after": ["build"]},
        ],
    )
    run = envelope(start_run(client, org, definition))["data"]
    early = decide(client, org["alice"], run)
    assert early.status_code == 409 and "not been reached" in envelope(early)["error"]["message"]
    wrong = decide(client, org["alice"], run, node="build")
    assert wrong.status_code == 400 and error_code(wrong) == "validation_failed"
    by_key = client.post(
        f"{RUNS}/{run['id']}/approve",
        json={"node": "gate", "decision": "approve"},
        headers=org["submit"],
    )
    assert by_key.status_code == 403
    listed = client.get("/v1/approvals", headers=org["submit"])
    assert listed.status_code == 403


def test_an_expired_gate_closes_with_its_declared_outcome(client: httpx.Client, org: dict) -> None:
    claim(client, org["work"], limit=100)
    definition = gated(client, org, expires_in_seconds=1, on_expiry="rejected")
    run = envelope(start_run(client, org, definition))["data"]
    (listed,) = gates(client, org, org["alice"], run_id=run["id"])
    assert listed["expires_at"] is not None
    deadline = time.monotonic() + 10
    while nodes(run_of(client, org, run["id"]))["gate"] == "running":
        assert time.monotonic() < deadline, "the gate never expired"
        time.sleep(0.2)
    after = run_of(client, org, run["id"])
    gate = next(n for n in after["nodes"] if n["node"] == "gate")
    assert (gate["outcome"], gate["output"]) == (
        "rejected",
        {"outcome": "rejected", "decisions": []},
    )
    assert queued_nodes(client, org) == ["rollback"]
    late = decide(client, org["alice"], run)
    assert late.status_code == 409 and envelope(late)["error"]["details"]["gate"] == "expired"
    assert gates(client, org, org["alice"], run_id=run["id"])[0]["status"] == "expired"


def test_decisions_on_a_paused_run_are_kept_and_close_the_gate_on_resume(
    client: httpx.Client, org: dict
) -> None:
    claim(client, org["work"], limit=100)
    run = envelope(start_run(client, org, gated(client, org, expires_in_seconds=3600)))["data"]
    client.post(f"{RUNS}/{run['id']}/pause", headers=org["defs"]).raise_for_status()
    paused = gates(client, org, org["alice"], run_id=run["id"])[0]
    assert paused["expires_at"] is None  # the expiry is frozen with the run
    kept = decide(client, org["alice"], run)
    assert kept.status_code == 200, kept.text
    assert nodes(envelope(kept)["data"])["gate"] == "running"
    assert queued_nodes(client, org) == []
    resumed = envelope(client.post(f"{RUNS}/{run['id']}/resume", headers=org["defs"]))["data"]
    assert nodes(resumed)["gate"] == "succeeded"
    assert queued_nodes(client, org) == ["ship"]


def test_canceling_a_run_cancels_its_open_gate(client: httpx.Client, org: dict) -> None:
    run = envelope(start_run(client, org, gated(client, org)))["data"]
    client.post(f"{RUNS}/{run['id']}/cancel", headers=org["defs"]).raise_for_status()
    assert gates(client, org, org["alice"], run_id=run["id"])[0]["status"] == "canceled"
    closed = decide(client, org["alice"], run)
    assert closed.status_code == 409


def test_approval_filters_name_what_is_wrong(client: httpx.Client, org: dict) -> None:
    for params, where in (
        ({"status": "pending,maybe"}, "query.status"),
        ({"run_id": "nope"}, "query.run_id"),
        ({"cursor": "1.xyz"}, "query.cursor"),
    ):
        bad = client.get(
            "/v1/approvals",
            params={"organization_id": org["id"], **params},
            headers=bearer(org["alice"]),
        )
        assert bad.status_code == 400, (params, bad.text)
        assert envelope(bad)["error"]["details"]["path"] == where
    missing = decide(client, org["alice"], {"id": "00000000-0000-0000-0000-000000000000"})
    assert missing.status_code == 404  # no such run: nothing to decide
    run = envelope(start_run(client, org, gated(client, org)))["data"]
    for comment in ("a\x00b", "line\r\nbreak", "x" * 2001):
        refused = client.post(
            f"{RUNS}/{run['id']}/approve",
            json={"node": "gate", "decision": "approve", "comment": comment},
            headers=bearer(org["alice"]),
        )
        assert refused.status_code == 400, (comment[:10], refused.text)
    assert nodes(run_of(client, org, run["id"]))["gate"] == "running"  # nothing decided
