"""Asset bytes in an S3-compatible bucket, through boto3 (each call in a worker thread).

boto3 rather than an asyncio client: it is the SDK AWS itself keeps, its clients are
thread-safe, and every call here moves a part of several MiB, so a thread hop per call
costs nothing that matters; aiobotocore pins exact botocore releases, which fights every
other package that needs botocore (moto among them).

An upload goes to ``<prefix><org>/tmp/<id>`` as a multipart upload of ``part_bytes``
parts (a small one as a single PUT), hashed on the way; placing it copies that object to
its digest's key on the server side and deletes it. A read of at most
``DIRECT_BYTES`` is a ranged GET, streamed; a longer one is sent from a local copy of the
blob (``asset_cache``), since a stream would hold in memory whatever the client has not
taken yet.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from uuid import UUID

from treadle._core import ContentDigest
from treadle.services.asset_cache import BlobCache
from treadle.services.asset_store import (
    CHUNK_BYTES,
    Chunks,
    FileChunks,
    Upload,
    blob_key,
    link_key,
)

# S3's own bounds: parts of 5 MiB at least (the last may be smaller), 10,000 at most.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
MAX_COPY_BYTES = 5 * 1024**3
# The most a read streams straight from S3, and so the most a slow client can leave
# queued in the server's memory; past it, reads come from the local copy.
DIRECT_BYTES = 8 * CHUNK_BYTES


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Upload:
    def __init__(self, store: S3Store, key: str) -> None:
        self.store = store
        self.key = key
        self.digest = ContentDigest()
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    async def write(self, chunk: bytes) -> None:
        await asyncio.to_thread(self.digest.update, chunk)
        self._buffer += chunk
        if len(self._buffer) >= self.store.part_bytes:
            await self._send_part()

    async def _send_part(self) -> None:
        client, bucket = self.store.client, self.store.bucket
        if self._upload_id is None:
            made = await asyncio.to_thread(
                client.create_multipart_upload, Bucket=bucket, Key=self.key
            )
            self._upload_id = made["UploadId"]
        if len(self._parts) >= MAX_PARTS:
            raise ValueError("too many parts for one S3 upload; raise asset_s3_part_bytes")
        number = len(self._parts) + 1
        body, self._buffer = bytes(self._buffer), bytearray()
        sent = await asyncio.to_thread(
            client.upload_part,
            Bucket=bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )
        self._parts.append({"PartNumber": number, "ETag": sent["ETag"]})

    async def finish(self) -> None:
        client, bucket = self.store.client, self.store.bucket
        if self._upload_id is None:
            body, self._buffer = bytes(self._buffer), bytearray()
            await asyncio.to_thread(client.put_object, Bucket=bucket, Key=self.key, Body=body)
            return
        if self._buffer:
            await self._send_part()
        await asyncio.to_thread(
            client.complete_multipart_upload,
            Bucket=bucket,
            Key=self.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        client, bucket = self.store.client, self.store.bucket
        if self._upload_id is not None:
            await asyncio.to_thread(
                client.abort_multipart_upload,
                Bucket=bucket,
                Key=self.key,
                UploadId=self._upload_id,
            )
        await asyncio.to_thread(client.delete_object, Bucket=bucket, Key=self.key)


class S3Chunks:
    """A GET's streaming body, read ``CHUNK_BYTES`` at a time."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def __aiter__(self) -> S3Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk: bytes = await asyncio.to_thread(self._body.read, CHUNK_BYTES)
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._body.close()


class S3Store:
    def __init__(
        self,
        cache: BlobCache,
        url: str,
        bucket: str,
        region: str,
        prefix: str = "",
        access_key: str = "",
        secret_key: str = "",
        part_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.cache = cache
        self.url = url
        self.bucket = bucket
        self.region = region
        self.prefix = prefix
        self.access_key = access_key
        self.secret_key = secret_key
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)
        self.client: Any = None

    async def start(self) -> None:
        import boto3
        from botocore.config import Config

        credentials = (
            {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}
            if self.access_key
            else {}
        )
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.url or None,
            region_name=self.region,
            config=Config(
                max_pool_connections=64,
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
            **credentials,
        )
        await self.cache.start()

    async def stop(self) -> None:
        if self.client is not None:
            self.client.close()

    def _key(self, relative: str) -> str:
        return self.prefix + relative

    async def begin(self, org_id: UUID) -> Upload:
        return S3Upload(self, self._key(f"{org_id}/tmp/{uuid.uuid4().hex}"))

    async def place(self, upload: Upload, org_id: UUID, digest: str) -> None:
        assert isinstance(upload, S3Upload)
        if not await self.exists(org_id, digest):
            # A copy on the server's side: the bytes never come back here. One CopyObject
            # up to its bound of 5 GiB (much the fastest), a multipart copy past it.
            source = {"Bucket": self.bucket, "Key": upload.key}
            target = self._key(blob_key(org_id, digest))
            if upload.digest.size <= MAX_COPY_BYTES:
                await asyncio.to_thread(
                    self.client.copy_object, CopySource=source, Bucket=self.bucket, Key=target
                )
            else:
                await asyncio.to_thread(self.client.copy, source, self.bucket, target)
        await upload.abort()

    async def _head(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    async def exists(self, org_id: UUID, digest: str) -> bool:
        return await self._head(self._key(blob_key(org_id, digest)))

    async def remove(self, org_id: UUID, digest: str) -> None:
        relative = blob_key(org_id, digest)
        await asyncio.to_thread(
            self.client.delete_object, Bucket=self.bucket, Key=self._key(relative)
        )
        await self.cache.drop(relative)

    async def _get(self, key: str, byte_range: str | None = None) -> Any:
        extra = {"Range": byte_range} if byte_range else {}
        try:
            return await asyncio.to_thread(
                self.client.get_object, Bucket=self.bucket, Key=key, **extra
            )
        except Exception as exc:
            if _missing(exc):
                return None
            raise

    def _download(self, key: str, path: Any) -> bool:
        """The object at ``key`` written to ``path``, a chunk at a time (blocking)."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        try:
            with open(path, "xb") as file:
                while chunk := body.read(CHUNK_BYTES):
                    file.write(chunk)
        finally:
            body.close()
        return True

    async def read(self, org_id: UUID, digest: str, start: int, length: int) -> Chunks | None:
        if length > DIRECT_BYTES:
            relative = blob_key(org_id, digest)
            key = self._key(relative)
            path = await self.cache.path(relative, lambda part: self._download(key, part))
            return None if path is None else FileChunks(path, start, length)
        byte_range = f"bytes={start}-{start + length - 1}" if length else None
        got = await self._get(self._key(blob_key(org_id, digest)), byte_range)
        if got is None:
            return None
        if not length:
            got["Body"].close()
            return S3Chunks(_Empty())
        return S3Chunks(got["Body"])

    async def put_link(self, org_id: UUID, asset_id: UUID, meta: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(link_key(org_id, asset_id)),
            Body=meta,
        )

    async def get_link(self, org_id: UUID, asset_id: UUID) -> bytes | None:
        got = await self._get(self._key(link_key(org_id, asset_id)))
        if got is None:
            return None
        body = got["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def remove_link(self, org_id: UUID, asset_id: UUID) -> None:
        await asyncio.to_thread(
            self.client.delete_object,
            Bucket=self.bucket,
            Key=self._key(link_key(org_id, asset_id)),
        )


class _Empty:
    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass
