"""Deleting what an organization's retention settings say is too old."""

from __future__ import annotations

from dataclasses import dataclass

from treadle.store import events, outbox, telemetry
from treadle.store.db import Conn

# Taken with pg_try_advisory_xact_lock so that one process sweeps at a time.
SWEEP_LOCK = 0x7472_6564_0001

DEFAULT_DAYS = {
    "audit_log_days": 365,
    "authz_denial_days": 90,
    "telemetry_days": 30,
    "webhook_delivery_days": 30,
}


@dataclass(frozen=True, slots=True)
class Keep:
    """How long the platform keeps what no organization's settings govern."""

    event_outbox_hours: int
    mail_days: int
    platform_audit_days: int


async def sweep(conn: Conn, keep: Keep) -> dict[str, int]:
    """Delete expired audit rows (of organizations and of the platform), denials,
    idempotency keys, relayed outbox events and sent or failed mail (call in a
    transaction); counts deleted."""
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
    cur = await conn.execute(
        "DELETE FROM audit_logs WHERE organization_id IS NULL"
        " AND created_at < now() - make_interval(days => %s)",
        (keep.platform_audit_days,),
    )
    deleted["platform_audit_logs"] = cur.rowcount
    cur = await conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")
    deleted["idempotency_keys"] = cur.rowcount
    cur = await conn.execute(
        "DELETE FROM webhook_deliveries d USING organizations o WHERE d.organization_id = o.id"
        " AND d.status IN ('succeeded', 'dead') AND d.finished_at < now() - make_interval("
        "  days => coalesce((o.settings -> 'retention' ->> 'webhook_delivery_days')::int, %s))",
        (DEFAULT_DAYS["webhook_delivery_days"],),
    )
    deleted["webhook_deliveries"] = cur.rowcount
    deleted["event_outbox"] = await events.prune_relayed(conn, keep.event_outbox_hours)
    deleted["mail_outbox"] = await outbox.prune(conn, keep.mail_days)
    # Whole day partitions of telemetry events, past each organization's telemetry_days.
    deleted["telemetry_partitions"] = await telemetry.drop_expired(
        conn, DEFAULT_DAYS["telemetry_days"]
    )
    return deleted
