"""The servers http_compare.py drives: storage for treadle, and the processes it starts."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

BENCH = Path(__file__).resolve().parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass
class Storage:
    database_url: str
    redis_url: str
    redis_prefix: str
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def database(self) -> str:
        """The name of the bench's own database."""
        return str(psycopg.conninfo.conninfo_to_dict(self.database_url)["dbname"])

    def versions(self) -> dict[str, str]:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        client = redis.Redis.from_url(self.redis_url)
        try:
            info = client.info("server")
        finally:
            client.close()
        kind = "valkey" if "valkey_version" in info else "redis"
        return {
            "postgres": str(row[0]) if row else "?",
            "redis": f"{kind} {info.get('valkey_version') or info.get('redis_version')}",
        }


@contextlib.contextmanager
def storage(database_url: str, redis_url: str, tmp: Path) -> Iterator[Storage]:
    """A database and key prefix of the bench's own, on the given servers or embedded ones."""
    from treadle.embedded import EmbeddedPostgres, EmbeddedValkey

    run = secrets.token_hex(4)
    embedded: list[EmbeddedPostgres | EmbeddedValkey] = []
    name = f"treadle_bench_{run}"
    admin_url = database_url
    try:
        if not admin_url:
            pg = EmbeddedPostgres(tmp / "embedded")
            embedded.append(pg)
            admin_url = pg.start()
        if not redis_url:
            valkey = EmbeddedValkey(tmp / "embedded")
            embedded.append(valkey)
            redis_url = valkey.start()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
            yield Storage(url, redis_url, f"treadle-bench-{run}:")
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            _drop_keys(redis_url, f"treadle-bench-{run}:")
    finally:
        for server in reversed(embedded):
            server.stop()


def _drop_keys(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Target:
    """One server process (and its process group) under test."""

    name: str
    label: str
    argv: list[str]
    env: dict[str, str]
    ready_path: str
    is_treadle: bool
    log_dir: Path
    # Another framework serving treadle's GET /v1/me (bench/peers/): measured on that route.
    is_peer: bool = field(default=False, kw_only=True)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> str | None:
        """Start and wait until it answers; on failure, stop it and return why."""
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TREADLE_", "GRANIAN_"))}
        env.update({k: v.replace("{port}", str(self.port)) for k, v in self.env.items()})
        # The access log can write hundreds of MB per run: it goes to a file in the
        # temporary directory, as it would go to a file or a pipe in production.
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log = self.log_dir / f"{self.name}.log"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                cwd=BENCH,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode}"
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + self.ready_path, timeout=1) as resp,
            ):
                if resp.status == 200:
                    return None
            time.sleep(0.2)
        self.stop()
        return f"not answering {self.ready_path} after {START_TIMEOUT:.0f}s"

    def tail(self, lines: int = 15) -> list[str]:
        if self.log is None or not self.log.exists():
            return []
        return self.log.read_text(errors="replace").splitlines()[-lines:]

    def stop(self) -> None:
        """SIGTERM to the process group, then SIGKILL what is left after STOP_TIMEOUT."""
        if self.proc is None:
            return
        # Workers may run in sessions of their own (treadle's Robyn supervisor starts
        # them so), out of reach of the group signal: note them now to sweep up after.
        descendants: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(STOP_TIMEOUT)
        # The bare Robyn app does not exit on SIGTERM.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(STOP_TIMEOUT)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()


def granian_argv(app: str, workers: int) -> list[str]:
    """The command serving the RSGI ``app`` ("module:attribute", a module of bench/) with
    Granian's own CLI on {port}."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "rsgi",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        str(workers),
        app,
    ]


def bare(kind: str, workers: int, tmp: Path) -> Target:
    if kind == "granian":
        argv = granian_argv("hello_granian:app", workers)
    else:
        # Robyn's --workers are threads of one process; processes are what treadle's
        # --workers means, so N workers are N processes of one worker thread each.
        argv = [
            sys.executable,
            "hello_robyn.py",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--processes",
            str(workers),
            "--workers",
            "1",
        ]
    return Target(f"bare-{kind}", f"bare {kind}", argv, {}, "/", False, tmp)


def treadle(kind: str, workers: int, store: Storage, tmp: Path, *, access_log: bool) -> Target:
    name = f"treadle-{kind}" + ("" if access_log else "-nolog")
    env = {
        "TREADLE_DATABASE_URL": store.database_url,
        "TREADLE_REDIS_URL": store.redis_url,
        "TREADLE_REDIS_PREFIX": store.redis_prefix,
        "TREADLE_SECRET_KEY": store.secret_key,
        "TREADLE_DATA_DIR": str(tmp / name),
        # Only signup hashes a password; cheap argon2 keeps setup short and is not measured.
        "TREADLE_ARGON2_TIME_COST": "1",
        "TREADLE_ARGON2_MEMORY_KIB": "8192",
        # One token must outlive the whole run.
        "TREADLE_ACCESS_TOKEN_TTL": "7200",
        # One user (or key) sends every request: the limit check runs, but never refuses.
        "TREADLE_RATE_LIMIT_USER": "1000000/1",
        "TREADLE_RATE_LIMIT_API_KEY": "1000000/1",
    }
    if not access_log:
        env["TREADLE_ACCESS_LOG"] = "false"
    argv = [
        sys.executable,
        "-m",
        "treadle.cli",
        "serve",
        "--server",
        kind,
        "--port",
        "{port}",
        "--workers",
        str(workers),
    ]
    label = f"treadle ({kind})" + ("" if access_log else ", access log off")
    return Target(name, label, argv, env, "/healthz", True, tmp)


def peer(variant: str, workers: int, store: Storage, tmp: Path) -> Target:
    """The FastAPI peer of GET /v1/me (``bench/peers/``) on uvicorn, sessions checked by
    ``variant``: ``select`` (a query per request) or ``cache`` (invalidated through Redis)."""
    env = {
        "TREADLE_DATABASE_URL": store.database_url,
        "TREADLE_REDIS_URL": store.redis_url,
        "TREADLE_REDIS_PREFIX": store.redis_prefix,
        "TREADLE_SECRET_KEY": store.secret_key,
        "PEER_SESSIONS": variant,
    }
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "peers.fastapi_me:app",
    ]
    label = f"FastAPI peer ({variant})"
    return Target(f"peer-{variant}", label, argv, env, "/healthz", False, tmp, is_peer=True)


def signup(target: Target) -> str:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    body = {"email": email, "password": secrets.token_urlsafe(16)}
    status, data = _request(target.url + "/v1/auth/signup", body=body)
    if status != 201:
        raise RuntimeError(f"signup on {target.label} answered {status}: {data}")
    return str(data["data"]["access_token"])


def check(target: Target, path: str, headers: dict[str, str]) -> None:
    status, data = _request(target.url + path, headers=headers)
    if status != 200:
        raise RuntimeError(f"GET {path} on {target.label} answered {status}: {data}")


def _request(
    url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
