"""Shared fixtures: real PostgreSQL and Redis, a real SMTP server, real treadle servers.

PostgreSQL and Redis come from TREADLE_TEST_DATABASE_URL / TREADLE_TEST_REDIS_URL when set,
embedded servers otherwise. Each run gets its own database and Redis key prefix.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.mailbox import Mailbox
from tests.support.receiver import Receiver
from tests.support.servers import Server, free_port, start_server
from treadle.embedded import EmbeddedPostgres, EmbeddedValkey

RUN = secrets.token_hex(4)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    admin_url = os.environ.get("TREADLE_TEST_DATABASE_URL")
    embedded = None
    if not admin_url:
        embedded = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
        admin_url = embedded.start()
    name = f"treadle_test_{RUN}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if embedded is not None:
        embedded.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("TREADLE_TEST_REDIS_URL")
    if url:
        yield url
        return
    valkey = EmbeddedValkey(tmp_path_factory.mktemp("valkey"))
    yield valkey.start()
    valkey.stop()


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    box = Receiver()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def server_env(
    database_url: str, redis_url: str, mailbox: Mailbox, tmp_path_factory
) -> dict[str, str]:
    """What every test server shares: storage, the SMTP catcher, cheap argon2 for speed."""
    return {
        "TREADLE_DATABASE_URL": database_url,
        "TREADLE_REDIS_URL": redis_url,
        "TREADLE_REDIS_PREFIX": f"treadle-test-{RUN}:",
        "TREADLE_SECRET_KEY": secrets.token_hex(32),
        "TREADLE_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}",
        "TREADLE_ARGON2_TIME_COST": "1",
        "TREADLE_ARGON2_MEMORY_KIB": "8192",
        "TREADLE_DATA_DIR": str(tmp_path_factory.mktemp("data")),
        "TREADLE_LOGIN_MAX_FAILURES": "3",
        "TREADLE_LOGIN_LOCKOUT_SECONDS": "60",
        "TREADLE_INVITATIONS_PER_HOUR": "6",
        # The suite signs up hundreds of accounts from 127.0.0.1; dedicated servers in
        # tests/api/test_abuse.py test the low default.
        "TREADLE_RATE_LIMIT_ANONYMOUS": "100000/60",
        "TREADLE_RETENTION_SWEEP_SECONDS": "1",
        "TREADLE_JOB_BACKOFF_SECONDS": "0.2",
        "TREADLE_JOB_REAP_SECONDS": "0.2",
        # Webhooks reach the tests' local receiver, and retry on a compressed schedule.
        "TREADLE_WEBHOOK_ALLOW_PRIVATE": "true",
        "TREADLE_WEBHOOK_RETRY_SCHEDULE": "0.2,0.2,0.2",
        "TREADLE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "TREADLE_WEBHOOK_POLL_SECONDS": "0.2",
    }


def _server(kind: str, env: dict[str, str], tmp: Path) -> Iterator[Server]:
    server = start_server(kind, {**env, "TREADLE_PORT": str(free_port())}, tmp / f"{kind}.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def granian_server(server_env: dict[str, str], tmp_path_factory) -> Iterator[Server]:
    yield from _server("granian", server_env, tmp_path_factory.mktemp("granian"))


@pytest.fixture(scope="session")
def robyn_server(server_env: dict[str, str], tmp_path_factory) -> Iterator[Server]:
    yield from _server("robyn", server_env, tmp_path_factory.mktemp("robyn"))


@pytest.fixture(params=["granian", pytest.param("robyn", marks=pytest.mark.robyn)])
def any_server(request: pytest.FixtureRequest) -> Server:
    """The kernel's contract holds on every adapter: tests using this run on both."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture
def server(granian_server: Server) -> Server:
    return granian_server


@pytest.fixture(scope="session")
def admin(granian_server: Server, tmp_path_factory) -> dict:
    """A platform admin, made the way an operator would: sign up, then `treadle admin grant`."""
    import subprocess
    import sys

    from tests.support.api import envelope, new_email, signup

    with granian_server.client() as client:
        account = signup(client, new_email("admin"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    env.update(granian_server.env)
    done = subprocess.run(
        [sys.executable, "-m", "treadle.cli", "admin", "grant", account["user"]["email"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with granian_server.client() as client:
        me = envelope(
            client.get("/v1/me", headers={"Authorization": f"Bearer {account['access_token']}"})
        )
    assert me["data"]["is_platform_admin"] is True
    return account
