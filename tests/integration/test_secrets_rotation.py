"""`treadle secrets rotate-key` on a server of its own, run while the server keeps taking
writes (to organizations whose data keys are being re-wrapped, and to new ones): nothing
fails, every data key ends on the new version, every value reads back as set, and a
rotation with keys that are not the servers' is refused before it changes anything."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import bearer, create_org, envelope, signup
from tests.support.servers import Server, free_port, start_server
from tests.support.storage import own_storage
from treadle.bus.invalidation import Invalidator
from treadle.bus.redis import connect
from treadle.services.principal import Actor, Principal
from treadle.services.secrets import Secrets
from treadle.settings import Settings
from treadle.store.db import Database

pytestmark = pytest.mark.slow


@pytest.fixture
def storage(database_url: str, server_env: dict[str, str]) -> Iterator[dict[str, str]]:
    with own_storage(database_url, server_env, "secrets") as env:
        yield env


def _start(env: dict[str, str], tmp_path) -> Server:
    env = {**env, "TREADLE_PORT": str(free_port())}
    return start_server("granian", env, tmp_path / f"server-{secrets.token_hex(3)}.log")


def _put(client: httpx.Client, owner: dict, org_id: str, name: str, value: str) -> httpx.Response:
    return client.put(
        f"/v1/organizations/{org_id}/secrets/{name}", json={"value": value}, headers=bearer(owner)
    )


def _rotate(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "treadle.cli", "secrets", "rotate-key", *extra],
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _versions(env: dict[str, str]) -> dict[int, int]:
    with psycopg.connect(env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        found = conn.execute(
            "SELECT key_version, count(*) FROM secret_data_keys GROUP BY key_version"
        ).fetchall()
        ((current,),) = conn.execute("SELECT current_version FROM secret_keyring").fetchall()
    return {**dict(found), "current": current}


def _reveal_all(env: dict[str, str], values: dict[tuple[str, str], str]) -> dict:
    """Each value as ``app.secrets.reveal`` (what the providers gateway calls) opens it."""

    async def run() -> dict:
        settings = Settings.from_env(env)
        db = Database(settings.database_url, 1, 2)
        await db.open()
        # Reveals publish nothing: the bus is there because the service needs one.
        service = Secrets(settings, db, Invalidator(connect(settings.redis_url), ""))
        actor = Actor(Principal("rotation-test", "user", None, None, "", False), "r", "", "")
        try:
            return {
                (org, name): await service.reveal(actor, uuid.UUID(org), name)
                for org, name in values
            }
        finally:
            await db.close()

    return asyncio.run(run())


class Load:
    """Writes through the server from a thread until stopped: new versions of a secret in
    every existing organization in turn, and now and then a new organization's first
    secret (a data key made during the rotation). Keeps the last value of each."""

    def __init__(self, server: Server, owner: dict, orgs: list[str]) -> None:
        self.server, self.owner, self.orgs = server, owner, orgs
        self.written: dict[tuple[str, str], str] = {}
        self.failures: list[str] = []
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.server.client() as client:
            i = 0
            while not self.stop.is_set():
                if i % 7 == 6:
                    org_id = create_org(client, self.owner, f"During {i}")["id"]
                else:
                    org_id = self.orgs[i % len(self.orgs)]
                value = "live-" + secrets.token_hex(12)
                answer = _put(client, self.owner, org_id, "LIVE", value)
                listed = client.get(
                    f"/v1/organizations/{org_id}/secrets", headers=bearer(self.owner)
                )
                for response in (answer, listed):
                    if response.status_code != 200:
                        self.failures.append(response.text)
                if answer.status_code == 200:
                    self.written[(org_id, "LIVE")] = value
                self.requests += 2
                i += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join(30)


def test_rotating_while_the_server_keeps_writing_loses_nothing(
    storage: dict[str, str], tmp_path
) -> None:
    # The new key is listed on the server before the rotation, as an operator would do.
    env = {**storage, "TREADLE_SECRETS_KEYS": f"2:{secrets.token_hex(32)}"}
    server = _start(env, tmp_path)
    try:
        with server.client() as client:
            owner = signup(client)
            orgs = [create_org(client, owner, f"Org {i}")["id"] for i in range(40)]
            values: dict[tuple[str, str], str] = {}
            for org_id in orgs:
                for name in ("OPENAI_API_KEY", "db.password"):
                    value = secrets.token_hex(16)
                    assert _put(client, owner, org_id, name, value).status_code == 200
                    values[(org_id, name)] = value
        assert _versions(env) == {1: 40, "current": 1}

        with Load(server, owner, orgs) as load:
            while load.requests < 20:
                time.sleep(0.05)
            before = load.requests
            done = _rotate(env, "--batch", "3")
            during = load.requests - before
            time.sleep(0.5)
        assert done.returncode == 0, done.stderr
        assert "rotated to key version 2:" in done.stdout
        assert done.stdout.count("re-wrapped") >= 40 // 3
        assert load.failures == [] and during > 0
        versions = _versions(env)
        assert set(versions) == {2, "current"} and versions["current"] == 2
        assert versions[2] == 40 + len({org for org, _ in load.written} - set(orgs))
        everything = {**values, **load.written}
        assert _reveal_all(env, everything) == everything

        # Again, with no new key listed: the next version, derived from the secret key.
        with Load(server, owner, orgs) as load:
            while load.requests < 10:
                time.sleep(0.05)
            again = _rotate(env)
            time.sleep(0.3)
        assert again.returncode == 0, again.stderr
        assert "rotated to key version 3:" in again.stdout
        assert load.failures == []
        assert set(_versions(env)) == {3, "current"}
        everything.update(load.written)
        assert _reveal_all(env, everything) == everything

        # A server started after the rotations opens the re-wrapped keys.
        fresh = _start(env, tmp_path)
        try:
            with fresh.client() as client:
                for org_id in orgs[:5]:
                    assert _put(client, owner, org_id, "AFTER", "after").status_code == 200
                listed = client.get(f"/v1/organizations/{orgs[0]}/secrets", headers=bearer(owner))
                names = [s["name"] for s in envelope(listed)["data"]]
                assert names == ["AFTER", "LIVE", "OPENAI_API_KEY", "db.password"]
        finally:
            fresh.stop()
        assert _reveal_all(env, {(orgs[0], "AFTER"): ""}) == {(orgs[0], "AFTER"): "after"}
    finally:
        server.stop()


def test_a_rotation_with_keys_that_are_not_the_servers_is_refused_unchanged(
    storage: dict[str, str], tmp_path
) -> None:
    listed = secrets.token_hex(32)
    env = {**storage, "TREADLE_SECRETS_KEYS": f"2:{listed}"}
    server = _start(env, tmp_path)
    try:
        with server.client() as client:
            owner = signup(client)
            org_id = create_org(client, owner)["id"]
            assert _put(client, owner, org_id, "K", "v1").status_code == 200
        assert _rotate(env).returncode == 0
        assert _versions(env) == {2: 1, "current": 2}
        # The operator's shell lacks the listed key (version 2 would be derived instead),
        # or has another: refused, and nothing moves.
        wrong = secrets.token_hex(32)
        for keys in ("", f"2:{wrong}"):
            refused = _rotate({**env, "TREADLE_SECRETS_KEYS": keys})
            assert refused.returncode == 2, refused.stdout
            assert "key-encryption key of version 2 differs" in refused.stderr
            assert listed not in refused.stderr + refused.stdout
            assert wrong not in refused.stderr + refused.stdout
            assert _versions(env) == {2: 1, "current": 2}
        malformed = _rotate({**env, "TREADLE_SECRETS_KEYS": f"two:{wrong}"})
        assert malformed.returncode == 2 and wrong not in malformed.stderr
        with server.client() as client:
            assert _put(client, owner, org_id, "K", "v2").status_code == 200
        assert _reveal_all(env, {(org_id, "K"): ""}) == {(org_id, "K"): "v2"}
    finally:
        server.stop()
