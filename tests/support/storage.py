"""Storage of a test's own, for servers whose outbox, mail or keys must not mix with the
shared test servers' (those would relay its events or send its mail)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import psycopg


@contextlib.contextmanager
def own_storage(
    database_url: str, server_env: dict[str, str], tag: str
) -> Iterator[dict[str, str]]:
    """``server_env`` with a fresh database and Redis key prefix, dropped afterwards."""
    name = f"treadle_{tag}_{secrets.token_hex(4)}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            **server_env,
            "TREADLE_DATABASE_URL": psycopg.conninfo.make_conninfo(database_url, dbname=name),
            "TREADLE_REDIS_PREFIX": f"{server_env['TREADLE_REDIS_PREFIX']}{name}:",
        }
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
