"""Content-addressed assets with signed links (issue 13).

An upload streams into the asset store while it is hashed (BLAKE3, in the Rust core);
once complete, one transaction, under an advisory lock on (organization, digest), makes
the blob's row if missing, moves the bytes into place unless that blob is stored already,
and adds the asset row. Deleting an asset's row deletes its blob's row when no other asset
points at it, and the bytes after the commit, under the same lock, only if the row is still
gone: an upload of the same content meanwhile keeps them. A crash can leave bytes no row
points at (reused by the next upload of that content), never a row without its bytes.

Signed links carry the asset id, organization, digest and expiry, keyed-BLAKE3-signed with
a key derived from the server's secret. They are checked with no database read; they work
only while the asset's link marker exists in the store, and deleting the asset removes
its marker first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from treadle import _core, clock
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.asset_cache import BlobCache
from treadle.services.asset_s3 import S3Store
from treadle.services.asset_store import CHUNK_BYTES, AssetStore, Chunks, FileStore
from treadle.services.principal import Actor
from treadle.settings import Settings
from treadle.store import assets as store
from treadle.store.db import Database, after_commit

log = logging.getLogger("treadle.assets")
Row = dict[str, Any]
LINK_CONTEXT = "treadle 2026 asset download links"


def _store(settings: Settings) -> AssetStore:
    if settings.asset_store == "s3":
        return S3Store(
            BlobCache(settings.data_path / "asset-cache", settings.asset_s3_cache_bytes),
            settings.asset_s3_url,
            settings.asset_s3_bucket,
            settings.asset_s3_region,
            settings.asset_s3_prefix,
            settings.asset_s3_access_key,
            settings.asset_s3_secret_key,
            settings.asset_s3_part_bytes,
        )
    return FileStore(settings.data_path / "assets")


class Assets:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.max_bytes = settings.asset_max_bytes
        self.max_ttl = settings.asset_link_max_ttl_seconds
        self.link_key = _core.derive_key(LINK_CONTEXT, settings.secret_key.encode())
        self.store = _store(settings)

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        await self.store.stop()

    # --- uploads ---------------------------------------------------------------------

    async def upload(
        self,
        actor: Actor,
        org_id: UUID,
        meta: Row,
        chunks: AsyncIterator[bytes],
        idempotency_key: str | None = None,
    ) -> tuple[Row, bool]:
        """Store what ``chunks`` yields as a new asset with ``meta`` (name, content_type,
        labels; filled in by the time ``chunks`` ends). Returns the asset and whether it
        was made now (False: a retry with the same Idempotency-Key found it)."""
        upload = await self.store.begin(org_id)
        try:
            pending = bytearray()
            async for chunk in chunks:
                pending += chunk
                if len(pending) >= CHUNK_BYTES:
                    await upload.write(bytes(pending))
                    pending.clear()
            if pending:
                await upload.write(bytes(pending))
            del pending
            await upload.finish()
            return await self._commit(actor, org_id, meta, upload, idempotency_key)
        finally:
            try:
                await upload.abort()  # after place() it has nothing left to remove
            except Exception:
                log.exception("could not remove an unfinished upload")

    async def _commit(
        self, actor: Actor, org_id: UUID, meta: Row, upload: Any, idempotency_key: str | None
    ) -> tuple[Row, bool]:
        digest, size = upload.digest.finish(), upload.digest.size
        subject = actor.signed_in.subject
        fingerprint = _core.keyed_hash(
            self.link_key, orjson.dumps([digest, meta], option=orjson.OPT_SORT_KEYS)
        )
        async with self.db.transaction() as conn:
            if idempotency_key is not None:
                found = await store.by_idempotency_key(conn, org_id, subject, idempotency_key)
                if found is not None:
                    return _replayed(found, fingerprint), False
            await store.lock_blob(conn, org_id, digest)
            await store.ensure_blob(conn, org_id, digest, size)
            # Placed while the lock is held: whoever deletes this blob waits for the commit.
            await self.store.place(upload, org_id, digest)
            asset_id = uuid.uuid4()
            row = await store.insert(
                conn,
                {
                    **meta,
                    "id": asset_id,
                    "organization_id": org_id,
                    "size": size,
                    "digest": digest,
                    "created_by": subject,
                    "idempotency_key": idempotency_key,
                    "fingerprint": fingerprint,
                },
            )
            if not row:  # the same key committed by a concurrent upload: that one is it
                assert idempotency_key is not None
                found = await store.by_idempotency_key(conn, org_id, subject, idempotency_key)
                assert found is not None
                return _replayed(found, fingerprint), False
            await self._mark(row)
            await audit.record(conn, actor, org_id, "asset.create", "asset", asset_id, after=row)
        return row, True

    async def _mark(self, asset: Row) -> None:
        meta = {k: asset[k] for k in ("name", "content_type", "size")}
        await self.store.put_link(asset["organization_id"], asset["id"], orjson.dumps(meta))

    # --- reads -----------------------------------------------------------------------

    async def get(self, asset_id: UUID) -> Row:
        async with self.db.connection() as conn:
            asset = await store.get(conn, asset_id)
        if asset is None:
            raise ApiError.not_found(f"no asset with id {asset_id}")
        return asset

    async def in_org(
        self,
        org_id: UUID,
        limit: int,
        before: tuple[datetime, UUID] | None,
        digest: str | None,
        labels: dict[str, str],
    ) -> list[Row]:
        async with self.db.connection() as conn:
            return await store.in_org(conn, org_id, limit, before, digest, labels)

    async def has_digest(self, org_id: UUID, digest: str) -> bool:
        async with self.db.connection() as conn:
            return await store.has_blob(conn, org_id, digest)

    async def read(self, org_id: UUID, digest: str, start: int, length: int) -> Chunks:
        chunks = await self.store.read(org_id, digest, start, length)
        if chunks is None:
            raise ApiError.not_found("this asset's content is gone")
        return chunks

    # --- deletion --------------------------------------------------------------------

    async def delete(self, actor: Actor, asset_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            asset = await store.get(conn, asset_id, lock=True)
            if asset is None:
                raise ApiError.not_found(f"no asset with id {asset_id}")
            org_id, digest = asset["organization_id"], asset["digest"]
            # First: should the rest fail, the asset stays without working links (a new
            # link puts its marker back), never deleted with links that still work.
            await self.store.remove_link(org_id, asset_id)
            await store.lock_blob(conn, org_id, digest)
            await store.delete(conn, asset_id)
            unused = await store.drop_blob_if_unused(conn, org_id, digest)
            await audit.record(conn, actor, org_id, "asset.delete", "asset", asset_id, asset)
        if unused:
            await after_commit(lambda: self._sweep(org_id, digest))
        return asset

    async def _sweep(self, org_id: UUID, digest: str) -> None:
        """Remove a blob's bytes once its row is gone, unless an upload brought it back."""
        try:
            async with self.db.transaction() as conn:
                await store.lock_blob(conn, org_id, digest)
                if not await store.has_blob(conn, org_id, digest):
                    await self.store.remove(org_id, digest)
        except Exception:
            log.exception("could not remove an unused blob", extra={"digest": digest})

    # --- signed links ----------------------------------------------------------------

    def _sign(self, asset_id: str, org_id: str, digest: str, expires: int) -> str:
        message = f"asset-link\n{asset_id}\n{org_id}\n{digest}\n{expires}".encode()
        return _core.keyed_hash(self.link_key, message)

    async def link(self, asset: Row, ttl_seconds: int) -> Row:
        """A download URL for ``asset`` that works for ``ttl_seconds`` with no credentials."""
        await self._mark(asset)  # puts back a marker a failed deletion took away
        expires = clock.epoch() + ttl_seconds
        asset_id, org_id = str(asset["id"]), str(asset["organization_id"])
        digest = asset["digest"]
        sig = self._sign(asset_id, org_id, digest, expires)
        path = (
            f"/v1/assets/{asset_id}/download?org={org_id}"
            f"&digest={digest.removeprefix('blake3:')}&expires={expires}&sig={sig}"
        )
        return {
            "url": self.settings.base_url + path,
            "path": path,
            "expires_at": datetime.fromtimestamp(expires, UTC),
            "ttl_seconds": ttl_seconds,
        }

    async def by_link(self, asset_id: str, org_id: str, digest: str, expires: int, sig: str) -> Row:
        """The asset a signed link names (org, digest, name, content type), checked with no
        database read: the signature, the expiry, and the asset's link marker."""
        expected = self._sign(asset_id, org_id, digest, expires)
        if not _core.constant_time_eq(expected.encode(), sig.encode()):
            raise ApiError.forbidden("this link's signature does not match; ask for a new link")
        now = clock.epoch()
        if expires <= now:
            raise ApiError.forbidden("this link has expired; ask for a new link")
        if expires > now + self.max_ttl + 60:
            raise ApiError.forbidden("this link outlives the longest a link may live")
        org, ident = UUID(org_id), UUID(asset_id)
        marker = await self.store.get_link(org, ident)
        if marker is None:
            raise ApiError.not_found(f"no asset with id {asset_id}")
        meta = orjson.loads(marker)
        return {"id": ident, "organization_id": org, "digest": digest, **meta}


def _replayed(found: Row, fingerprint: str) -> Row:
    stored = found.pop("fingerprint")
    if not _core.constant_time_eq((stored or "").encode(), fingerprint.encode()):
        raise ApiError(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different upload; use a new key",
        )
    return found
