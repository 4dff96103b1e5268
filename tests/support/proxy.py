"""A TCP proxy the tests can cut and restore, to take PostgreSQL or Redis away from a server."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.support.servers import free_port


def proxied_database(url: str) -> tuple[Proxy, str]:
    """A started proxy to the PostgreSQL at ``url``, and the URL that goes through it."""
    info = conninfo_to_dict(url)
    host, port = info.get("host") or "127.0.0.1", int(info.get("port") or 5432)
    proxy = Proxy(f"{host}/.s.PGSQL.{port}" if host.startswith("/") else host, port)
    proxy.start()
    info.update(host="127.0.0.1", port=str(proxy.port))
    return proxy, make_conninfo(**info)


class Proxy:
    def __init__(self, host: str, port: int = 0) -> None:
        """Forward to ``host:port``, or to the unix socket at ``host`` when it is a path."""
        self.target = (host, port)
        self.port = free_port()
        self.up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)

    def stop(self) -> None:
        self.cut()
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _shutdown(self) -> None:
        self._server.close()
        await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        self.up = False
        asyncio.run_coroutine_threadsafe(self._drop_all(), self._loop).result(5)

    def restore(self) -> None:
        self.up = True

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            await writer.wait_closed()
            return
        host, port = self.target
        try:
            if host.startswith("/"):
                up_reader, up_writer = await asyncio.open_unix_connection(host)
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            await writer.wait_closed()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()
        self._writers.discard(writer)
