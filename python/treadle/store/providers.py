"""Provider configurations, call records and monthly spend (the gateway's tables)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from treadle.store.db import Conn
from treadle.store.records import param, rows_from

Row = dict[str, Any]
CONFIG = (
    "organization_id, name, kind, base_url, credential, models, price_version,"
    " timeout_seconds, connect_timeout_seconds, max_retries, enabled, created_at,"
    " updated_at, updated_by"
)
_FIELDS = (
    "kind",
    "base_url",
    "credential",
    "models",
    "price_version",
    "timeout_seconds",
    "connect_timeout_seconds",
    "max_retries",
    "enabled",
)


async def get(conn: Conn, org_id: UUID, name: str, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {CONFIG} FROM provider_configs WHERE organization_id = %s AND name = %s"
        + (" FOR UPDATE" if lock else ""),
        (org_id, name),
    )
    return await cur.fetchone()


async def in_org(conn: Conn, org_id: UUID) -> list[Row]:
    cur = await conn.execute(
        f"SELECT {CONFIG} FROM provider_configs WHERE organization_id = %s ORDER BY name",
        (org_id,),
    )
    return await cur.fetchall()


async def count(conn: Conn, org_id: UUID) -> int:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM provider_configs WHERE organization_id = %s", (org_id,)
    )
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def put(conn: Conn, org_id: UUID, name: str, fields: Row, updated_by: str) -> Row:
    """Create or replace a configuration; ``created`` in the row says which."""
    values = [Jsonb(fields[f]) if f == "models" else fields[f] for f in _FIELDS]
    columns = ", ".join(_FIELDS)
    updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS)
    cur = await conn.execute(
        f"INSERT INTO provider_configs (organization_id, name, {columns}, updated_by)"
        f" VALUES (%s, %s, {', '.join(['%s'] * len(_FIELDS))}, %s)"
        f" ON CONFLICT (organization_id, name) DO UPDATE SET {updates},"
        " updated_by = EXCLUDED.updated_by, updated_at = now()"
        f" RETURNING {CONFIG}, (xmax = 0) AS created",
        (org_id, name, *values, updated_by),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def delete(conn: Conn, org_id: UUID, name: str) -> None:
    await conn.execute(
        "DELETE FROM provider_configs WHERE organization_id = %s AND name = %s", (org_id, name)
    )


async def budget(conn: Conn, org_id: UUID) -> Decimal | None:
    """The organization's monthly cap (its settings' ``monthly_budget``), if it has one."""
    cur = await conn.execute(
        "SELECT (settings->>'monthly_budget')::numeric AS cap FROM organizations WHERE id = %s",
        (org_id,),
    )
    row = await cur.fetchone()
    return row["cap"] if row else None


async def reserve(conn: Conn, org_id: UUID, month: date, amount: Decimal, cap: Decimal) -> bool:
    """Charge ``amount`` to the month if the month's spend stays within ``cap``: one
    statement, so that concurrent calls cannot pass the check together."""
    cur = await conn.execute(
        "INSERT INTO provider_spend AS s (organization_id, month, cost)"
        " SELECT %s, %s, %s::numeric WHERE %s::numeric <= %s::numeric"
        " ON CONFLICT (organization_id, month) DO UPDATE SET cost = s.cost + EXCLUDED.cost"
        " WHERE s.cost + EXCLUDED.cost <= %s::numeric RETURNING s.cost",
        (org_id, month, amount, amount, cap, cap),
    )
    return await cur.fetchone() is not None


async def spent(conn: Conn, org_id: UUID, month: date) -> Decimal:
    cur = await conn.execute(
        "SELECT cost FROM provider_spend WHERE organization_id = %s AND month = %s",
        (org_id, month),
    )
    row = await cur.fetchone()
    return Decimal(row["cost"]) if row else Decimal(0)


_CALL = (
    "id",
    "organization_id",
    "team_id",
    "principal_id",
    "api_key_id",
    "request_id",
    "provider",
    "model",
    "price_version",
    "stream",
    "status",
    "error_code",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cost",
    "latency_ms",
    "first_token_ms",
    # When the call ended: records are written in batches, so not the row's insert time.
    "created_at",
)
_TYPES = {
    "id": "uuid",
    "organization_id": "uuid",
    "team_id": "uuid",
    "principal_id": "text",
    "api_key_id": "uuid",
    "request_id": "text",
    "provider": "text",
    "model": "text",
    "price_version": "text",
    "stream": "boolean",
    "status": "text",
    "error_code": "text",
    "attempts": "integer",
    "input_tokens": "bigint",
    "output_tokens": "bigint",
    "cost": "numeric",
    "latency_ms": "double precision",
    "first_token_ms": "double precision",
    "created_at": "timestamptz",
    "input_cost": "numeric",
    "output_cost": "numeric",
    "month": "date",
    "spend": "numeric",
}
_WHO = "organization_id, team_id, principal_id, api_key_id"
_RECORD = f"""
WITH r AS (SELECT * FROM {rows_from("r", _TYPES)}),
c AS (
    INSERT INTO provider_calls ({", ".join(_CALL)}) SELECT {", ".join(_CALL)} FROM r ORDER BY n
),
u AS (
    INSERT INTO usage_records ({_WHO}, metric, quantity, cost)
    SELECT {_WHO}, 'provider.input_tokens', input_tokens, input_cost FROM r
    UNION ALL
    SELECT {_WHO}, 'provider.output_tokens', output_tokens, output_cost FROM r
)
INSERT INTO provider_spend AS s (organization_id, month, cost)
SELECT organization_id, month, sum(spend) FROM r GROUP BY organization_id, month
ON CONFLICT (organization_id, month) DO UPDATE SET cost = s.cost + EXCLUDED.cost
"""


async def record_many(conn: Conn, rows: list[Row]) -> None:
    """Calls' records, their usage records (input and output tokens, two per call) and
    each one's ``spend`` (its cost less what was reserved for it) added to its month: one
    statement for the whole batch."""
    await conn.execute(_RECORD, (param(rows, _TYPES),))
