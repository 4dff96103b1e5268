"""What one organization read costs in CPU, by pool size and prepare threshold: the figures
behind the defaults of ``TREADLE_DB_POOL_MAX`` and ``TREADLE_DB_PREPARE_THRESHOLD``.

In one process, ``--tasks`` tasks on one uvloop loop (as many as wrk's connections in
``http_db_read.py``) read one organization through treadle's ``Database`` and
``store.orgs.get`` for ``--reads`` reads per case. It reports reads/s, this process's CPU
per read and the CPU the PostgreSQL backends of the bench's database used per read (from
``/proc`` via psutil: PostgreSQL must run on this machine), in interleaved rounds, medians
over rounds. CPU per read is steadier than reads/s when other processes share the cores.

    .venv/bin/python bench/db_read_cpu.py [--pool-max 2,4,10,16] [--prepare-threshold=-1,0,5]
        [--tasks 64] [--reads 20000] [--rounds 3]

Storage as in ``http_compare.py`` (``--database-url``, else an embedded PostgreSQL); the
bench makes its own database and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import uvloop

from treadle.store import orgs as org_store
from treadle.store.db import Database
from treadle.store.migrate import migrate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pool-max", type=_ints, default=[2, 4, 10, 16])
    p.add_argument("--prepare-threshold", type=_ints, default=[-1, 0, 5])
    p.add_argument("--tasks", type=int, default=64)
    p.add_argument("--reads", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--database-url", default=os.environ.get("TREADLE_BENCH_DATABASE_URL", ""))
    args = p.parse_args(argv)
    cases = list(itertools.product(args.pool_max, args.prepare_threshold))
    results: dict[tuple[int, int], list[dict[str, float]]] = {case: [] for case in cases}
    with (
        tempfile.TemporaryDirectory(prefix="treadle-bench-") as tmp,
        _database(args.database_url, Path(tmp)) as url,
    ):
        migrate(url)
        org_id = _organization(url)
        for n in range(1, args.rounds + 1):
            for case in cases:
                got = uvloop.run(_case(url, org_id, *case, args.tasks, args.reads))
                results[case].append(got)
                print(
                    f"  round {n}/{args.rounds} pool_max={case[0]:<3} prepare_threshold="
                    f"{case[1]:<3} {got['rps']:>8,.0f} reads/s  client {got['client_us']:.0f} us"
                    f"  postgres {got['postgres_us']:.0f} us per read",
                    flush=True,
                )
    print(
        "\n| pool_max | prepare_threshold | reads/s | client CPU µs/read | PostgreSQL CPU µs/read"
        " | both |\n| ---: | ---: | ---: | ---: | ---: | ---: |"
    )
    for case, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"| {case[0]} | {case[1]} | {med['rps']:,.0f} | {med['client_us']:.0f}"
            f" | {med['postgres_us']:.0f} | {med['client_us'] + med['postgres_us']:.0f} |"
        )
    return 0


@contextlib.contextmanager
def _database(admin_url: str, tmp: Path) -> Iterator[str]:
    """A database of the bench's own, on the given server or an embedded one."""
    from treadle.embedded import EmbeddedPostgres

    embedded = None
    if not admin_url:
        embedded = EmbeddedPostgres(tmp / "embedded")
        admin_url = embedded.start()
    name = f"treadle_bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield psycopg.conninfo.make_conninfo(admin_url, dbname=name)
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        if embedded is not None:
            embedded.stop()


def _ints(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",") if x]


def _organization(url: str) -> uuid.UUID:
    org_id, user_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email, password_hash) VALUES (%s, %s, 'x')",
            (user_id, f"{user_id.hex}@example.com"),
        )
        conn.execute(
            "INSERT INTO organizations (id, name, slug, created_by) VALUES (%s, 'bench', %s, %s)",
            (org_id, org_id.hex, user_id),
        )
    return org_id


async def _case(
    url: str, org_id: uuid.UUID, pool_max: int, threshold: int, tasks: int, reads: int
) -> dict[str, float]:
    db = Database(url, min(2, pool_max), pool_max, threshold)
    await db.open()
    await db.pool.wait()

    async def reader(count: int) -> None:
        for _ in range(count):
            async with db.connection() as conn:
                row = await org_store.get(conn, org_id)
            assert row is not None and row["id"] == org_id

    try:
        # Every connection opened and past the prepare threshold before the clock starts.
        await asyncio.gather(*(reader(20) for _ in range(max(tasks, pool_max))))
        backends = _backends(str(psycopg.conninfo.conninfo_to_dict(url)["dbname"]))
        pg_before = _cpu(backends)
        me = psutil.Process()
        client_before = sum(me.cpu_times()[:2])
        started = time.perf_counter()
        await asyncio.gather(*(reader(reads // tasks) for _ in range(tasks)))
        wall = time.perf_counter() - started
        client = sum(me.cpu_times()[:2]) - client_before
        postgres = _cpu(backends) - pg_before
    finally:
        await db.close()
    done = reads // tasks * tasks
    return {
        "rps": done / wall,
        "client_us": client / done * 1e6,
        "postgres_us": postgres / done * 1e6,
    }


def _backends(database: str) -> list[psutil.Process]:
    """The PostgreSQL backends connected to ``database`` (the pool's connections)."""
    out = []
    for proc in psutil.process_iter(["name"]):
        if not (proc.info["name"] or "").startswith("postgres"):
            continue
        with contextlib.suppress(psutil.Error):
            if f" {database} " in " ".join(proc.cmdline()):
                out.append(proc)
    return out


def _cpu(procs: list[Any]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


if __name__ == "__main__":
    sys.exit(main())
