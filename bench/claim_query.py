"""The claim query alone, against a synthetic backlog: how the organizations with queued
jobs are found (one DISTINCT over every queued job, or a skip scan of the index).

    .venv/bin/python bench/claim_query.py postgresql://postgres@127.0.0.1:5432/treadle_explain

The database must be migrated (``treadle migrate``) and hold no jobs; it is filled with a
backlog of ``--backlog`` jobs in one organization and three in each of ``--orgs`` others.
Each claim runs in a transaction that is rolled back, so every run sees the same queue.
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from treadle.store.jobs import _CLAIM

DISTINCT = """WITH orgs AS (
    SELECT DISTINCT organization_id FROM jobs
    WHERE status = 'queued' AND run_after <= now()
      AND (%(org)s::uuid IS NULL OR organization_id = %(org)s::uuid)
      AND (%(types)s::text[] IS NULL OR type = ANY(%(types)s::text[]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database_url")
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--orgs", type=int, default=49)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    skip_scan = _CLAIM
    head = skip_scan[skip_scan.index("WITH RECURSIVE") : skip_scan.index("), picked AS")]
    queries = {"distinct": skip_scan.replace(head, DISTINCT), "skip scan": skip_scan}
    with psycopg.connect(args.database_url) as conn:
        _fill(conn, args.backlog, args.orgs)
        for name, sql in queries.items():
            for limit in (1, 10):
                params = {
                    "org": None,
                    "types": None,
                    "limit": limit,
                    "owner": "w",
                    "lease": None,
                    "hashes": [f"lease-token-hash-{i}" for i in range(limit)],
                }
                times = []
                for _ in range(args.runs):
                    started = time.perf_counter()
                    with conn.transaction(force_rollback=True):
                        claimed = conn.execute(sql, params).fetchall()
                    times.append(time.perf_counter() - started)
                    assert len(claimed) == limit
                print(f"{name:9} limit {limit:2}: median {statistics.median(times) * 1000:.2f} ms")


def _fill(conn: psycopg.Connection, backlog: int, orgs: int) -> None:
    with conn.transaction():
        # Synthetic rows: no users behind the organizations, so foreign keys are skipped.
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            "INSERT INTO organizations (id, name, slug, created_by) SELECT gen_random_uuid(),"
            " 'o' || g, 'bench-o' || g, gen_random_uuid() FROM generate_series(0, %s) g",
            (orgs,),
        )
        insert = (
            "INSERT INTO jobs (id, organization_id, type, pricing, max_attempts, lease_seconds,"
            " submitted_by) SELECT gen_random_uuid(), o.id, 'default', '{}', 3, 60, 'bench'"
            " FROM organizations o, generate_series(1, %s)"
        )
        conn.execute(insert + " WHERE o.slug = 'bench-o0'", (backlog,))
        conn.execute(insert + " WHERE o.slug LIKE 'bench-o%%' AND o.slug <> 'bench-o0'", (3,))
    conn.execute("ANALYZE jobs")


if __name__ == "__main__":
    main()
