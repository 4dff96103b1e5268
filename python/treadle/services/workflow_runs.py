"""Workflow runs: created, started, advanced and canceled, all inside the transactions of
the changes that drive them.

Nothing a run needs lives in a process. A node that runs a job names it
(``jobs.workflow_run_id``), and the run advances in the transaction that finishes that job
(``Jobs.settled`` calls ``advance_jobs``). A delay is a row with its time, fired by the
``WorkflowTimers`` sweep, which one process at a time runs. Every step locks the run's row
first, so two nodes of one run finishing at once advance it one after the other.

An approval node opens a gate (``treadle.store.workflow_approvals``) that closes with the
decisions recorded on it, or with its expiry, a timer like a delay's. A map node queues one
job per item (at most ``concurrency`` at once) and joins their results in item order. A
workflow node starts a child run in its own transaction. A child never waits for its
parent's lock while holding its own, nor the parent for the child's: an ended child is
found by the sweep of ``WorkflowTimers``, which then locks the parent; a parent that ends
cancels the children it can lock at once and leaves the others to the same sweep.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import msgspec

from treadle.background import Background
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.jobs import Jobs, job_event, job_type, new_job, submitter
from treadle.services.principal import Actor, Principal
from treadle.services.workflow_data import Missing, holds, resolve
from treadle.settings import Settings
from treadle.store import events
from treadle.store import jobs as job_store
from treadle.store import orgs as org_store
from treadle.store import workflow_approvals as approval_store
from treadle.store import workflow_definitions as definition_store
from treadle.store import workflow_runs as run_store
from treadle.store.db import Conn, Database

log = logging.getLogger("treadle.workflows")
Row = dict[str, Any]
# The states each action on a run starts from.
ACTIONS = {
    "cancel": ("created", "running", "paused"),
    "pause": ("running",),
    "resume": ("paused",),
}
BULK_MAX = 1000
# Runs whose nodes may still finish: a paused one records them for its resume.
_LIVE = ("running", "paused")
TIMER_BATCH = 100
WAKE_DELAY = 0.02


class WorkflowRuns:
    def __init__(self, settings: Settings, db: Database, jobs: Jobs) -> None:
        self.settings = settings
        self.db = db
        self.jobs = jobs
        jobs.settled_hook = self.advance_jobs
        # Set when a child run ends here, so that this process's sweep settles its parent
        # now rather than at its next tick (``WorkflowTimers`` sets it up).
        self.wake: asyncio.Event | None = None

    # -- the routes ----------------------------------------------------------------------

    async def create(
        self, actor: Actor, org_id: UUID, definition_id: UUID, fields: Row, start: bool
    ) -> Row:
        submitted_by, api_key_id = submitter(actor.signed_in)
        self._bounded("run input", fields["input"], "$.input")
        async with self.db.transaction() as conn, _batched(conn):
            definition = await definition_store.get(conn, definition_id)
            if definition is None or definition["organization_id"] != org_id:
                raise ApiError.validation(
                    f"no workflow definition {definition_id} in this organization",
                    "$.definition_id",
                )
            nodes = definition["spec"]["nodes"]
            run = await run_store.insert(
                conn,
                {
                    "id": uuid.uuid4(),
                    "organization_id": org_id,
                    "definition_id": definition_id,
                    "input": fields["input"],
                    "labels": fields["labels"],
                    "submitted_by": submitted_by,
                    "api_key_id": api_key_id,
                },
                [n["id"] for n in nodes],
            )
            await _emit(conn, run, "workflow.run.created", {"status": run["status"]})
            await _audit(conn, actor, run, "workflow.run.create")
            if start:
                run = await self._start(conn, run, definition)
            return await _public(conn, run, definition)

    async def start(self, actor: Actor, run_id: UUID) -> Row:
        async with self.db.transaction() as conn, _batched(conn):
            run, definition = await _locked(conn, run_id)
            if run["status"] != "created":
                raise ApiError.conflict(
                    f"this run is {run['status']}; only a created run can be started",
                    status=run["status"],
                )
            run = await self._start(conn, run, definition)
            await _audit(conn, actor, run, "workflow.run.start")
            return await _public(conn, run, definition)

    async def act(self, actor: Actor, run_id: UUID, action: str) -> Row:
        """``cancel``, ``pause`` or ``resume`` one run; 409 from a state that does not allow
        it. Pause dispatches nothing new: running jobs finish and are recorded, timers stop
        with what they had left, signals are kept, all of it taking effect on resume."""
        async with self.db.transaction() as conn, _batched(conn):
            run, definition = await _locked(conn, run_id)
            if run["status"] not in ACTIONS[action]:
                raise ApiError.conflict(
                    f"this run is {run['status']}; {action} needs a run that is"
                    f" {' or '.join(ACTIONS[action])}",
                    status=run["status"],
                )
            run = await self._apply(conn, actor, action, run, definition)
            return await _public(conn, run, definition)

    async def act_many(self, actor: Actor, org_id: UUID, action: str, filters: Row) -> Row:
        """``action`` on the organization's runs that match ``filters`` and whose state
        allows it, at most ``BULK_MAX`` per call (``more`` says whether others are left)."""
        wanted = filters.pop("statuses", None)
        statuses = [st for st in ACTIONS[action] if wanted is None or st in wanted]
        async with self.db.transaction() as conn, _batched(conn):
            ids = await run_store.matching(conn, org_id, statuses, BULK_MAX + 1, **filters)
            runs = await run_store.lock_many(conn, ids[:BULK_MAX])
            changed = 0
            for run in runs.values():
                if run["status"] in ACTIONS[action]:  # it may have moved on meanwhile
                    definition = await _definition(conn, run["definition_id"])
                    await self._apply(conn, actor, action, run, definition)
                    changed += 1
        return {"action": action, "changed": changed, "more": len(ids) > BULK_MAX}

    async def _apply(self, conn: Conn, actor: Actor, action: str, run: Row, definition: Row) -> Row:
        if action == "cancel":
            run = await self._end(conn, run, "canceled", None)
        elif action == "pause":
            await run_store.freeze_timers(conn, run["id"])
            run = await run_store.set_run(conn, run["id"], "paused")
            await _emit(conn, run, "workflow.run.paused", {"status": "paused"})
        else:
            run = await run_store.set_run(conn, run["id"], "running")
            await run_store.thaw_timers(conn, run["id"])
            await _emit(conn, run, "workflow.run.resumed", {"status": "running"})
            # What finished or arrived while paused moves the run on now.
            states = await run_store.nodes(conn, run["id"])
            if await self._catch_up(conn, run, definition, states):
                await self._advance(conn, run, definition, states)
            run = await _current(conn, run["id"])
        await _audit(conn, actor, run, f"workflow.run.{action}")
        return run

    async def signal(self, actor: Actor, run_id: UUID, name: str, payload: Any) -> Row:
        """Deliver the signal ``name`` to every node of the run waiting for it (a paused
        run keeps it for its resume); 409 with the run's state when none is."""
        self._bounded("signal payload", payload, "$.payload")
        async with self.db.transaction() as conn, _batched(conn):
            run, definition = await _locked(conn, run_id)
            states = await run_store.nodes(conn, run["id"])
            waiting = [
                spec
                for spec in definition["spec"]["nodes"]
                if spec["type"] == "signal" and states[spec["id"]]["status"] == "running"
            ]
            receivers = [spec["id"] for spec in waiting if spec["signal"] == name]
            if run["status"] not in _LIVE or not receivers:
                raise ApiError.conflict(
                    f"this run is not waiting for the signal {name!r}",
                    status=run["status"],
                    waiting_for=sorted({spec["signal"] for spec in waiting}),
                )
            for node in receivers:
                states[node] = await self._finish(conn, run, node, "received", payload)
            await _audit(conn, actor, run, "workflow.run.signal", signal=name)
            if run["status"] == "running":
                await self._advance(conn, run, definition, states)
            return await _public(conn, await _current(conn, run["id"]), definition)

    async def approve(
        self, actor: Actor, run_id: UUID, node: str, decision: str, comment: str
    ) -> Row:
        """Record the caller's decision on the run's gate ``node``: 403 unless the gate names
        the caller (or the caller's team or role) and, for the run's submitter, allows it;
        409 when the gate is not open or the caller has decided it already. The gate closes
        as approved with its ``required`` approvals, as rejected with one rejection; a paused
        run keeps the decisions and closes the gate on resume."""
        principal = actor.signed_in
        user_id = principal.account
        async with self.db.transaction() as conn, _batched(conn):
            run, definition = await _locked(conn, run_id)
            spec = next((n for n in definition["spec"]["nodes"] if n["id"] == node), None)
            if spec is None or spec["type"] != "approval":
                raise ApiError.validation(
                    f"this run's definition has no approval node {node!r}", "$.node"
                )
            gate = await approval_store.gate(conn, run_id, node)
            if gate is None or gate["status"] != "pending" or run["status"] not in _LIVE:
                raise ApiError.conflict(
                    f"the gate {node!r} is not open for decisions"
                    + (f" (it is {gate['status']})" if gate else " (it has not been reached)"),
                    status=run["status"],
                    gate=gate["status"] if gate else None,
                )
            approver = await approver_of(conn, run["organization_id"], principal)
            if not may_decide(gate, approver):
                raise ApiError.forbidden(
                    f"you are not among the approvers of the gate {node!r}"
                    if not names(gate, approver)
                    else "the run's submitter may not decide its gate unless it allows it"
                )
            if await approval_store.decide(conn, run_id, node, user_id, decision, comment) is None:
                raise ApiError.conflict(
                    f"you have already decided the gate {node!r}", status=run["status"]
                )
            await _emit(
                conn,
                run,
                "approval.decided",
                {"node": node, "user_id": user_id, "decision": decision},
            )
            await _audit(conn, actor, run, "workflow.approval.decide", node=node, decision=decision)
            if run["status"] == "running":
                states = await run_store.nodes(conn, run_id)
                if await self._settle_gate(conn, run, spec, states):
                    await self._advance(conn, run, definition, states)
            return await _public(conn, await _current(conn, run_id), definition)

    async def approvals(
        self, principal: Principal, org_id: UUID, limit: int, **filters: Any
    ) -> list[Row]:
        """The organization's gates the signed-in caller may decide, with their decisions."""
        async with self.db.connection() as conn:
            approver = await approver_of(conn, org_id, principal)
            gates = await approval_store.for_approver(conn, org_id, approver, limit, **filters)
            decided = await approval_store.decisions_of(conn, [g["run_id"] for g in gates])
        mine = approver["user_id"]
        out = []
        for gate in gates:
            decisions = decided.get((gate["run_id"], gate["node"]), [])
            out.append(
                {
                    **gate,
                    "approvals": sum(d["decision"] == "approve" for d in decisions),
                    "decisions": [_decision(d) for d in decisions],
                    "decided_by_me": any(d["user_id"] == mine for d in decisions),
                }
            )
        return out

    async def get(self, run_id: UUID) -> Row:
        async with self.db.connection() as conn:
            run = await run_store.get(conn, run_id)
            if run is None:
                raise ApiError.not_found(f"no workflow run with id {run_id}")
            return await _public(conn, run, await _definition(conn, run["definition_id"]))

    async def in_org(self, org_id: UUID, limit: int, **filters: Any) -> list[Row]:
        async with self.db.connection() as conn:
            rows = await run_store.in_org(conn, org_id, limit, **filters)
        return rows

    # -- the engine ----------------------------------------------------------------------

    async def advance_jobs(self, conn: Conn, rows: list[Row]) -> None:
        """Jobs of runs that ended (succeeded, dead, canceled), in their transaction."""
        async with _batched(conn):
            await self._advance_jobs(conn, rows)

    async def _advance_jobs(self, conn: Conn, rows: list[Row]) -> None:
        # The runs locked and their nodes read with one statement each for the whole batch,
        # in id order (two batches touching the same runs never deadlock).
        run_ids = sorted({r["workflow_run_id"] for r in rows})
        runs = await run_store.lock_many(conn, run_ids)
        states_of = await run_store.nodes_of(conn, run_ids)
        orgs: dict[UUID, Row] = {}
        # Map items that succeeded, counted per node and taken together after the others.
        items_done: dict[tuple[UUID, str], int] = {}
        for row in sorted(rows, key=lambda r: r["workflow_run_id"]):
            run = runs[row["workflow_run_id"]]
            node = row["workflow_node"]
            states = states_of[run["id"]]
            state = states.get(node)
            if run["status"] not in _LIVE or state is None or state["status"] != "running":
                continue  # the run or the node ended meanwhile
            item = row["workflow_item"]
            if item is None and state["job_id"] != row["id"]:
                continue  # not the node's live job
            definition = await _definition(conn, run["definition_id"])
            if item is not None and row["status"] == "succeeded":
                key = (run["id"], node)
                items_done[key] = items_done.get(key, 0) + 1
                continue
            if item is not None:
                code = row["error_code"] or row["status"]
                message = f"item {item}: {row['error_message'] or row['status']}"
                await self._fail(conn, run, node, code, message)
                runs[run["id"]] = {**run, "status": "ended"}
                continue
            if row["status"] == "succeeded":
                states[node] = await self._finish(conn, run, node, "succeeded", row["result"])
                # A paused run records it; what follows is dispatched on resume.
                ended = run["status"] == "running" and await self._advance(
                    conn, run, definition, states, orgs
                )
            else:
                code = row["error_code"] or row["status"]
                await self._fail(conn, run, node, code, row["error_message"])
                ended = True
            if ended:  # later jobs of this batch find it ended
                runs[run["id"]] = {**run, "status": "ended"}
        for (run_id, node), count in items_done.items():
            run = runs[run_id]
            if run["status"] in _LIVE:
                definition = await _definition(conn, run["definition_id"])
                states = states_of[run_id]
                if await self._items_done(conn, run, definition, node, count, states, orgs):
                    runs[run_id] = {**run, "status": "ended"}

    async def fire_timers(self) -> int:
        """Fire the delays that are due; how many."""
        async with self.db.transaction() as conn, _batched(conn):
            if not await run_store.take_sweep(conn):
                return 0
            due = await run_store.due_timers(conn, TIMER_BATCH)
            for timer in sorted(due, key=lambda t: t["run_id"]):
                run, definition = await _locked(conn, timer["run_id"])
                states = await run_store.nodes(conn, run["id"])
                node = timer["node"]
                state = states[node]
                if (
                    run["status"] != "running"
                    or state["status"] != "running"
                    or state["fire_at"] != timer["fire_at"]
                ):
                    continue  # fired by another process meanwhile, or the run ended
                spec = _spec(definition, node)
                if spec["type"] == "approval":
                    await approval_store.close(conn, run["id"], node, "expired")
                    output = _gate(spec["on_expiry"], await _decisions(conn, run["id"], node))
                    states[node] = await self._finish(conn, run, node, spec["on_expiry"], output)
                else:
                    outcome = "timed_out" if spec["type"] == "signal" else "elapsed"
                    states[node] = await self._finish(conn, run, node, outcome, None)
                await self._advance(conn, run, definition, states)
        return len(due)

    async def settle_children(self) -> int:
        """Move on the runs whose child runs have ended; how many children were found."""
        async with self.db.transaction() as conn, _batched(conn):
            if not await run_store.take_sweep(conn):
                return 0
            ended = await run_store.ended_children(conn, TIMER_BATCH)
            for found in ended:
                run, definition = await _locked(conn, found["run_id"])
                states = await run_store.nodes(conn, run["id"])
                state = states[found["node"]]
                if run["status"] not in _LIVE or state["status"] != "running":
                    continue
                child = await run_store.get(conn, found["child_run_id"])
                assert child is not None
                # A paused run records the child's end; what follows waits for resume.
                if await self._child_ended(conn, run, found["node"], child, states) and (
                    run["status"] == "running"
                ):
                    await self._advance(conn, run, definition, states)
        return len(ended)

    async def cancel_orphans(self) -> int:
        """Cancel the child runs whose parent ended while another step held them."""
        async with self.db.transaction() as conn, _batched(conn):
            if not await run_store.take_sweep(conn):
                return 0
            orphans = await run_store.orphans(conn, TIMER_BATCH)
            for run_id in orphans:
                run = await run_store.get(conn, run_id, lock=True)
                if run is not None and run["status"] in ACTIONS["cancel"]:
                    await self._end(conn, run, "canceled", None)
        return len(orphans)

    async def _start(self, conn: Conn, run: Row, definition: Row) -> Row:
        run = await run_store.set_run(conn, run["id"], "running")
        await _emit(conn, run, "workflow.run.started", {"status": "running"})
        await self._advance(conn, run, definition, await run_store.nodes(conn, run["id"]))
        return await _current(conn, run["id"])

    async def _advance(
        self,
        conn: Conn,
        run: Row,
        definition: Row,
        states: dict[str, Row],
        orgs: dict[UUID, Row] | None = None,
    ) -> bool:
        """Start every waiting node whose upstream edges have all been followed, skip those
        that can no longer run, until nothing changes; end the run when every node has.
        ``states`` (the nodes' rows) is kept current here as nodes change; ``orgs`` keeps
        the organizations read for job types across a batch. True when the run ended."""
        specs = definition["spec"]["nodes"]
        orgs = {} if orgs is None else orgs
        progress = True
        while progress:
            progress = False
            for spec in specs:
                if states[spec["id"]]["status"] != "waiting":
                    continue
                parents = [(states[e["node"]], e["when"]) for e in spec["after"]]
                if any(p["status"] not in run_store.NODE_FINAL for p, _ in parents):
                    continue
                progress = True
                if all(p["status"] == "succeeded" and p["outcome"] == w for p, w in parents):
                    org = await _org(conn, run["organization_id"], orgs)
                    if not await self._activate(conn, run, org, spec, states):
                        return True  # the node could not start, and that ended the run
                else:
                    states[spec["id"]] = await run_store.set_node(
                        conn, run["id"], spec["id"], "skipped"
                    )
                    await _emit(conn, run, "workflow.node.skipped", {"node": spec["id"]})
        if not all(s["status"] in run_store.NODE_FINAL for s in states.values()):
            return False
        upstream = {e["node"] for spec in specs for e in spec["after"]}
        output = {
            node: s["output"]
            for node, s in states.items()
            if node not in upstream and s["status"] == "succeeded"
        }
        await self._end(conn, run, "succeeded", output)
        return True

    async def _activate(
        self, conn: Conn, run: Row, org: Row | None, spec: Row, states: dict[str, Row]
    ) -> bool:
        """Start the node (a condition also ends at once); False when that failed the run."""
        node = spec["id"]
        kind = spec["type"]
        if kind == "delay":
            states[node] = await run_store.set_node(
                conn, run["id"], node, "running", fire_in=spec["seconds"]
            )
            await _emit(conn, run, "workflow.node.running", {"node": node})
            return True
        if kind == "signal":
            timeout = spec["timeout_seconds"]
            waits = {"fire_in": timeout} if timeout else {}
            states[node] = await run_store.set_node(conn, run["id"], node, "running", **waits)
            await _emit(
                conn, run, "workflow.node.running", {"node": node, "signal": spec["signal"]}
            )
            return True
        data = _data(run, states)
        if kind == "condition":
            outcome = next(
                (c["outcome"] for c in spec["cases"] if holds(c["when"], data)), spec["default"]
            )
            states[node] = await self._finish(conn, run, node, outcome, {"outcome": outcome})
            return True
        if kind == "approval":
            expiry = spec["expires_in_seconds"]
            waits = {"fire_in": expiry} if expiry else {}
            states[node] = await run_store.set_node(conn, run["id"], node, "running", **waits)
            gate = await approval_store.open_gate(conn, run, node, spec)
            await _announce(
                conn,
                [
                    _event(run, "workflow.node.running", {"node": node}),
                    _event(
                        run,
                        "approval.requested",
                        {"node": node, "approval_id": gate["id"], "required": spec["required"]},
                    ),
                ],
            )
            return True
        if kind == "workflow":
            return await self._start_child(conn, run, spec, states, data)
        assert org is not None
        try:
            type_row = job_type(org["settings"], spec["job_type"])
            if kind == "map":
                items = resolve({"$ref": spec["over"]}, data)
            else:
                job_input = resolve(spec["input"], data)
        except Missing as exc:
            await self._fail(conn, run, node, "reference_missing", str(exc))
            return False
        except ApiError as exc:  # the type was removed from the settings since
            await self._fail(conn, run, node, "unknown_job_type", exc.message)
            return False
        if kind == "map":
            return await self._fan_out(conn, run, type_row, spec, states, data, items)
        assert kind == "job"
        job = await job_store.insert(conn, _node_job(run, type_row, spec, job_input))
        assert job is not None
        states[node] = await run_store.set_node(conn, run["id"], node, "running", job_id=job["id"])
        await _announce(
            conn,
            [
                job_event(job, "job.queued"),
                _event(run, "workflow.node.running", {"node": node, "job_id": job["id"]}),
            ],
        )
        return True

    # -- map nodes -----------------------------------------------------------------------

    async def _fan_out(
        self,
        conn: Conn,
        run: Row,
        type_row: Row,
        spec: Row,
        states: dict[str, Row],
        data: Row,
        items: Any,
    ) -> bool:
        node = spec["id"]
        widest = self.settings.workflow_max_map_items
        if not isinstance(items, list):
            await self._fail(
                conn, run, node, "map_not_a_list", f"{spec['over']} is not a list to map over"
            )
            return False
        if len(items) > widest:
            await self._fail(
                conn,
                run,
                node,
                "map_too_wide",
                f"{spec['over']} has {len(items)} items; a map takes at most {widest}",
            )
            return False
        if not items:
            states[node] = await self._finish(conn, run, node, "succeeded", [])
            return True
        states[node] = await run_store.set_node(
            conn, run["id"], node, "running", items=items, dispatched=0, finished=0
        )
        await _emit(conn, run, "workflow.node.running", {"node": node, "items": len(items)})
        return await self._dispatch_items(conn, run, type_row, spec, states, data)

    async def _dispatch_items(
        self, conn: Conn, run: Row, type_row: Row, spec: Row, states: dict[str, Row], data: Row
    ) -> bool:
        """Queue the map's next items, up to ``concurrency`` in flight; False when an item's
        input could not be built, which failed the run."""
        node = spec["id"]
        state = states[node]
        items = state["items"]
        first = state["dispatched"]
        count = min(spec["concurrency"] - (first - state["finished"]), len(items) - first)
        if count <= 0:
            return True
        try:
            rows = [
                _node_job(run, type_row, spec, resolve(spec["input"], {**data, "item": item}), i)
                for i, item in enumerate(items[first : first + count], start=first)
            ]
        except Missing as exc:
            await self._fail(conn, run, node, "reference_missing", str(exc))
            return False
        jobs = await job_store.insert_many(conn, rows)
        states[node] = await run_store.set_node(
            conn, run["id"], node, "running", dispatched=first + count
        )
        await _announce(conn, [job_event(job, "job.queued") for job in jobs])
        return True

    async def _items_done(
        self,
        conn: Conn,
        run: Row,
        definition: Row,
        node: str,
        count: int,
        states: dict[str, Row],
        orgs: dict[UUID, Row],
    ) -> bool:
        """``count`` more items of the map ``node`` succeeded: join when all have, else queue
        the next ones (a paused run only counts them). True when the run ended."""
        state = states[node]
        finished = state["finished"] + count
        if finished < len(state["items"]):
            states[node] = await run_store.set_node(
                conn, run["id"], node, "running", finished=finished
            )
            if run["status"] != "running":
                return False
            return not await self._top_up(conn, run, _spec(definition, node), states, orgs)
        output = await run_store.item_results(conn, run["id"], node)
        size = len(msgspec.json.encode(output))
        if size > self.settings.workflow_max_output_bytes:
            await self._fail(
                conn,
                run,
                node,
                "output_too_large",
                f"the joined results are {size} bytes; at most"
                f" {self.settings.workflow_max_output_bytes} are kept",
            )
            return True
        await run_store.set_node(conn, run["id"], node, "running", finished=finished)
        states[node] = await self._finish(conn, run, node, "succeeded", output)
        return run["status"] == "running" and await self._advance(
            conn, run, definition, states, orgs
        )

    async def _top_up(
        self, conn: Conn, run: Row, spec: Row, states: dict[str, Row], orgs: dict[UUID, Row]
    ) -> bool:
        org = await _org(conn, run["organization_id"], orgs)
        try:
            type_row = job_type(org["settings"], spec["job_type"])
        except ApiError as exc:
            await self._fail(conn, run, spec["id"], "unknown_job_type", exc.message)
            return False
        return await self._dispatch_items(conn, run, type_row, spec, states, _data(run, states))

    # -- approval gates and child runs ---------------------------------------------------

    async def _settle_gate(self, conn: Conn, run: Row, spec: Row, states: dict[str, Row]) -> bool:
        """Close the gate if its decisions decide it (one rejection, or ``required``
        approvals); True when it closed."""
        node = spec["id"]
        decisions = await _decisions(conn, run["id"], node)
        if any(d["decision"] == "reject" for d in decisions):
            outcome = "rejected"
        elif sum(d["decision"] == "approve" for d in decisions) >= spec["required"]:
            outcome = "approved"
        else:
            return False
        await approval_store.close(conn, run["id"], node, outcome)
        states[node] = await self._finish(conn, run, node, outcome, _gate(outcome, decisions))
        return True

    async def _catch_up(
        self, conn: Conn, run: Row, definition: Row, states: dict[str, Row]
    ) -> bool:
        """On resume: close the gates decided while paused and queue the maps' next items.
        False when that failed the run."""
        orgs: dict[UUID, Row] = {}
        for spec in definition["spec"]["nodes"]:
            if states[spec["id"]]["status"] != "running":
                continue
            if spec["type"] == "approval":
                await self._settle_gate(conn, run, spec, states)
            elif spec["type"] == "map" and not await self._top_up(conn, run, spec, states, orgs):
                return False
        return True

    async def _start_child(
        self, conn: Conn, run: Row, spec: Row, states: dict[str, Row], data: Row
    ) -> bool:
        node = spec["id"]
        child_definition = await definition_store.latest(
            conn, run["organization_id"], spec["definition"], spec["version"]
        )
        try:
            if child_definition is None:
                raise Missing(f"workflow definition {spec['definition']} v{spec['version']}")
            child_input = resolve(spec["input"], data)
        except Missing as exc:
            await self._fail(conn, run, node, "reference_missing", str(exc))
            return False
        child = await run_store.insert(
            conn,
            {
                "id": uuid.uuid4(),
                "organization_id": run["organization_id"],
                "definition_id": child_definition["id"],
                "input": child_input if isinstance(child_input, dict) else {"value": child_input},
                "labels": {},
                "submitted_by": run["submitted_by"],
                "api_key_id": run["api_key_id"],
                "parent_run_id": run["id"],
                "parent_node": node,
            },
            [n["id"] for n in child_definition["spec"]["nodes"]],
        )
        states[node] = await run_store.set_node(
            conn, run["id"], node, "running", child_run_id=child["id"]
        )
        await _announce(
            conn,
            [
                _event(run, "workflow.node.running", {"node": node, "child_run_id": child["id"]}),
                _event(child, "workflow.run.created", {"status": "created"}),
            ],
        )
        child = await self._start(conn, child, child_definition)
        if child["status"] in run_store.FINAL:  # it ran to its end at once
            return await self._child_ended(conn, run, node, child, states)
        return True

    async def _child_ended(
        self, conn: Conn, run: Row, node: str, child: Row, states: dict[str, Row]
    ) -> bool:
        """The workflow node ends with its child run; False when that failed the run."""
        if child["status"] == "succeeded":
            states[node] = await self._finish(conn, run, node, "succeeded", child["output"])
            return True
        await self._fail(
            conn,
            run,
            node,
            f"child_{child['status']}",
            f"child run {child['id']} {child['status']}"
            + (f": {child['error_message']}" if child["error_message"] else ""),
        )
        return False

    async def _finish(self, conn: Conn, run: Row, node: str, outcome: str, output: Any) -> Row:
        row = await run_store.set_node(
            conn, run["id"], node, "succeeded", outcome=outcome, output=output
        )
        await _emit(conn, run, "workflow.node.succeeded", {"node": node, "outcome": outcome})
        return row

    async def _fail(self, conn: Conn, run: Row, node: str, code: str, message: str | None) -> None:
        await run_store.set_node(
            conn, run["id"], node, "failed", error_code=code, error_message=message
        )
        await _emit(conn, run, "workflow.node.failed", {"node": node, "error_code": code})
        await self._end(
            conn, run, "failed", None, error_code=code, error_message=f"node {node}: {message}"
        )

    async def _end(self, conn: Conn, run: Row, status: str, output: Any, **error: Any) -> Row:
        """End the run: its unfinished jobs, nodes, gates and child runs canceled."""
        canceled = await run_store.cancel_jobs(conn, run["id"])
        await _announce(conn, [job_event(row, "job.canceled") for row in canceled])
        await conn.execute(
            "UPDATE workflow_nodes SET status = 'canceled', completed_at = now(), fire_at = NULL"
            " WHERE run_id = %s AND status IN ('waiting', 'running')",
            (run["id"],),
        )
        await approval_store.cancel_open(conn, run["id"])
        after = await run_store.set_run(conn, run["id"], status, output=output, **error)
        await _emit(conn, after, f"workflow.run.{status}", {"status": status, **error})
        for child in await run_store.lock_live_children(conn, run["id"]):
            await self._end(conn, child, "canceled", None)
        if run["parent_run_id"] is not None and self.wake is not None:
            self.wake.set()  # the parent's node is settled by the sweep
        return after

    def _bounded(self, what: str, value: Any, path: str) -> None:
        size = len(msgspec.json.encode(value))
        limit = self.settings.workflow_max_input_bytes
        if size > limit:
            raise ApiError(
                "payload_too_large",
                f"the {what} is {size} bytes as JSON; at most {limit} are allowed",
                {"limit_bytes": limit, "path": path},
            )


