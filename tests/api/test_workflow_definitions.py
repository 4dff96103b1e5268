"""Workflow definitions over HTTP: typed nodes in JSON, YAML or TOML, versions per name,
and every graph that could not run refused with the path of the node at fault."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import add_member, bearer, create_key, envelope, error_code, signup
from tests.support.jobs import key_auth
from tests.support.servers import Server
from tests.support.workflows import workflow_org

PATH = "/v1/workflow-definitions"


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    return workflow_org(client)


def define(client: httpx.Client, org: dict, nodes: list[Any], name: str = "pipeline") -> Any:
    return client.post(
        PATH,
        json={"organization_id": org["id"], "name": name, "nodes": nodes},
        headers=org["defs"],
    )


def refused(response: httpx.Response, path: str) -> str:
    assert response.status_code == 400, response.text
    assert error_code(response) == "validation_failed"
    error = envelope(response)["error"]
    assert error["details"]["path"] == path, error
    return str(error["message"])


LINEAR = [
    {"id": "train", "type": "job", "job_type": "render", "input": {"data": {"$ref": "input.x"}}},
    {
        "id": "score",
        "type": "job",
        "job_type": "quick",
        "after": ["train"],
        "input": {"model": {"$ref": "nodes.train.output.model"}},
    },
    {"id": "wait", "type": "delay", "seconds": 60, "after": ["score"]},
]


def test_a_name_posted_again_gets_its_next_version_and_each_version_stays_as_it_was(
    client: httpx.Client, org: dict
) -> None:
    first = define(client, org, LINEAR)
    assert first.status_code == 201, first.text
    v1 = envelope(first)["data"]
    assert (v1["name"], v1["version"], v1["node_count"]) == ("pipeline", 1, 3)
    assert [n["id"] for n in v1["nodes"]] == ["train", "score", "wait"]
    # Edges are stored with the outcome they follow spelled out.
    assert v1["nodes"][1]["after"] == [{"node": "train", "when": "succeeded"}]
    second = define(client, org, LINEAR[:1])
    v2 = envelope(second)["data"]
    assert (v2["version"], v2["node_count"]) == (2, 1)
    again = envelope(client.get(f"{PATH}/{v1['id']}", headers=org["defs"]))["data"]
    assert again["version"] == 1 and len(again["nodes"]) == 3
    listed = client.get(
        PATH, params={"organization_id": org["id"], "name": "pipeline"}, headers=org["defs"]
    )
    assert [d["version"] for d in envelope(listed)["data"]] == [2, 1]


def test_concurrent_posts_of_one_name_each_get_their_own_version(server: Server, org: dict) -> None:
    answers: list[int] = []

    def post() -> None:
        with server.client() as c:
            answers.append(define(c, org, LINEAR, name="raced").status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [201] * 6
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        versions = conn.execute(
            "SELECT version FROM workflow_definitions WHERE organization_id = %s AND name = 'raced'"
            " ORDER BY version",
            (org["id"],),
        ).fetchall()
    assert [v for (v,) in versions] == [1, 2, 3, 4, 5, 6]


def test_yaml_and_toml_bodies_define_the_same_graph(client: httpx.Client, org: dict) -> None:
    yaml_body = f"""
organization_id: {org["id"]}
name: from-yaml
nodes:
  - id: train
    type: job
    job_type: render
  - id: gate
    type: approval
    after: [train]
    approvers: {{roles: [admin]}}
  - id: ship
    type: job
    job_type: quick
    after: [{{node: gate, when: approved}}]
"""
    toml_body = f"""
organization_id = "{org["id"]}"
name = "from-toml"

[[nodes]]
id = "train"
type = "job"
job_type = "render"

[[nodes]]
id = "gate"
type = "approval"
after = ["train"]
approvers = {{ roles = ["admin"] }}

