"""The shape every background loop of a server process shares."""

from __future__ import annotations

import asyncio
import contextlib


class Background:
    """One task per process: ``start`` with the app, ``stop`` (cancel and wait) on shutdown."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        raise NotImplementedError
