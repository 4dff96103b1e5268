"""Organizations' sealed credentials, their data keys, and the key-encryption keyring.

Nothing here sees a plain value or key: rows hold sealed bytes (``treadle.sealing``);
``treadle.services.secrets`` seals and opens them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from treadle.store.db import Conn, paged

Row = dict[str, Any]
SHOWN = "name, version, created_at, updated_at, updated_by, updated_by_type"


async def current_version(conn: Conn) -> int:
    """The version new data keys are wrapped under, held FOR SHARE until the transaction
    ends, so that a rotation moving it on waits for this creation."""
    cur = await conn.execute("SELECT current_version FROM secret_keyring FOR SHARE")
    row = await cur.fetchone()
    assert row is not None  # the migration inserts the one row
    return int(row["current_version"])


async def key_check(conn: Conn, version: int) -> bytes | None:
    cur = await conn.execute(
        "SELECT check_value FROM secret_key_checks WHERE version = %s", (version,)
    )
    row = await cur.fetchone()
    return None if row is None else bytes(row["check_value"])


async def add_key_check(conn: Conn, version: int, check_value: bytes) -> None:
    """The first server (or rotation) to use a version records its check; later ones
    compare against that one."""
    await conn.execute(
        "INSERT INTO secret_key_checks (version, check_value) VALUES (%s, %s)"
        " ON CONFLICT (version) DO NOTHING",
        (version, check_value),
    )


async def data_key(conn: Conn, org_id: UUID, *, lock: bool = False) -> Row | None:
    """``lock`` takes the row FOR UPDATE: changes to one organization's secrets take it, so
    they happen one at a time (versions are known before the value is sealed)."""
    cur = await conn.execute(
        "SELECT organization_id, key_version, wrapped FROM secret_data_keys"
        " WHERE organization_id = %s" + (" FOR UPDATE" if lock else ""),
        (org_id,),
    )
    return await cur.fetchone()


async def insert_data_key(conn: Conn, org_id: UUID, key_version: int, wrapped: bytes) -> None:
    """Does nothing when a concurrent request made the organization's key first."""
    await conn.execute(
        "INSERT INTO secret_data_keys (organization_id, key_version, wrapped)"
        " VALUES (%s, %s, %s) ON CONFLICT (organization_id) DO NOTHING",
        (org_id, key_version, wrapped),
    )


async def get(conn: Conn, org_id: UUID, name: str) -> Row | None:
    cur = await conn.execute(
        f"SELECT {SHOWN} FROM organization_secrets WHERE organization_id = %s AND name = %s",
        (org_id, name),
    )
    return await cur.fetchone()


async def sealed_with_key(conn: Conn, org_id: UUID, name: str) -> Row | None:
    """The sealed value and the organization's wrapped data key, read in one statement
    (so one snapshot, whatever a rotation does meanwhile)."""
    cur = await conn.execute(
        "SELECT s.version, s.sealed, k.key_version, k.wrapped FROM organization_secrets s"
        " JOIN secret_data_keys k ON k.organization_id = s.organization_id"
        " WHERE s.organization_id = %s AND s.name = %s",
        (org_id, name),
    )
    return await cur.fetchone()


async def put(conn: Conn, secret: Row) -> Row:
    """Insert or replace (organization_id, name) with ``secret``'s version and value."""
    cur = await conn.execute(
        "INSERT INTO organization_secrets (organization_id, name, version, sealed,"
        " updated_by, updated_by_type) VALUES (%(organization_id)s, %(name)s, %(version)s,"
        " %(sealed)s, %(updated_by)s, %(updated_by_type)s)"
        " ON CONFLICT (organization_id, name) DO UPDATE SET version = excluded.version,"
        " sealed = excluded.sealed, updated_by = excluded.updated_by,"
        " updated_by_type = excluded.updated_by_type, updated_at = now()"
        f" RETURNING {SHOWN}",
        secret,
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def delete(conn: Conn, org_id: UUID, name: str) -> Row | None:
    cur = await conn.execute(
        "DELETE FROM organization_secrets WHERE organization_id = %s AND name = %s"
        f" RETURNING {SHOWN}",
        (org_id, name),
    )
    return await cur.fetchone()


async def in_org(conn: Conn, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
    return await paged(
        conn,
        f"SELECT {SHOWN}, count(*) OVER () AS total FROM organization_secrets"
        " WHERE organization_id = %s ORDER BY name",
        (org_id,),
        limit,
        offset,
    )


# --- rotation (``treadle secrets rotate-key``) ---


async def lock_keyring(conn: Conn) -> int:
    """The current version, locked until the transaction ends: waits for data-key
    creations in flight (they hold it FOR SHARE) and holds back new ones."""
    cur = await conn.execute("SELECT current_version FROM secret_keyring FOR UPDATE")
    row = await cur.fetchone()
    assert row is not None
    return int(row["current_version"])


async def set_current_version(conn: Conn, version: int) -> None:
    await conn.execute("UPDATE secret_keyring SET current_version = %s", (version,))


async def any_below(conn: Conn, version: int) -> bool:
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM secret_data_keys WHERE key_version < %s) AS found",
        (version,),
    )
    row = await cur.fetchone()
    return bool(row and row["found"])


async def stale_data_keys(conn: Conn, version: int, limit: int) -> list[Row]:
    """Up to ``limit`` data keys under a version older than ``version``, locked; those a
    request holds are skipped now and taken by a later batch."""
    cur = await conn.execute(
        "SELECT organization_id, key_version, wrapped FROM secret_data_keys"
        " WHERE key_version < %s ORDER BY organization_id LIMIT %s FOR UPDATE SKIP LOCKED",
        (version, limit),
    )
    return await cur.fetchall()


async def rewrap(conn: Conn, org_id: UUID, key_version: int, wrapped: bytes) -> None:
    await conn.execute(
        "UPDATE secret_data_keys SET key_version = %s, wrapped = %s, rewrapped_at = now()"
        " WHERE organization_id = %s",
        (key_version, wrapped, org_id),
    )


async def versions_in_use(conn: Conn) -> dict[int, int]:
    """How many data keys each key version wraps."""
    cur = await conn.execute(
        "SELECT key_version, count(*) AS n FROM secret_data_keys GROUP BY key_version"
    )
    return {int(r["key_version"]): int(r["n"]) for r in await cur.fetchall()}