[[nodes]]
id = "ship"
type = "job"
job_type = "quick"
after = [{{ node = "gate", when = "approved" }}]
"""
    made = []
    for body, kind in ((yaml_body, "application/yaml"), (toml_body, "application/toml")):
        response = client.post(PATH, content=body, headers={**org["defs"], "content-type": kind})
        assert response.status_code == 201, response.text
        made.append(envelope(response)["data"]["nodes"])
    assert made[0] == made[1]
    assert made[0][2]["after"] == [{"node": "gate", "when": "approved"}]


def test_a_cycle_is_refused_naming_it(client: httpx.Client, org: dict) -> None:
    nodes = [
        {"id": "start", "type": "job", "job_type": "render"},
        {"id": "a", "type": "job", "job_type": "render", "after": ["start", "c"]},
        {"id": "b", "type": "job", "job_type": "render", "after": ["a"]},
        {"id": "c", "type": "job", "job_type": "render", "after": ["b"]},
    ]
    response = define(client, org, nodes)
    assert response.status_code == 400, response.text
    error = envelope(response)["error"]
    assert sorted(error["details"]["cycle"]) == ["a", "b", "c"]
    assert "cycle" in error["message"]


@pytest.mark.parametrize(
    ("nodes", "path", "words"),
    [
        (
            [{"id": "a", "type": "job", "job_type": "render", "after": ["ghost"]}],
            "$.nodes[0].after[0]",
            "no node 'ghost'",
        ),
        (
            [
                {"id": "a", "type": "job", "job_type": "render"},
                {"id": "a", "type": "delay", "seconds": 5},
            ],
            "$.nodes[1].id",
            "already used",
        ),
        (
            [{"id": "a", "type": "job", "job_type": "nope"}],
            "$.nodes[0].job_type",
            "unknown job type 'nope'",
        ),
        (
            [
                {"id": "a", "type": "job", "job_type": "render"},
                {
                    "id": "b",
                    "type": "job",
                    "job_type": "render",
                    "input": {"x": {"$ref": "nodes.c.output.y"}},
                },
                {"id": "c", "type": "job", "job_type": "render", "after": ["a"]},
            ],
            "$.nodes[1].input.x",
            "not upstream",
        ),
        (
            [
                {"id": "a", "type": "delay", "seconds": 5},
                {
                    "id": "b",
                    "type": "job",
                    "job_type": "render",
                    "after": ["a"],
                    "input": {"x": {"$ref": "nodes.a.output.y"}},
                },
            ],
            "$.nodes[1].input.x",
            "has no output",
        ),
        (
            [{"id": "a", "type": "job", "job_type": "render", "input": {"$ref": "item"}}],
            "$.nodes[0].input",
            "only in the input of a map",
        ),
        (
            [
                {"id": "a", "type": "approval", "approvers": {"roles": ["admin"]}},
                {"id": "b", "type": "job", "job_type": "render", "after": ["a"]},
            ],
            "$.nodes[1].after[0]",
            "say which outcome",
        ),
        (
            [
                {"id": "a", "type": "approval", "approvers": {"roles": ["admin"]}},
                {
                    "id": "b",
                    "type": "job",
                    "job_type": "render",
                    "after": [{"node": "a", "when": "maybe"}],
                },
            ],
            "$.nodes[1].after[0].when",
            "no outcome 'maybe'",
        ),
        (
            [{"id": "a", "type": "delay", "seconds": "soon"}],
            "$.nodes[0].seconds",
            "",
        ),
        (
            [{"id": "a", "type": "teleport"}],
            "$.nodes[0].type",
            "",
        ),
        (
            [{"id": "a", "type": "workflow", "definition": "never-defined"}],
            "$.nodes[0].definition",
            "define it first",
        ),
        (
            [
                {"id": "a", "type": "job", "job_type": "render"},
                {
                    "id": "b",
                    "type": "condition",
                    "after": ["a"],
                    "cases": [{"outcome": "big", "when": {"field": "nodes.a.output.n"}}],
                },
            ],
            "$.nodes[1].cases[0].when.op",
            "needs op",
        ),
        (
            [{"id": "a", "type": "approval", "approvers": {}}],
            "$.nodes[0].approvers",
            "at least one",
        ),
    ],
    ids=[
        "unknown-edge",
        "duplicate-id",
        "unknown-job-type",
        "ref-not-upstream",
        "ref-to-a-node-without-output",
        "item-outside-map",
        "branch-without-outcome",
        "unknown-outcome",
        "wrong-field-type",
        "unknown-node-type",
        "unknown-child-definition",
        "comparison-without-op",
        "approval-without-approvers",
    ],
)
def test_graphs_that_could_not_run_are_refused_with_the_node_path(
    client: httpx.Client, org: dict, nodes: list[Any], path: str, words: str
) -> None:
    message = refused(define(client, org, nodes, name="bad"), path)
    assert words in message
    listed = client.get(
        PATH, params={"organization_id": org["id"], "name": "bad"}, headers=org["defs"]
    )
    assert envelope(listed)["data"] == []


def test_a_definition_of_ten_thousand_nodes_is_refused_before_anything_is_stored(
    client: httpx.Client, org: dict
) -> None:
    nodes = [{"id": f"n{i}", "type": "delay", "seconds": 1} for i in range(10_000)]
    response = define(client, org, nodes, name="huge")
    assert response.status_code == 400, response.text
    assert envelope(response)["error"]["details"]["path"] == "$.nodes"
    over_setting = [{"id": f"n{i}", "type": "delay", "seconds": 1} for i in range(201)]
    message = refused(define(client, org, over_setting, name="huge"), "$.nodes")
    assert "at most 200 nodes" in message


def test_a_child_workflow_is_pinned_to_the_version_it_named_at_definition(
    client: httpx.Client, org: dict
) -> None:
    define(client, org, LINEAR, name="child")
    define(client, org, LINEAR[:1], name="child")
    parent = define(
        client, org, [{"id": "sub", "type": "workflow", "definition": "child"}], name="parent"
    )
    assert envelope(parent)["data"]["nodes"][0]["version"] == 2
    older = define(
        client,
        org,
        [{"id": "sub", "type": "workflow", "definition": "child", "version": 1}],
        name="parent",
    )
    assert envelope(older)["data"]["nodes"][0]["version"] == 1


def test_child_workflows_nest_eight_deep_and_ten_thousand_nodes_at_most(
    client: httpx.Client, org: dict
) -> None:
    assert define(client, org, LINEAR[:1], name="level-1").status_code == 201
    for level in range(2, 9):
        made = define(
            client,
            org,
            [{"id": "sub", "type": "workflow", "definition": f"level-{level - 1}"}],
            name=f"level-{level}",
        )
        assert made.status_code == 201, made.text
    too_deep = define(
        client, org, [{"id": "sub", "type": "workflow", "definition": "level-8"}], name="level-9"
    )
    assert "at most 8 deep" in refused(too_deep, "$.nodes[0].definition")
    # 200 nodes in the child, 50 workflow nodes starting it: 10,050 nodes in one run's tree.
    wide = [{"id": f"n{i}", "type": "delay", "seconds": 1} for i in range(200)]
    assert define(client, org, wide, name="wide").status_code == 201
    fan = [{"id": f"w{i}", "type": "workflow", "definition": "wide"} for i in range(50)]
    assert "at most 10000 nodes" in refused(
        define(client, org, fan, name="fan"), "$.nodes[49].definition"
    )
    assert define(client, org, fan[:49], name="fan").status_code == 201


def test_approvers_must_belong_to_the_organization(client: httpx.Client, org: dict) -> None:
    member, stranger = signup(client), signup(client)
    add_member(client, org["owner"], org["id"], member, "member")
    gate = {"id": "gate", "type": "approval", "required": 1}
    ok = define(client, org, [{**gate, "approvers": {"users": [member["user"]["id"]]}}])
    assert ok.status_code == 201, ok.text
    outsider = define(client, org, [{**gate, "approvers": {"users": [stranger["user"]["id"]]}}])
    refused(outsider, "$.nodes[0].approvers.users[0]")
    too_many = define(
        client, org, [{**gate, "required": 2, "approvers": {"users": [member["user"]["id"]]}}]
    )
    assert "could never open" in refused(too_many, "$.nodes[0].required")


def test_members_read_definitions_and_only_admins_define_them(
    client: httpx.Client, org: dict
) -> None:
    made = envelope(define(client, org, LINEAR))["data"]
    member = signup(client)
    add_member(client, org["owner"], org["id"], member, "member")
    seen = client.get(f"{PATH}/{made['id']}", headers=bearer(member))
    assert seen.status_code == 200
    denied = client.post(
        PATH,
        json={"organization_id": org["id"], "name": "mine", "nodes": LINEAR},
        headers=bearer(member),
    )
    assert denied.status_code == 403
    key = create_key(client, org["owner"], org["id"], scopes=["workflows.manage"])
    by_key = client.post(PATH, json={"name": "by-key", "nodes": LINEAR}, headers=key_auth(key))
    assert by_key.status_code == 201, by_key.text
    assert envelope(by_key)["data"]["organization_id"] == org["id"]
