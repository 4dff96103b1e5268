"""The users table."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from treadle.store.db import Conn, paged

Row = dict[str, Any]

PUBLIC = (
    "id, email, display_name, is_platform_admin, email_verified_at, locked_until,"
    " failed_logins, created_at, updated_at, deleted_at"
)

SORTABLE = {"created_at", "email"}


async def insert(conn: Conn, user_id: UUID, email: str, name: str, password_hash: str) -> Row:
    cur = await conn.execute(
        f"INSERT INTO users (id, email, display_name, password_hash) VALUES (%s, %s, %s, %s)"
        f" RETURNING {PUBLIC}",
        (user_id, email, name, password_hash),
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def by_id(conn: Conn, user_id: UUID, *, live: bool = True) -> Row | None:
    where = " AND deleted_at IS NULL" if live else ""
    cur = await conn.execute(f"SELECT {PUBLIC} FROM users WHERE id = %s{where}", (user_id,))
    return await cur.fetchone()


async def credentials_by_email(conn: Conn, email: str, *, lock: bool = False) -> Row | None:
    cur = await conn.execute(
        f"SELECT {PUBLIC}, password_hash FROM users WHERE email = %s AND deleted_at IS NULL"
        + (" FOR UPDATE" if lock else ""),
        (email,),
    )
    return await cur.fetchone()


async def password_hash(conn: Conn, user_id: UUID) -> str | None:
    cur = await conn.execute(
        "SELECT password_hash FROM users WHERE id = %s AND deleted_at IS NULL FOR UPDATE",
        (user_id,),
    )
    row = await cur.fetchone()
    return None if row is None else str(row["password_hash"])


async def record_failure(conn: Conn, user_id: UUID, max_failures: int, lock_seconds: int) -> Row:
    """Count a failed login; the one that reaches the limit locks the account."""
    cur = await conn.execute(
        "UPDATE users SET"
        " failed_logins = CASE WHEN failed_logins + 1 >= %(max)s THEN 0 ELSE failed_logins + 1 END,"
        " locked_until = CASE WHEN failed_logins + 1 >= %(max)s"
        "   THEN now() + make_interval(secs => %(secs)s) ELSE locked_until END"
        " WHERE id = %(id)s RETURNING failed_logins, locked_until",
        {"id": user_id, "max": max_failures, "secs": lock_seconds},
    )
    row = await cur.fetchone()
    assert row is not None
    return row


async def lockout_state(conn: Conn, user_id: UUID) -> Row | None:
    """The lockout counters, row locked: sign-in attempts on one account queue here."""
    cur = await conn.execute(
        "SELECT failed_logins, locked_until FROM users WHERE id = %s FOR UPDATE", (user_id,)
    )
    return await cur.fetchone()


async def clear_failures_unless_locked(
    conn: Conn, user_id: UUID, own_lock: datetime | None
) -> bool:
    """Clear the counters after a right password, unless another attempt locked the
    account meanwhile (``own_lock``: the lock this attempt itself set, which it may lift)."""
    cur = await conn.execute(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = %s"
        " AND (locked_until IS NULL OR locked_until <= now()"
        "      OR locked_until = %s::timestamptz) RETURNING id",
        (user_id, own_lock),
    )
    return await cur.fetchone() is not None


async def clear_failures(conn: Conn, user_id: UUID) -> None:
    await conn.execute(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = %s", (user_id,)
    )


async def set_password(conn: Conn, user_id: UUID, password_hash: str) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = %s, password_changed_at = now(), updated_at = now(),"
        " failed_logins = 0, locked_until = NULL WHERE id = %s",
        (password_hash, user_id),
    )


async def mark_verified(conn: Conn, user_id: UUID) -> Row | None:
    cur = await conn.execute(
        "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()),"
        f" updated_at = now() WHERE id = %s AND deleted_at IS NULL RETURNING {PUBLIC}",
        (user_id,),
    )
    return await cur.fetchone()


async def set_platform_admin(conn: Conn, email: str, value: bool) -> Row | None:
    cur = await conn.execute(
        "UPDATE users SET is_platform_admin = %s, updated_at = now()"
        f" WHERE email = %s AND deleted_at IS NULL RETURNING {PUBLIC}",
        (value, email),
    )
    return await cur.fetchone()


async def soft_delete(conn: Conn, user_id: UUID) -> Row | None:
    cur = await conn.execute(
        "UPDATE users SET deleted_at = now(), updated_at = now()"
        f" WHERE id = %s AND deleted_at IS NULL RETURNING {PUBLIC}",
        (user_id,),
    )
    return await cur.fetchone()


async def page(
    conn: Conn,
    *,
    q: str | None,
    sort_by: str,
    desc: bool,
    limit: int,
    offset: int,
    include_deleted: bool,
) -> tuple[list[Row], int]:
    if sort_by not in SORTABLE:
        raise ValueError(sort_by)
    where = ["TRUE"]
    args: list[Any] = []
    if not include_deleted:
        where.append("deleted_at IS NULL")
    if q:
        where.append("(email ILIKE %s OR display_name ILIKE %s)")
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args += [pattern, pattern]
    order = "DESC" if desc else "ASC"
    return await paged(
        conn,
        f"SELECT {PUBLIC}, count(*) OVER () AS total FROM users WHERE {' AND '.join(where)}"
        f" ORDER BY {sort_by} {order}, id {order}",
        args,
        limit,
        offset,
    )


def is_locked(row: Row, now: datetime) -> bool:
    until = row.get("locked_until")
    return until is not None and until > now
