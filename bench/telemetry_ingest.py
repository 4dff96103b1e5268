"""Telemetry ingest over HTTP against a raw binary COPY of the same rows into the same table.

Per round, with ``--agents`` concurrent senders and ``--batches`` batches of ``--events``
events each (8 attributes, RFC 3339 timestamps, all valid):

- **HTTP**: ``--agents`` enrolled edge agents, one process each, post their batches to
  ``POST /v1/telemetry/ingest`` (each with its own Idempotency-Key) as fast as answers come.
- **raw COPY** (the baseline): the same number of threads, each with its own psycopg
  connection, COPY the same rows in binary into the organization's partition of the day,
  one batch per transaction. The rows are those the server wrote, read back beforehand
  with ``COPY ... TO STDOUT`` (binary) under a new batch id each, so the baseline pays
  nothing for encoding and writes exactly what the server did.

The figure is HTTP events/s / raw COPY events/s. The bench checks in PostgreSQL that every
batch landed once with all its events, and reports the server's peak RSS (VmHWM of its
processes). Each half starts just after a ``CHECKPOINT`` and reports the checkpoints begun
while it ran (it needs a superuser, as the embedded PostgreSQL's is).

    .venv/bin/python bench/telemetry_ingest.py [--agents 8] [--batches 40] [--events 1000]

Storage as in ``http_compare.py`` (``--database-url`` / ``--redis-url``, else embedded).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import noise
import orjson
import psycopg
import runner
import servers
import tenants
from psycopg import sql

COLUMNS = "organization_id, agent_id, batch_id, seq, event_id, type, ts, attributes, received_at"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = {"TREADLE_RATE_LIMIT_ANONYMOUS": "100000/60"}
    with runner.unlimited_treadle("telemetry_ingest", args, env) as bench:
        runner.rounds(bench, args, _round, _line, table)
    return 0


def _line(run: dict[str, Any]) -> str:
    return (
        f"HTTP {run['http_per_s']:,.0f} events/s,"
        f" raw COPY {run['copy_per_s']:,.0f} events/s, ratio {run['ratio']:.2f};"
        f" every batch once: {'yes' if run['exactly_once'] else 'NO'};"
        f" server peak RSS {run['rss_mib']:.0f} MiB"
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--agents", type=int, default=8, help="concurrent agents (and COPY threads)")
    p.add_argument("--batches", type=int, default=40, help="batches per agent per round")
    p.add_argument("--events", type=int, default=1000, help="events per batch")
    return runner.add_common_args(p)


def batch_body(n: int, seed: int) -> bytes:
    now = datetime.now(UTC).isoformat()
    return orjson.dumps(
        [
            {
                "type": ("cpu.sample", "mem.sample", "net.sample")[i % 3],
                "timestamp": now,
                "id": f"e-{seed}-{i}",
                "attributes": {
                    "host": f"edge-{seed % 64}",
                    "region": "eu-west-1",
                    "core": i % 8,
                    "value": i * 0.25,
                    "ok": i % 7 != 0,
                    "unit": "percent",
                    "sensor": f"s-{i % 32}",
                    "firmware": "4.2.1",
                },
            }
            for i in range(n)
        ]
    )


def _round(
    app: servers.Target, store: servers.Storage, token: str, args: argparse.Namespace
) -> dict[str, Any]:
    meter = noise.Meter(lambda: [app.proc.pid] if app.proc else [])
    org = tenants.organization(app, token, [])
    user = {"authorization": f"Bearer {token}"}
    policy = {"telemetry": {"max_batch_events": 10_000, "max_batch_bytes": 16 * 1024 * 1024}}
    status, answer = _put(f"{app.url}/v1/organizations/{org.id}/settings", policy, user)
    if status != 200:
        raise RuntimeError(f"PUT settings answered {status}: {answer}")
    keys, agent_ids = [], []
    for _ in range(args.agents):
        status, made = servers._request(
            app.url + "/v1/edge-agents/enrollments", {"organization_id": org.id}, user
        )
        status, enrolled = servers._request(
            app.url + "/v1/edge-agents/enroll", {"token": made["data"]["token"]}
        )
        if status != 201:
            raise RuntimeError(f"POST /v1/edge-agents/enroll answered {status}: {enrolled}")
        keys.append(enrolled["data"]["credential"]["key"])
        agent_ids.append(enrolled["data"]["agent"]["id"])
    bodies = [batch_body(args.events, seed) for seed in range(args.batches)]

    checkpoint(store.database_url)
    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    server_pids = list(_tree(app.proc.pid)) if app.proc else []
    # The checkpoint counts are read outside the CPU readings: their connections are not
    # the half's work.
    checkpoints = checkpoints_so_far(store.database_url)
    server_before, pg_before = _cpu(server_pids), _backends_cpu(store.database_url)
    results = runner.in_processes(agent, [(app.url, key, bodies) for key in keys])
    server_cpu = _cpu(server_pids) - server_before
    pg_http = _backends_cpu(store.database_url, pg_before)
    http_checkpoints = checkpoints_so_far(store.database_url) - checkpoints
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    sent = sum(r["events"] for r in results)
    errors = sum(r["errors"] for r in results)
    rss = peak_rss(app.proc.pid) if app.proc else 0

    noise.wait_quiet(meter, args.quiet, args.quiet_wait)
    exactly_once = errors == 0 and landed(store.database_url, agent_ids, args)
    copy_wall, copier_cpu, pg_copy, copy_checkpoints = raw_copy(
        store.database_url, org.id, agent_ids
    )
    copied = args.agents * args.batches * args.events
    batches = args.agents * args.batches
    return {
        "http_per_s": sent / wall,
        "copy_per_s": copied / copy_wall,
        "ratio": (sent / wall) / (copied / copy_wall),
        "errors": errors,
        "exactly_once": exactly_once,
        "rss_mib": rss / 1024,
        # CPU milliseconds per batch, robust to a shared machine's noise in a way that
        # throughput is not: where each half's time goes.
        "ms_per_batch": {
            "http_server": 1000 * server_cpu / batches,
            "http_postgres": 1000 * pg_http / batches,
            "http_agents": 1000 * sum(r["cpu"] for r in results) / batches,
            "copy_postgres": 1000 * pg_copy / batches,
            "copy_client": 1000 * copier_cpu / batches,
        },
        "http_cores": (server_cpu + pg_http) / wall,
        "copy_cores": (pg_copy + copier_cpu) / copy_wall,
        "checkpoints": {"http": http_checkpoints, "copy": copy_checkpoints},
    }


def checkpoint(database_url: str) -> None:
    """Each half starts right after a checkpoint. Both write about 130 MB of WAL a round,
    and with the default max_wal_size the checkpoints they asked for (two in three rounds)
    fell into one half or the other at random. Just after a checkpoint, each half pays for
    the first writes to its pages alike and asks for none. (Rounds without any checkpoint
    still vary by about ±0.15: most of the noise is the machine's.)"""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def checkpoints_so_far(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
    return int(row[0]) if row else 0


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        stack.extend(int(c) for c in children)
    return pids


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process on this machine; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu(pids: list[int]) -> float:
    return sum(_cpu_of(pid) for pid in pids)


def _backends_cpu(database_url: str, before: dict[int, float] | None = None) -> Any:
    """With no ``before``: CPU seconds of each PostgreSQL backend of the bench's database
    (PostgreSQL on this machine). With it: the CPU they used since (new backends count
    from zero; one that ended meanwhile is missed)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        pids = [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
        ]
    now = {pid: _cpu_of(pid) for pid in pids}
    if before is None:
        return now
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())


def _put(url: str, body: object, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    import urllib.request

    req = urllib.request.Request(url, data=orjson.dumps(body), headers=headers, method="PUT")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, orjson.loads(resp.read())


def agent(url: str, key: str, bodies: list[bytes], ready: Any, results: Any) -> None:
    errors = events = 0
    with tenants.Client(url, key) as client:
        client.get("/v1/edge-agents/policy")
        ready.wait(timeout=60)
        start = time.monotonic()
        cpu = time.process_time()
        for body in bodies:
            status, answer = client.post(
                "/v1/telemetry/ingest", body, {"idempotency-key": str(uuid.uuid4())}
            )
            if status != 201 or answer["data"]["rejected"]:
                errors += 1
            else:
                events += answer["data"]["accepted"]
        end = time.monotonic()
        cpu = time.process_time() - cpu
    results.put({"start": start, "end": end, "errors": errors, "events": events, "cpu": cpu})


def raw_copy(
    database_url: str, org_id: str, agent_ids: list[str]
) -> tuple[float, float, float, int]:
    """Seconds, the copying threads' CPU seconds and their backends', and the checkpoints
    PostgreSQL began meanwhile, for one thread per agent to COPY the rows the server wrote
    for that agent's batches back into the same partition, each batch in its own
    transaction. The rows are read back from PostgreSQL beforehand (``COPY ... TO STDOUT``,
    binary), each batch under a new batch id: the same rows, with their own
    ``received_at``, as a new batch."""
    org = uuid.UUID(org_id)
    day = datetime.now(UTC).date()
    partition = sql.Identifier(f"telemetry_events_{org.hex}_{day:%Y%m%d}")
    target = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(partition, sql.SQL(COLUMNS))
    source = sql.SQL(
        "COPY (SELECT organization_id, agent_id, %s::uuid, seq, event_id, type, ts,"
        " attributes, received_at FROM {} WHERE batch_id = %s ORDER BY seq)"
        " TO STDOUT (FORMAT BINARY)"
    ).format(partition)
    encoded: list[list[bytes]] = []
    with psycopg.connect(database_url) as conn:
        for agent_id in agent_ids:
            batches = conn.execute(
                "SELECT id FROM telemetry_batches WHERE agent_id = %s ORDER BY created_at",
                (agent_id,),
            ).fetchall()
            datas = []
            for (batch_id,) in batches:
                with conn.cursor() as cur, cur.copy(source, (uuid.uuid4(), batch_id)) as copy:
                    datas.append(b"".join(bytes(chunk) for chunk in copy))
            encoded.append(datas)
    checkpoint(database_url)
    barrier = threading.Barrier(len(encoded) + 1)
    ends: list[float] = []

    cpus: list[float] = []
    pg_cpus: list[float] = []

    def copier(datas: list[bytes]) -> None:
        with psycopg.connect(database_url) as conn:
            backend = conn.info.backend_pid
            barrier.wait()
            cpu, pg = time.thread_time(), _cpu_of(backend)
            for data in datas:
                with conn.transaction(), conn.cursor() as cur, cur.copy(target) as copy:
                    copy.write(data)
            cpus.append(time.thread_time() - cpu)
            # Read before the connection closes: its backend ends with it.
            pg_cpus.append(_cpu_of(backend) - pg)
        ends.append(time.monotonic())

    threads = [threading.Thread(target=copier, args=(datas,)) for datas in encoded]
    for t in threads:
        t.start()
    checkpoints = checkpoints_so_far(database_url)
    barrier.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    return (
        max(ends) - start,
        sum(cpus),
        sum(pg_cpus),
        checkpoints_so_far(database_url) - checkpoints,
    )


def landed(database_url: str, agent_ids: list[str], args: Any) -> bool:
    with psycopg.connect(database_url) as conn:
        (batches, accepted) = conn.execute(
            "SELECT count(*), coalesce(sum(accepted), 0) FROM telemetry_batches"
            " WHERE agent_id = ANY(%s::uuid[])",
            (agent_ids,),
        ).fetchone()
        (events,) = conn.execute(
            "SELECT count(*) FROM telemetry_events WHERE agent_id = ANY(%s::uuid[])"
            " AND batch_id IN (SELECT id FROM telemetry_batches)",
            (agent_ids,),
        ).fetchone()
    want = args.agents * args.batches
    return bool(batches == want and accepted == want * args.events and events == accepted)


def peak_rss(pid: int) -> int:
    """The largest VmHWM (KiB) among the server's process and its descendants."""
    peak = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        stack.extend(int(c) for c in children)
    return peak


def table(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    def each(key: str, fmt: str = ",.0f") -> str:
        return ", ".join(f"{r[key]:{fmt}}" for r in runs)

    ok = "yes" if all(r["exactly_once"] for r in runs) else "NO"
    return "\n".join(
        [
            "| figure | median | rounds |",
            "| --- | ---: | --- |",
            f"| HTTP ingest, {args.agents} agents, {args.events}-event batches, events/s"
            f" (every batch once: {ok}) | **{med('http_per_s'):,.0f}** | {each('http_per_s')} |",
            f"| raw binary COPY of the same rows, {args.agents} connections, events/s"
            f" | {med('copy_per_s'):,.0f} | {each('copy_per_s')} |",
            f"| HTTP / raw COPY | **{med('ratio'):.2f}** | {each('ratio', '.2f')} |",
            f"| server peak RSS, MiB | {max(r['rss_mib'] for r in runs):,.0f}"
            f" | {each('rss_mib')} |",
            "",
            "CPU ms per batch (medians): "
            + ", ".join(
                f"{name} {statistics.median(r['ms_per_batch'][name] for r in runs):.2f}"
                for name in runs[0]["ms_per_batch"]
            )
            + f"; cores busy: HTTP half {med('http_cores'):.2f} (server + PostgreSQL),"
            f" COPY half {med('copy_cores'):.2f} (PostgreSQL + copiers)",
            "checkpoints begun during the timed halves, per round (HTTP/COPY): "
            + ", ".join(f"{r['checkpoints']['http']}/{r['checkpoints']['copy']}" for r in runs),
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
