"""Starting up: configured servers that are down, concurrent migrations, the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.support.servers import free_port
from treadle.settings import PLACEHOLDER_SECRET_KEYS
from treadle.store.migrate import migrate, migrations


def _cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    return subprocess.run(
        [sys.executable, "-m", "treadle.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("which", ["TREADLE_DATABASE_URL", "TREADLE_REDIS_URL"])
def test_unreachable_configured_server_is_one_line(server_env: dict[str, str], which: str) -> None:
    dead = free_port()
    url = (
        f"postgresql://nobody@127.0.0.1:{dead}/x"
        if "DATABASE" in which
        else f"redis://127.0.0.1:{dead}/0"
    )
    done = _cli("serve", env={**server_env, which: url, "TREADLE_PORT": str(free_port())})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    name = "PostgreSQL" if "DATABASE" in which else "Redis"
    assert lines[0].startswith(f"treadle: cannot reach {name} at 127.0.0.1:{dead}")
    assert "Traceback" not in done.stderr


def test_bad_setting_is_one_line() -> None:
    done = _cli("serve", "--workers", "0", env={})
    assert done.returncode == 2
    assert done.stderr.strip() == "treadle: workers must be at least 1, not 0"


def test_version_command() -> None:
    from treadle import __version__

    assert _cli("version", env={}).stdout.strip() == __version__


def test_concurrent_migrations_apply_each_file_once(database_url: str) -> None:
    name = "treadle_migrate_race"
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: migrate(url), range(6)))
        applied = [name for result in results for name in result]
        assert sorted(applied) == sorted(n for _, n, _ in migrations())
        with psycopg.connect(url) as conn:
            count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert count == (len(migrations()),)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("change-me-to-64-hex-chars", "is the placeholder from docker/compose.yaml"),
        ("a" * 31, "is shorter than 32 bytes"),
    ],
)
def test_a_weak_secret_key_refuses_to_start(tmp_path, key: str, why: str) -> None:
    done = _cli("serve", env={"TREADLE_SECRET_KEY": key, "TREADLE_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"treadle: TREADLE_SECRET_KEY {why}; make one with:")


def test_the_compose_files_placeholder_is_the_one_refused() -> None:
    compose = (Path(__file__).parents[2] / "docker" / "compose.yaml").read_text()
    found = re.search(r"TREADLE_SECRET_KEY: \$\{TREADLE_SECRET_KEY:-([^}]+)\}", compose)
    assert found, "docker/compose.yaml no longer sets TREADLE_SECRET_KEY as expected"
    assert found.group(1) in PLACEHOLDER_SECRET_KEYS


def _dead_storage() -> dict[str, str]:
    """Storage that cannot be reached: serve stops right after settling its secret key."""
    return {
        "TREADLE_DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/x",
        "TREADLE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }


def test_the_generated_secret_key_is_whole_and_private(tmp_path) -> None:
    done = _cli("serve", env={**_dead_storage(), "TREADLE_DATA_DIR": str(tmp_path)})
    assert "cannot reach PostgreSQL" in done.stderr
    key_file = tmp_path / "secret.key"
    key = key_file.read_text()
    assert len(key) == 64 and int(key, 16) >= 0
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]  # no temp file left
    again = _cli("serve", env={**_dead_storage(), "TREADLE_DATA_DIR": str(tmp_path)})
    assert "cannot reach PostgreSQL" in again.stderr
    assert key_file.read_text() == key  # kept, not regenerated


@pytest.mark.parametrize("content", ["", "\n", "0123abcd"])
def test_an_empty_or_short_key_file_refuses_to_start(tmp_path, content: str) -> None:
    key_file = tmp_path / "secret.key"
    key_file.write_text(content)
    done = _cli("serve", env={**_dead_storage(), "TREADLE_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"treadle: the secret key in {key_file} is shorter than 32 bytes")
    assert "delete the file" in lines[0]
    assert key_file.read_text() == content  # left for the operator to look at
