"""Workflow runs: created, started, advanced and canceled, all inside the transactions of
the changes that drive them.

Nothing a run needs lives in a process. A node that runs a job names it
(``jobs.workflow_run_id``), and the run advances in the transaction that finishes that job
(``Jobs.settled`` calls ``advance_jobs``). A delay is a row with its time, fired by the
``WorkflowTimers`` loop of whichever process takes it first. Every step locks the run's row
first, so two nodes of one run finishing at once advance it one after the other.

Runs of definitions with ``job``, ``delay``, ``condition`` and ``signal`` nodes are built.
Approval, map and child-workflow nodes are not built yet: a run of a definition that has
one is refused when it is created.
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

from treadle.background import Background
from treadle.services import audit
from treadle.services.jobs import Jobs, job_event, job_type, new_job, submitter
from treadle.services.principal import Actor
from treadle.services.workflow_data import Missing, holds, resolve
from treadle.settings import Settings
from treadle.store import events
from treadle.store import jobs as job_store
from treadle.store import orgs as org_store
from treadle.store import workflow_definitions as definition_store
from treadle.store import workflow_runs as run_store
from treadle.store.db import Conn, Database
from treadle.web.errors import ApiError

log = logging.getLogger("treadle.workflows")
Row = dict[str, Any]
RUNNABLE = frozenset(("job", "delay", "condition", "signal"))
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


class WorkflowRuns:
    def __init__(self, settings: Settings, db: Database, jobs: Jobs) -> None:
        self.settings = settings
        self.db = db
        self.jobs = jobs
        jobs.settled_hook = self.advance_jobs

    # -- the routes ----------------------------------------------------------------------

    async def create(
        self, actor: Actor, org_id: UUID, definition_id: UUID, fields: Row, start: bool
    ) -> Row:
        submitted_by, api_key_id = submitter(actor.signed_in)
        async with self.db.transaction() as conn, _batched(conn):
            definition = await definition_store.get(conn, definition_id)
            if definition is None or definition["organization_id"] != org_id:
                raise ApiError.validation(
                    f"no workflow definition {definition_id} in this organization",
                    "$.definition_id",
                )
            nodes = definition["spec"]["nodes"]
            unbuilt = sorted({n["type"] for n in nodes} - RUNNABLE)
            if unbuilt:
                raise ApiError.validation(
                    f"runs of definitions with {', '.join(unbuilt)} nodes are not built yet;"
                    " job, delay, condition and signal nodes run today",
                    "$.definition_id",
                )
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
            await self._advance(conn, run, definition, await run_store.nodes(conn, run["id"]))
            after = await run_store.get(conn, run["id"])
            assert after is not None
            run = after
        await _audit(conn, actor, run, f"workflow.run.{action}")
        return run

    async def signal(self, actor: Actor, run_id: UUID, name: str, payload: Any) -> Row:
        """Deliver the signal ``name`` to every node of the run waiting for it (a paused
        run keeps it for its resume); 409 with the run's state when none is."""
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
            after = await run_store.get(conn, run["id"])
            assert after is not None
            return await _public(conn, after, definition)

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
        for row in sorted(rows, key=lambda r: r["workflow_run_id"]):
            run = runs[row["workflow_run_id"]]
            node = row["workflow_node"]
            states = states_of[run["id"]]
            state = states.get(node)
            if run["status"] not in _LIVE or state is None or state["job_id"] != row["id"]:
                continue  # the run ended meanwhile, or this is not the node's live job
            definition = await _definition(conn, run["definition_id"])
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

    async def fire_timers(self) -> int:
        """Fire the delays that are due; how many."""
        async with self.db.transaction() as conn, _batched(conn):
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
                kind = _spec(definition, node)["type"]
                outcome = "timed_out" if kind == "signal" else "elapsed"
                states[node] = await self._finish(conn, run, node, outcome, None)
                await self._advance(conn, run, definition, states)
        return len(due)

    async def _start(self, conn: Conn, run: Row, definition: Row) -> Row:
        run = await run_store.set_run(conn, run["id"], "running")
        await _emit(conn, run, "workflow.run.started", {"status": "running"})
        await self._advance(conn, run, definition, await run_store.nodes(conn, run["id"]))
        after = await run_store.get(conn, run["id"])
        assert after is not None
        return after

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
                    org_id = run["organization_id"]
                    if org_id not in orgs:
                        org = await org_store.get(conn, org_id)
                        assert org is not None
                        orgs[org_id] = org
                    if not await self._activate(conn, run, orgs[org_id], spec, states):
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
        data = {
            "input": run["input"],
            "nodes": {n: {"output": s["output"]} for n, s in states.items()},
        }
        if kind == "condition":
            outcome = next(
                (c["outcome"] for c in spec["cases"] if holds(c["when"], data)), spec["default"]
            )
            states[node] = await self._finish(conn, run, node, outcome, {"outcome": outcome})
            return True
        assert kind == "job" and org is not None
        try:
            job_input = resolve(spec["input"], data)
            type_row = job_type(org["settings"], spec["job_type"])
        except Missing as exc:
            await self._fail(conn, run, node, "reference_missing", str(exc))
            return False
        except ApiError as exc:  # the type was removed from the settings since
            await self._fail(conn, run, node, "unknown_job_type", exc.message)
            return False
        fields = {
            "type": spec["job_type"],
            "input": job_input if isinstance(job_input, dict) else {"value": job_input},
            "team_id": None,
            "priority": 0,
            "estimated_units": 1.0,
            "max_attempts": spec["max_attempts"],
            "lease_seconds": spec["lease_seconds"],
            "labels": {},
        }
        job = await job_store.insert(
            conn,
            {
                **new_job(
                    run["organization_id"], type_row, fields, run["submitted_by"], run["api_key_id"]
                ),
                "workflow_run_id": run["id"],
                "workflow_node": node,
            },
        )
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
        """End the run: its unfinished jobs canceled, its unfinished nodes too."""
        canceled = await run_store.cancel_jobs(conn, run["id"])
        await _announce(conn, [job_event(row, "job.canceled") for row in canceled])
        await conn.execute(
            "UPDATE workflow_nodes SET status = 'canceled', completed_at = now()"
            " WHERE run_id = %s AND status IN ('waiting', 'running')",
            (run["id"],),
        )
        after = await run_store.set_run(conn, run["id"], status, output=output, **error)
        await _emit(conn, after, f"workflow.run.{status}", {"status": status, **error})
        return after


class WorkflowTimers(Background):
    """Fires due delays every ``interval`` seconds, in every process (each timer is taken
    by one of them: FOR UPDATE SKIP LOCKED)."""

    def __init__(self, runs: WorkflowRuns, interval: float) -> None:
        self.runs = runs
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                while await self.runs.fire_timers() == TIMER_BATCH:
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
    return {
        **run,
        "definition": {"name": definition["name"], "version": definition["version"]},
        "nodes": [
            {k: v for k, v in states[spec["id"]].items() if k != "run_id"}
            for spec in definition["spec"]["nodes"]
        ],
    }
