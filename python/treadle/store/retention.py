"""Deleting what an organization's retention settings say is too old."""

from __future__ import annotations

from treadle.store import events
from treadle.store.db import Conn

# Taken with pg_try_advisory_xact_lock so that one process sweeps at a time.
SWEEP_LOCK = 0x7472_6564_0001

DEFAULT_DAYS = {"audit_log_days": 365, "authz_denial_days": 90}


async def sweep(conn: Conn, event_outbox_keep_hours: int) -> dict[str, int]:
    """Delete expired audit rows, denials, idempotency keys and relayed outbox events
    (call in a transaction); counts deleted."""
    cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (SWEEP_LOCK,))
    row = await cur.fetchone()
    if not row or not row["got"]:
        return {}
    deleted = {}
    for table, setting in (
        ("audit_logs", "audit_log_days"),
        ("authz_denials", "authz_denial_days"),
    ):
        cur = await conn.execute(
            f"DELETE FROM {table} t USING organizations o WHERE t.organization_id = o.id"
            " AND t.created_at < now() - make_interval(days => coalesce("
            "  (o.settings -> 'retention' ->> %s)::int, %s))",
            (setting, DEFAULT_DAYS[setting]),
        )
        deleted[table] = cur.rowcount
    cur = await conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")
    deleted["idempotency_keys"] = cur.rowcount
    deleted["event_outbox"] = await events.prune_relayed(conn, event_outbox_keep_hours)
    return deleted
