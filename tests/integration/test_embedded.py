"""The fresh-machine path: no URLs configured, so treadle runs its own PostgreSQL and Valkey."""

from __future__ import annotations

import subprocess

import psutil

from tests.support.api import PASSWORD, envelope, new_email, signup
from tests.support.servers import free_port, start_server


def _processes_using(path: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if path in cmd and "pytest" not in cmd:
            found.append(cmd)
    return found


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_serve_with_embedded_storage_keeps_data_across_restarts(tmp_path) -> None:
    data_dir = tmp_path / "data"
    env = {
        "TREADLE_DATA_DIR": str(data_dir),
        "TREADLE_PORT": str(free_port()),
        "TREADLE_ARGON2_TIME_COST": "1",
        "TREADLE_ARGON2_MEMORY_KIB": "8192",
    }
    server = start_server("granian", env, tmp_path / "first.log")
    try:
        with server.client() as client:
            ready = envelope(client.get("/readyz"))["data"]
            email = new_email("embedded")
            signup(client, email)
        assert ready["checks"] == {"postgres": "ok", "redis": "ok"}
        valkey_pid = int((data_dir / "valkey" / "valkey.pid").read_text())
        postgres_pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        elapsed = server.terminate()
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log()
    assert elapsed < 10
    # Both embedded servers stopped with it...
    assert _gone(valkey_pid)
    assert _gone(postgres_pid)
    assert _processes_using(str(data_dir)) == []
    # ...and their data stayed.
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    assert (data_dir / "secret.key").exists()

    env["TREADLE_PORT"] = str(free_port())
    again = start_server("granian", env, tmp_path / "second.log")
    try:
        with again.client() as client:
            login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
    finally:
        again.terminate()
        again.stop()


def test_migrate_command_with_embedded_storage(tmp_path) -> None:
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    env["TREADLE_DATA_DIR"] = str(tmp_path / "data")
    done = subprocess.run(
        [sys.executable, "-m", "treadle.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "migrated" in done.stdout
