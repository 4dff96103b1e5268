"""Whole blobs of a remote store kept on the local disk, by digest, within a byte budget.

Why: Granian's RSGI response streams queue what they are given without bound, so bytes
read from S3 faster than a client takes them would pile up in the server's memory. A
blob copied here first (chunk by chunk, memory flat) is then sent with the server's own
file sending, which reads it only as fast as the client takes it.

A blob's bytes never change (its name is its digest), so a copy is valid for as long as
it exists, in every process: the directory is the cache's only state. Copies are written
under ``tmp/`` and renamed into place, so no reader sees half a copy; a read marks its
copy as used (its mtime); placing a new copy evicts the least recently used ones until
the whole fits in ``capacity`` bytes. A copy evicted while the server is sending it is
still read to its end (an open file outlives its name); only one evicted in the moment
between its read marking it as the most recently used and the server opening it would
fail that download, which a budget of more than a few blobs makes all but impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path


class BlobCache:
    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.capacity = capacity
        # Concurrent misses of one blob in this process share one copy.
        self._copying: dict[Path, asyncio.Future[Path | None]] = {}

    async def start(self) -> None:
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)

    async def path(self, key: str, copy: Callable[[Path], bool]) -> Path | None:
        """The local copy of the blob at ``key`` (a relative path), made with ``copy``
        (blocking: it writes the blob to the path it is given, False if there is no such
        blob) when there is none; None when the blob does not exist."""
        target = self.root / key
        if await asyncio.to_thread(_touch, target):
            return target
        pending = self._copying.get(target)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self._fill, target, copy))
            self._copying[target] = pending
            pending.add_done_callback(lambda _: self._copying.pop(target, None))
        return await asyncio.shield(pending)

    def _fill(self, target: Path, copy: Callable[[Path], bool]) -> Path | None:
        part = self.tmp / uuid.uuid4().hex
        try:
            if not copy(part):
                return None
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        self._evict(keep=target)
        return target

    def _evict(self, keep: Path) -> None:
        copies: list[tuple[float, int, str]] = []
        for folder, dirs, files in os.walk(self.root):
            if folder == str(self.root):
                dirs[:] = [d for d in dirs if d != "tmp"]
            for name in files:
                path = os.path.join(folder, name)
                with contextlib.suppress(FileNotFoundError):
                    stat = os.stat(path)
                    copies.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in copies)
        for _, size, path in sorted(copies):
            if total <= self.capacity:
                break
            if path != str(keep):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                total -= size

    async def drop(self, key: str) -> None:
        """Forget the copy of a blob that is being removed from the store."""
        await asyncio.to_thread(_unlink, self.root / key)


def _touch(path: Path) -> bool:
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
