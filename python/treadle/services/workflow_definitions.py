"""Workflow definitions: what a DAG must be before it is stored, and its versions.

Checked here, with the path of the node or field at fault (``$.nodes[3].after[0]``), so that
every stored version can run: node ids are unique; every edge names an earlier-declared or
later node that exists and, from a node that branches, one of its outcomes; the graph has
no cycle; every ``{"$ref": ...}`` names the run's input, the item of a ``map``, or the
output of a node upstream of the one using it (and one that has an output); job types exist
in the organization; a child workflow names a definition that exists, whose version is
pinned here so that no definition can start itself.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.jobs import job_type
from treadle.services.principal import Actor
from treadle.settings import Settings
from treadle.store import orgs as org_store
from treadle.store import teams as team_store
from treadle.store import workflow_definitions as definition_store
from treadle.store.db import Conn, Database

Row = dict[str, Any]
# The outcomes each kind of node ends with; a node that ends with one of several names
# the one an edge follows (``when``). None: the outcomes are the node's own (condition).
OUTCOMES: dict[str, tuple[str, ...] | None] = {
    "job": ("succeeded",),
    "delay": ("elapsed",),
    "approval": ("approved", "rejected", "expired"),
    "signal": ("received", "timed_out"),
    "condition": None,
    "map": ("succeeded",),
    "workflow": ("succeeded",),
}
# Nodes whose output a reference may read.
HAS_OUTPUT = frozenset(("job", "approval", "signal", "map", "workflow", "condition"))
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}(?!\n)$")
_MAX_TEST_DEPTH = 8
# Child workflows: how deep runs may nest, and how many nodes a run and all the runs it may
# start hold together (a definition of 200 workflow nodes, each a child of 200 workflow
# nodes, would otherwise start 40,000 runs in one transaction).
MAX_DEPTH = 8
MAX_NESTED_NODES = 10_000


class WorkflowDefinitions:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    async def create(
        self, actor: Actor, org_id: UUID, name: str, description: str, nodes: list[Any]
    ) -> Row:
        specs = [msgspec.to_builtins(node) for node in nodes]
        if len(specs) > self.settings.workflow_max_nodes:
            raise ApiError.validation(
                f"a definition may have at most {self.settings.workflow_max_nodes} nodes"
                f" (this one has {len(specs)}); split it into child workflows",
                "$.nodes",
            )
        _check_graph(specs, self.settings.workflow_max_map_items)
        async with self.db.transaction() as conn:
            org = await org_store.get(conn, org_id)
            assert org is not None
            nesting = await _check_in_org(conn, org_id, org["settings"], specs)
            row = await definition_store.insert_next(
                conn,
                {
                    "id": uuid.uuid4(),
                    "organization_id": org_id,
                    "name": name,
                    "description": description,
                    "spec": {"nodes": specs, **nesting},
                    "node_count": len(specs),
                    "created_by": actor.principal.subject if actor.principal else "",
                },
            )
            await audit.record(
                conn,
                actor,
                org_id,
                "workflow.definition.created",
                "workflow_definition",
                row["id"],
                after={"name": name, "version": row["version"]},
            )
        return public_definition(row)

    async def get(self, definition_id: UUID) -> Row:
        async with self.db.connection() as conn:
            row = await definition_store.get(conn, definition_id)
        if row is None:
            raise ApiError.not_found(f"no workflow definition with id {definition_id}")
        return public_definition(row)

    async def in_org(
        self, org_id: UUID, limit: int, before: tuple[datetime, UUID] | None, name: str | None
    ) -> list[Row]:
        async with self.db.connection() as conn:
            rows = await definition_store.in_org(conn, org_id, limit, before, name)
        return [public_definition(row) for row in rows]


async def _check_in_org(conn: Conn, org_id: UUID, settings: Row, specs: list[Row]) -> Row:
    """What the organization must hold: the job types, the child definitions (whose
    versions are pinned here), the approvers. The definition's ``depth`` (1 without child
    workflows) and ``nested_nodes`` (its nodes and all its children's), within bounds."""
    depth, nested = 1, len(specs)
    for index, spec in enumerate(specs):
        at = f"$.nodes[{index}]"
        if spec["type"] in ("job", "map"):
            try:
                job_type(settings, spec["job_type"])
            except ApiError as exc:
                raise ApiError.validation(exc.message, f"{at}.job_type") from None
        elif spec["type"] == "workflow":
            child = await definition_store.latest(conn, org_id, spec["definition"], spec["version"])
            if child is None:
                version = f" version {spec['version']}" if spec["version"] else ""
                raise ApiError.validation(
                    f"no workflow definition {spec['definition']}{version} in this"
                    " organization: define it first",
                    f"{at}.definition",
                )
            spec["version"] = child["version"]
            depth = max(depth, 1 + child["spec"].get("depth", 1))
            nested += child["spec"].get("nested_nodes", child["node_count"])
            if depth > MAX_DEPTH:
                raise ApiError.validation(
                    f"child workflows may nest at most {MAX_DEPTH} deep; with"
                    f" {spec['definition']} v{child['version']} this one nests {depth}",
                    f"{at}.definition",
                )
            if nested > MAX_NESTED_NODES:
                raise ApiError.validation(
                    f"a run and the child runs it may start may hold at most"
                    f" {MAX_NESTED_NODES} nodes together; with {spec['definition']}"
                    f" v{child['version']} this one holds {nested}",
                    f"{at}.definition",
                )
        elif spec["type"] == "approval":
            await _check_approvers(conn, org_id, index, spec)
    return {"depth": depth, "nested_nodes": nested}


def public_definition(row: Row) -> Row:
    out = {k: v for k, v in row.items() if k != "spec"}
    out["nodes"] = row["spec"]["nodes"]
    return out


def _check_graph(specs: list[Row], max_map_items: int) -> None:
    index_of: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if spec["id"] in index_of:
            raise ApiError.validation(
                f"node id {spec['id']!r} is already used by $.nodes[{index_of[spec['id']]}];"
                " give every node its own id",
                f"$.nodes[{index}].id",
            )
        index_of[spec["id"]] = index
    upstream: list[list[str]] = []
    for index, spec in enumerate(specs):
        parents: list[str] = []
        edges: list[Row] = []
        for e, edge in enumerate(spec["after"]):
            node, when = (edge, None) if isinstance(edge, str) else (edge["node"], edge["when"])
            where = f"$.nodes[{index}].after[{e}]"
            if node not in index_of:
                raise ApiError.validation(f"no node {node!r} in this definition", where)
            if node == spec["id"]:
                raise ApiError.validation("a node cannot come after itself", where)
            outcome = _check_outcome(specs[index_of[node]], when, where)
            if node in parents:
                raise ApiError.validation(f"node {node!r} is named twice in after", where)
            parents.append(node)
            edges.append({"node": node, "when": outcome})
        # Stored with every edge's outcome spelled out: what a run follows needs no defaults.
        spec["after"] = edges
        upstream.append(parents)
        if spec["type"] == "condition":
            outcomes = [case["outcome"] for case in spec["cases"]]
            if len(set(outcomes)) != len(outcomes) or spec["default"] in outcomes:
                raise ApiError.validation(
                    "each case needs its own outcome, and default another one",
                    f"$.nodes[{index}].cases",
                )
    _check_acyclic(specs, upstream, index_of)
    if not any(not parents for parents in upstream):
        raise ApiError.validation("a definition needs a node that comes after none", "$.nodes")
    ancestors = _ancestors(specs, upstream, index_of)
    for index, spec in enumerate(specs):
        at = f"$.nodes[{index}]"
        kind = spec["type"]
        mine = ancestors[spec["id"]]
        if kind in ("job", "map", "workflow"):
            for path, ref in _refs(spec["input"], f"{at}.input"):
                _check_ref(ref, path, mine, specs, index_of, item=kind == "map")
        if kind == "map":
            _check_ref(spec["over"], f"{at}.over", mine, specs, index_of, item=False)
            if spec["concurrency"] > max_map_items:
                raise ApiError.validation(
                    f"concurrency may be at most {max_map_items}", f"{at}.concurrency"
                )
        if kind == "condition":
            for c, case in enumerate(spec["cases"]):
                _check_test(case["when"], f"{at}.cases[{c}].when", mine, specs, index_of, 0)


def _check_outcome(parent: Row, when: str | None, where: str) -> str:
    """The outcome of ``parent`` the edge follows: ``when``, or the usual one of a node
    that does not branch (a signal's is received)."""
    kind = parent["type"]
    outcomes = OUTCOMES[kind]
    if outcomes is None:  # a condition: its cases' outcomes and its default
        outcomes = (*(case["outcome"] for case in parent["cases"]), parent["default"])
    if when is None:
        if len(outcomes) > 1 and kind != "signal":
            raise ApiError.validation(
                f"node {parent['id']!r} ({kind}) branches: say which outcome leads here,"
                f' one of {", ".join(outcomes)} ({{"node": ..., "when": ...}})',
                where,
            )
        return outcomes[0]
    if when not in outcomes:
        raise ApiError.validation(
            f"node {parent['id']!r} ({kind}) has no outcome {when!r};"
            f" its outcomes are {', '.join(outcomes)}",
            f"{where}.when",
        )
    return when


def _check_acyclic(specs: list[Row], upstream: list[list[str]], index_of: dict[str, int]) -> None:
    # Kahn's algorithm; whatever is left is on a cycle or after one.
    waiting = [len(parents) for parents in upstream]
    children: dict[str, list[int]] = {spec["id"]: [] for spec in specs}
    for index, parents in enumerate(upstream):
        for parent in parents:
            children[parent].append(index)
    ready = [i for i, n in enumerate(waiting) if n == 0]
    seen = 0
    while ready:
        index = ready.pop()
        seen += 1
        for child in children[specs[index]["id"]]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if seen == len(specs):
        return
    # Name one cycle: walk up from a node left over until a node repeats.
    stuck = {i for i, n in enumerate(waiting) if n > 0}
    path = [min(stuck)]
    while True:
        up = next(index_of[p] for p in upstream[path[-1]] if index_of[p] in stuck)
        if up in path:
            cycle = [specs[i]["id"] for i in reversed(path[path.index(up) :])]
            raise ApiError.validation(
                f"the nodes form a cycle: {' -> '.join([*cycle, cycle[0]])}",
                f"$.nodes[{up}].after",
                cycle=cycle,
            )
        path.append(up)


def _ancestors(
    specs: list[Row], upstream: list[list[str]], index_of: dict[str, int]
) -> dict[str, set[str]]:
    """Each node's transitive upstream nodes (the graph is acyclic here)."""
    found: dict[str, set[str]] = {}

    def of(index: int) -> set[str]:
        node = specs[index]["id"]
        if node not in found:
            mine: set[str] = set()
            stack = list(upstream[index])
            while stack:
                parent = stack.pop()
                if parent not in mine:
                    mine.add(parent)
                    stack.extend(upstream[index_of[parent]])
            found[node] = mine
        return found[node]

    for index in range(len(specs)):
        of(index)
    return found


def _refs(template: Any, at: str) -> Iterator[tuple[str, str]]:
    """Every ``{"$ref": path}`` in ``template``, with where it is."""
    if isinstance(template, dict):
        if "$ref" in template:
            ref = template["$ref"]
            if len(template) != 1 or not isinstance(ref, str):
                raise ApiError.validation(
                    'a reference is an object with one key, "$ref", whose value is a path'
                    " such as input.name or nodes.<id>.output.field",
                    at,
                )
            yield at, ref
            return
        for key, value in template.items():
            yield from _refs(value, f"{at}.{key}")
    elif isinstance(template, list):
        for i, value in enumerate(template):
            yield from _refs(value, f"{at}[{i}]")


def _check_ref(
    ref: str, at: str, mine: set[str], specs: list[Row], index_of: dict[str, int], *, item: bool
) -> None:
    parts = ref.split(".")
    if not all(_SEGMENT.match(p) for p in parts):
        raise ApiError.validation(
            f"{ref!r} is not a path: dot-separated names of letters, digits, _ and -", at
        )
    head = parts[0]
    if head == "input" or (head == "item" and item):
        return
    if head == "item":
        raise ApiError.validation("item exists only in the input of a map node", at)
    if head != "nodes" or len(parts) < 3 or parts[2] != "output":
        raise ApiError.validation(
            f"{ref!r} names nothing a run holds: use input.<path>, nodes.<id>.output.<path>"
            " or, in a map's input, item.<path>",
            at,
        )
    node = parts[1]
    if node not in index_of:
        raise ApiError.validation(f"{ref!r}: no node {node!r} in this definition", at)
    if node not in mine:
        raise ApiError.validation(
            f"{ref!r}: node {node!r} is not upstream of this node, so its output may not"
            " exist when this one runs",
            at,
        )
    if specs[index_of[node]]["type"] not in HAS_OUTPUT:
        raise ApiError.validation(
            f"{ref!r}: a {specs[index_of[node]]['type']} node has no output", at
        )


def _check_test(
    test: Row, at: str, mine: set[str], specs: list[Row], index_of: dict[str, int], depth: int
) -> None:
    if depth > _MAX_TEST_DEPTH:
        raise ApiError.validation(f"tests may nest at most {_MAX_TEST_DEPTH} deep", at)
    forms = [k for k in ("field", "all", "any", "not") if test.get(k) is not None]
    if len(forms) != 1:
        raise ApiError.validation(
            "a test is one of: {field, op, value}, {all: [...]}, {any: [...]}, {not: {...}}",
            at,
        )
    form = forms[0]
    if form == "field":
        if test.get("op") is None:
            raise ApiError.validation("a comparison needs op", f"{at}.op")
        _check_ref(test["field"], f"{at}.field", mine, specs, index_of, item=False)
        if test["op"] in ("in", "not_in") and not isinstance(test.get("value"), list):
            raise ApiError.validation(f"op {test['op']} compares with a list", f"{at}.value")
        return
    if form == "not":
        _check_test(test["not"], f"{at}.not", mine, specs, index_of, depth + 1)
        return
    for i, inner in enumerate(test[form]):
        _check_test(inner, f"{at}.{form}[{i}]", mine, specs, index_of, depth + 1)


async def _check_approvers(conn: Conn, org_id: UUID, index: int, spec: Row) -> None:
    at = f"$.nodes[{index}].approvers"
    approvers = spec["approvers"]
    if not (approvers["users"] or approvers["teams"] or approvers["roles"]):
        raise ApiError.validation("name at least one user, team or role who may decide", at)
    if approvers["users"]:
        members = await org_store.member_ids(conn, org_id, [UUID(u) for u in approvers["users"]])
        for u, user in enumerate(approvers["users"]):
            if UUID(user) not in members:
                raise ApiError.validation(
                    f"user {user} is not a member of this organization", f"{at}.users[{u}]"
                )
        if not (approvers["teams"] or approvers["roles"]) and spec["required"] > len(
            set(approvers["users"])
        ):
            raise ApiError.validation(
                f"{spec['required']} approvals required from {len(set(approvers['users']))}"
                " named users: the gate could never open",
                f"$.nodes[{index}].required",
            )
    if approvers["teams"]:
        known = await team_store.ids_in_org(conn, org_id, [UUID(t) for t in approvers["teams"]])
        for t, team in enumerate(approvers["teams"]):
            if UUID(team) not in known:
                raise ApiError.validation(
                    f"no team {team} in this organization", f"{at}.teams[{t}]"
                )
