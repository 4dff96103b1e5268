"""Assets and the blobs they point at (one per organization and digest)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from treadle.store.db import Conn, after_cursor, cursor_args

Row = dict[str, Any]
ASSET = "id, organization_id, name, content_type, size, digest, labels, created_by, created_at"


async def lock_blob(conn: Conn, org_id: UUID, digest: str) -> None:
    """Serialize, until the transaction ends, every change to this blob's row and bytes."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 13))", (f"asset:{org_id}:{digest}",)
    )


async def ensure_blob(conn: Conn, org_id: UUID, digest: str, size: int) -> bool:
    """The blob's row, made if missing; whether it was made."""
    cur = await conn.execute(
        "INSERT INTO asset_blobs (organization_id, digest, size) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING true AS made",
        (org_id, digest, size),
    )
    return await cur.fetchone() is not None


async def drop_blob_if_unused(conn: Conn, org_id: UUID, digest: str) -> bool:
    """Delete the blob's row when no asset points at it; whether it was deleted."""
    cur = await conn.execute(
        "DELETE FROM asset_blobs b WHERE b.organization_id = %s AND b.digest = %s"
        " AND NOT EXISTS (SELECT 1 FROM assets a"
        "  WHERE a.organization_id = b.organization_id AND a.digest = b.digest)"
        " RETURNING true AS gone",
        (org_id, digest),
    )
    return await cur.fetchone() is not None


async def has_blob(conn: Conn, org_id: UUID, digest: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM asset_blobs WHERE organization_id = %s AND digest = %s", (org_id, digest)
    )
    return await cur.fetchone() is not None


async def insert(conn: Conn, asset: Row) -> Row:
    cur = await conn.execute(
        "INSERT INTO assets (id, organization_id, name, content_type, size, digest, labels,"
        " created_by, idempotency_key, fingerprint) VALUES (%(id)s, %(organization_id)s,"
        " %(name)s, %(content_type)s, %(size)s, %(digest)s, %(labels)s, %(created_by)s,"
        " %(idempotency_key)s, %(fingerprint)s)"
        f" ON CONFLICT DO NOTHING RETURNING {ASSET}",
        {**asset, "labels": Jsonb(asset["labels"])},
    )
    row = await cur.fetchone()
    return row if row is not None else {}


async def by_idempotency_key(conn: Conn, org_id: UUID, created_by: str, key: str) -> Row | None:
    cur = await conn.execute(
        f"SELECT {ASSET}, fingerprint FROM assets WHERE organization_id = %s"
        " AND created_by = %s AND idempotency_key = %s",
        (org_id, created_by, key),
    )
    return await cur.fetchone()


async def get(conn: Conn, asset_id: UUID, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {ASSET} FROM assets WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (asset_id,),
    )
    return await cur.fetchone()


async def delete(conn: Conn, asset_id: UUID) -> None:
    await conn.execute("DELETE FROM assets WHERE id = %s", (asset_id,))


async def in_org(
    conn: Conn,
    org_id: UUID,
    limit: int,
    before: Any,
    digest: str | None = None,
    labels: dict[str, str] | None = None,
) -> list[Row]:
    """Newest first; only those with ``digest``, and carrying every label of ``labels``."""
    cur = await conn.execute(
        f"SELECT {ASSET} FROM assets WHERE organization_id = %s"
        " AND (%s::text IS NULL OR digest = %s) AND labels @> %s"
        f" AND {after_cursor()} ORDER BY created_at DESC, id DESC LIMIT %s",
        (org_id, digest, digest, Jsonb(labels or {}), *cursor_args(before), limit),
    )
    return await cur.fetchall()