class WorkflowTimers(Background):
    """Every ``interval`` seconds in every process, and at once when a child run ends here:
    fire due timers, move on the parents of ended children, cancel orphaned children. One
    process sweeps at a time (``run_store.take_sweep``); each step locks its run first."""

    def __init__(self, runs: WorkflowRuns, interval: float) -> None:
        self.runs = runs
        self.interval = interval

    async def run(self) -> None:
        wake = self.runs.wake = asyncio.Event()
        while True:
            try:
                await asyncio.wait_for(wake.wait(), self.interval)
                # Woken inside the transaction that ended a child: let it commit first.
                await asyncio.sleep(WAKE_DELAY)
            except TimeoutError:
                pass
            wake.clear()
            try:
                for sweep in (
                    self.runs.fire_timers,
                    self.runs.settle_children,
                    self.runs.cancel_orphans,
                ):
                    while await sweep() == TIMER_BATCH:
                        pass
            except Exception:
                log.exception("workflow timers failed; retrying")


# Definition versions never change once written: each process keeps those it has read.
_DEFINITIONS: dict[UUID, Row] = {}
DEFINITIONS_KEPT = 1000


async def _definition(conn: Conn, definition_id: UUID) -> Row:
    definition = _DEFINITIONS.get(definition_id)
    if definition is None:
        definition = await definition_store.get(conn, definition_id)
        assert definition is not None
        if len(_DEFINITIONS) >= DEFINITIONS_KEPT:
            _DEFINITIONS.clear()
        _DEFINITIONS[definition_id] = definition
    return definition


