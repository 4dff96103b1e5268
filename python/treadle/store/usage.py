"""Usage records: what each organization consumed, and what it cost."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn
from treadle.store.records import param, rows_from

Row = dict[str, Any]
# The columns a record is written with, and their types.
_TYPES = {
    "organization_id": "uuid",
    "team_id": "uuid",
    "principal_id": "text",
    "api_key_id": "uuid",
    "job_id": "uuid",
    "job_type": "text",
    "metric": "text",
    "quantity": "numeric",
    "cost": "numeric",
}
COLUMNS = tuple(_TYPES)


async def insert(conn: Conn, rows: list[Row]) -> None:
    """Write records (dicts with the keys of ``COLUMNS``) in one statement."""
    if not rows:
        return
    columns = ", ".join(COLUMNS)
    await conn.execute(
        f"INSERT INTO usage_records ({columns}) SELECT {columns} FROM {rows_from('u', _TYPES)}",
        (param(rows, COLUMNS),),
    )


# One pass over the range gives every breakdown: each grouping set is one of them, told
# apart by which key columns GROUPING() says were grouped.
_SUMMARY = """
SELECT
    GROUPING(day, job_type, api_key_id, team_id) AS grouping,
    day, job_type, api_key_id, team_id, metric,
    sum(quantity) AS quantity, sum(cost) AS cost, count(*) AS records
FROM (
    SELECT date_trunc('day', recorded_at AT TIME ZONE 'UTC')::date AS day, *
    FROM usage_records
    WHERE organization_id = %s AND recorded_at >= %s AND recorded_at < %s
) r
GROUP BY GROUPING SETS (
    (metric), (day, metric), (job_type, metric), (api_key_id, metric), (team_id, metric)
)
ORDER BY metric, day, job_type, api_key_id, team_id
"""
# GROUPING() bits, most significant first: day, job_type, api_key_id, team_id (1: not grouped).
BREAKDOWNS = {
    0b1111: "total",
    0b0111: "day",
    0b1011: "job_type",
    0b1101: "api_key_id",
    0b1110: "team_id",
}


async def summary(conn: Conn, org_id: UUID, start: datetime, end: datetime) -> dict[str, list[Row]]:
    """Sums of quantity and cost per metric, overall and by each breakdown."""
    cur = await conn.execute(_SUMMARY, (org_id, start, end))
    out: dict[str, list[Row]] = {name: [] for name in BREAKDOWNS.values()}
    for row in await cur.fetchall():
        name = BREAKDOWNS[row.pop("grouping")]
        item = {
            "metric": row["metric"],
            "quantity": row["quantity"],
            "cost": row["cost"],
            "records": row["records"],
        }
        if name != "total":
            item = {name: row[name], **item}
        out[name].append(item)
    return out


async def records(
    conn: Conn,
    org_id: UUID,
    limit: int,
    before: int | None,
    start: datetime | None,
    end: datetime | None,
    filters: dict[str, Any],
) -> list[Row]:
    """A page of records, newest first; ``filters`` maps a column to the value it must have."""
    where = ["organization_id = %s"]
    args: list[Any] = [org_id]
    if before is not None:
        where.append("id < %s")
        args.append(before)
    if start is not None:
        where.append("recorded_at >= %s")
        args.append(start)
    if end is not None:
        where.append("recorded_at < %s")
        args.append(end)
    for column, value in filters.items():
        assert column in COLUMNS
        where.append(f"{column} = %s")
        args.append(value)
    cur = await conn.execute(
        f"SELECT * FROM usage_records WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
        (*args, limit),
    )
    return await cur.fetchall()


async def of_job(conn: Conn, job_id: UUID) -> list[Row]:
    cur = await conn.execute("SELECT * FROM usage_records WHERE job_id = %s ORDER BY id", (job_id,))
    return await cur.fetchall()
