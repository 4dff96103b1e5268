"""Where asset bytes live: the interface, and the default store on the local filesystem.

A store keeps three kinds of thing per organization, none of which holds a whole file in
memory on the way in or out:

- blobs, one per digest (``<org>/<d[:2]>/<d>`` of the digest's hex ``d``: hex the server
  computed, so no name a client chose reaches a path or a key);
- uploads in progress, written and hashed chunk by chunk, then moved into place by digest
  (``place``) or discarded (``abort``);
- link markers, one per live asset (``<org>/links/<asset id>``, holding the name and
  content type): a signed link is honoured only while its asset's marker exists, which
  is how a link stops working when its asset is deleted, with no database read.

Every blocking call runs in a worker thread, so the event loop never waits on a disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from treadle._core import ContentDigest

# What one read or write hands a thread at a time: large enough that the thread hop and
# the syscalls are a small part of the cost, small enough to keep memory flat.
CHUNK_BYTES = 1 << 20


class Upload(Protocol):
    """Bytes being received: hashed as they are written, not yet anywhere a reader looks."""

    digest: ContentDigest

    async def write(self, chunk: bytes) -> None: ...
    async def finish(self) -> None:
        """Everything is written and durable; ``digest`` is final."""

    async def abort(self) -> None:
        """Forget what was written (safe to call after ``place``: then it does nothing)."""


class Chunks(Protocol):
    """A blob's bytes (or a range of them), read chunk by chunk."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    async def __anext__(self) -> bytes: ...
    async def aclose(self) -> None: ...


class AssetStore(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def begin(self, org_id: UUID) -> Upload: ...
    async def place(self, upload: Upload, org_id: UUID, digest: str) -> None:
        """Make ``upload`` the blob ``digest`` unless that blob exists already (then the
        upload is dropped: the same digest is the same bytes)."""

    async def exists(self, org_id: UUID, digest: str) -> bool: ...
    async def remove(self, org_id: UUID, digest: str) -> None: ...
    async def read(self, org_id: UUID, digest: str, start: int, length: int) -> Chunks | None:
        """``length`` bytes of the blob from ``start``; None when there is no such blob."""

    async def put_link(self, org_id: UUID, asset_id: UUID, meta: bytes) -> None: ...
    async def get_link(self, org_id: UUID, asset_id: UUID) -> bytes | None: ...
    async def remove_link(self, org_id: UUID, asset_id: UUID) -> None: ...


def blob_key(org_id: UUID, digest: str) -> str:
    """The blob's place relative to the store's root: ``<org>/<d[:2]>/<d>``."""
    hexed = digest.removeprefix("blake3:")
    return f"{org_id}/{hexed[:2]}/{hexed}"


def link_key(org_id: UUID, asset_id: UUID) -> str:
    return f"{org_id}/links/{asset_id}"


class FileUpload:
    __slots__ = ("_file", "digest", "path")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = ContentDigest()
        self._file = path.open("xb", buffering=0)

    def _write(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[self._file.write(view) or 0 :]

    async def write(self, chunk: bytes) -> None:
        await asyncio.to_thread(self._write, chunk)

    def _finish(self) -> None:
        os.fsync(self._file.fileno())
        self._file.close()

    async def finish(self) -> None:
        await asyncio.to_thread(self._finish)

    def _abort(self) -> None:
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort)


class FileChunks:
    """``length`` bytes of a file from ``start``, opened on the first read and closed at
    the end or by ``aclose`` (which the server adapters call however the response ends).
    ``file`` names the same bytes for a server that sends files itself."""

    __slots__ = ("_file", "_left", "file")

    def __init__(self, path: Path, start: int, length: int) -> None:
        self.file = (str(path), start, start + length)
        self._file: Any = None
        self._left = length

    def __aiter__(self) -> FileChunks:
        return self

    def _read(self, size: int) -> bytes:
        if self._file is None:
            self._file = open(self.file[0], "rb", buffering=0)  # noqa: SIM115
            self._file.seek(self.file[1])
        data: bytes = self._file.read(size)
        return data

    async def __anext__(self) -> bytes:
        if self._left <= 0:
            await self.aclose()
            raise StopAsyncIteration
        try:
            chunk = await asyncio.to_thread(self._read, min(CHUNK_BYTES, self._left))
        except FileNotFoundError:
            chunk = b""
        if not chunk:  # gone, or shorter than its row says: end rather than hang
            await self.aclose()
            raise StopAsyncIteration
        self._left -= len(chunk)
        return chunk

    async def aclose(self) -> None:
        self._left = 0
        if self._file is not None:
            self._file.close()


class FileStore:
    """Blobs as files under ``root`` (``data_dir/assets``); uploads in ``root/tmp``, on the
    same filesystem, so that placing one is a rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"

    async def start(self) -> None:
        await asyncio.to_thread(self.tmp.mkdir, parents=True, exist_ok=True)

    async def stop(self) -> None:
        pass

    async def begin(self, org_id: UUID) -> Upload:
        return await asyncio.to_thread(FileUpload, self.tmp / f"{org_id}.{uuid.uuid4().hex}")

    def _place(self, upload: FileUpload, target: Path) -> None:
        if target.exists():
            upload._abort()
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(upload.path, target)
        _fsync_dir(target.parent)

    async def place(self, upload: Upload, org_id: UUID, digest: str) -> None:
        assert isinstance(upload, FileUpload)
        await asyncio.to_thread(self._place, upload, self.root / blob_key(org_id, digest))

    async def exists(self, org_id: UUID, digest: str) -> bool:
        return await asyncio.to_thread((self.root / blob_key(org_id, digest)).is_file)

    async def remove(self, org_id: UUID, digest: str) -> None:
        await asyncio.to_thread(_unlink, self.root / blob_key(org_id, digest))

    async def read(self, org_id: UUID, digest: str, start: int, length: int) -> Chunks | None:
        path = self.root / blob_key(org_id, digest)
        if not await asyncio.to_thread(path.is_file):
            return None
        return FileChunks(path, start, length)

    def _put_link(self, path: Path, meta: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{uuid.uuid4().hex}")
        part.write_bytes(meta)
        os.replace(part, path)

    async def put_link(self, org_id: UUID, asset_id: UUID, meta: bytes) -> None:
        await asyncio.to_thread(self._put_link, self.root / link_key(org_id, asset_id), meta)

    async def get_link(self, org_id: UUID, asset_id: UUID) -> bytes | None:
        return await asyncio.to_thread(_read, self.root / link_key(org_id, asset_id))

    async def remove_link(self, org_id: UUID, asset_id: UUID) -> None:
        await asyncio.to_thread(_unlink, self.root / link_key(org_id, asset_id))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync_dir(path: Path) -> None:
    """Make a rename into ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