async def _current(conn: Conn, run_id: UUID) -> Row:
    """The run as the step left it (it holds the run's lock)."""
    run = await run_store.get(conn, run_id)
    assert run is not None
    return run


async def _org(conn: Conn, org_id: UUID, orgs: dict[UUID, Row]) -> Row:
    """The organization (for its job types), read once per step: ``orgs`` keeps those read."""
    if org_id not in orgs:
        org = await org_store.get(conn, org_id)
        assert org is not None
        orgs[org_id] = org
    return orgs[org_id]


async def _locked(conn: Conn, run_id: UUID) -> tuple[Row, Row]:
    run = await run_store.get(conn, run_id, lock=True)
    if run is None:
        raise ApiError.not_found(f"no workflow run with id {run_id}")
    return run, await _definition(conn, run["definition_id"])


async def _audit(conn: Conn, actor: Actor, run: Row, action: str, **what: Any) -> None:
    # The run's own events announce it: the audit row alone, no second event.
    await audit.record(
        conn,
        actor,
        run["organization_id"],
        action,
        "workflow_run",
        run["id"],
        after={"status": run["status"], "definition_id": run["definition_id"], **what},
        event=False,
    )


def _data(run: Row, states: dict[str, Row]) -> Row:
    """What a node's templates and tests read: the run's input and its nodes' outputs."""
    return {
        "input": run["input"],
        "nodes": {n: {"output": s["output"]} for n, s in states.items()},
    }


def _node_job(run: Row, type_row: Row, spec: Row, job_input: Any, item: int | None = None) -> Row:
    """The job row of a job node, or of one item of a map node."""
    fields = {
        "type": spec["job_type"],
        "input": job_input if isinstance(job_input, dict) else {"value": job_input},
        "team_id": None,
        "priority": 0,
        "estimated_units": 1.0,
        "max_attempts": spec["max_attempts"],
        "lease_seconds": spec.get("lease_seconds"),
        "labels": {},
    }
    return {
        **new_job(run["organization_id"], type_row, fields, run["submitted_by"], run["api_key_id"]),
        "workflow_run_id": run["id"],
        "workflow_node": spec["id"],
        "workflow_item": item,
    }


def _decision(row: Row) -> Row:
    return {k: row[k] for k in ("user_id", "decision", "comment", "decided_at")}


async def _decisions(conn: Conn, run_id: UUID, node: str) -> list[Row]:
    return (await approval_store.decisions_of(conn, [run_id])).get((run_id, node), [])


def _gate(outcome: str, decisions: list[Row]) -> Row:
    """An approval node's output: how it closed and every decision made on it."""
    return {"outcome": outcome, "decisions": [_decision(d) for d in decisions]}


async def approver_of(conn: Conn, org_id: UUID, principal: Principal) -> Row:
    """What decides whether a signed-in user may decide a gate (403 for an API key)."""
    user_id = principal.account
    member = await org_store.member(conn, org_id, user_id)
    return {
        "user_id": user_id,
        "subject": principal.subject,
        "role": member["role"] if member else None,
        "team_ids": await approval_store.user_teams(conn, org_id, user_id),
    }


def names(gate: Row, approver: Row) -> bool:
    """Whether the gate names the approver: as a user, by role or by team."""
    return (
        approver["user_id"] in gate["users"]
        or (approver["role"] is not None and approver["role"] in gate["roles"])
        or bool(set(approver["team_ids"]) & set(gate["teams"]))
    )


def may_decide(gate: Row, approver: Row) -> bool:
    return names(gate, approver) and (
        gate["allow_submitter"] or gate["submitted_by"] != approver["subject"]
    )


def _spec(definition: Row, node: str) -> Row:
    return next(spec for spec in definition["spec"]["nodes"] if spec["id"] == node)


def _event(run: Row, topic: str, data: Row) -> events.Event:
    return (run["organization_id"], topic, {"run_id": run["id"], **data}, None, run["id"])


# The events of one step of the engine, written with one statement when the step ends
# (``_batched``) rather than one per transition. Per task: concurrent requests never mix.
_PENDING: ContextVar[list[events.Event] | None] = ContextVar("workflow_events", default=None)


@asynccontextmanager
async def _batched(conn: Conn) -> AsyncIterator[None]:
    if _PENDING.get() is not None:  # already inside a step
        yield
        return
    pending: list[events.Event] = []
    token = _PENDING.set(pending)
    try:
        yield
    finally:
        _PENDING.reset(token)
    await events.emit_many(conn, pending)


async def _announce(conn: Conn, items: list[events.Event]) -> None:
    pending = _PENDING.get()
    if pending is None:
        await events.emit_many(conn, items)
    else:
        pending.extend(items)


async def _emit(conn: Conn, run: Row, topic: str, data: Row) -> None:
    await _announce(conn, [_event(run, topic, data)])


async def _public(conn: Conn, run: Row, definition: Row) -> Row:
    """The run with its definition's name and version and its nodes in definition order."""
    states = await run_store.nodes(conn, run["id"])
    job_ids = [s["job_id"] for s in states.values() if s["job_id"] is not None]
    attempts = await run_store.attempts(conn, job_ids) if job_ids else {}
    nodes = []
    for spec in definition["spec"]["nodes"]:
        state = states[spec["id"]]
        items = state["items"]
        nodes.append(
            {
                **{k: v for k, v in state.items() if k not in ("run_id", "items")},
                "type": spec["type"],
                "attempts": attempts.get(state["job_id"]) if state["job_id"] else None,
                "items": len(items) if items is not None else None,
            }
        )
    return {
        **run,
        "definition": {"name": definition["name"], "version": definition["version"]},
        "nodes": nodes,
    }
