"""Encrypted credentials of organizations (issue 13), by envelope encryption.

Each organization has a data key (32 random bytes) that seals its values with AES-256-GCM
(``treadle.sealing``), each value bound to (organization, name, version). The data key is
stored wrapped under a platform key-encryption key (KEK) of some version, bound to the
organization. The KEK of version N comes from ``settings.secrets_keys`` when N is listed
there, from ``settings.secret_key`` otherwise (with N in the derivation either way).

Rotation (``rotate_key``) moves the database's current version on, then re-wraps data keys
in small transactions. The data keys themselves do not change, so values are never
re-sealed, and a server opens a data key under whichever version its row says: servers
keep answering throughout, before, during and after.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from treadle.bus.invalidation import Invalidator
from treadle.errors import ApiError
from treadle.sealing import Sealer
from treadle.services import audit
from treadle.services.principal import Actor
from treadle.settings import Settings, SettingsError, secret_key_problem
from treadle.store import secrets as store
from treadle.store.db import Conn, Database

log = logging.getLogger("treadle.secrets")

Row = dict[str, Any]
# Characters (what the document's maxLength counts): up to 256 KiB as UTF-8.
MAX_VALUE_CHARS = 64 * 1024
# The invalidation published when a secret is replaced or deleted: "<organization>/<name>".
CHANGED = "secret"
# Letters, digits, '_', '.', '-'; not "." or "..", which clients rewrite in a URL path.
# Written as the house's document patterns are ((?!\n)$, not \Z), to serve there too.
NAME_PATTERN = r"^(?!\.{1,2}(?!\n)$)[A-Za-z0-9_.-]{1,128}(?!\n)$"
NAME = re.compile(NAME_PATTERN)
NAME_RULE = "1 to 128 letters, digits, '_', '.' or '-' (not '.' or '..')"
DATA_KEY_BYTES = 32
# Sealed under each KEK version, so a server can tell its key of a version from another.
_CHECK_PLAIN = b"treadle secrets key check"


def parse_keys(raw: str) -> dict[int, str]:
    """``settings.secrets_keys`` ("VERSION:KEY,…") as {version: key}."""
    keys: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        version, sep, key = part.partition(":")
        if not sep or not version.isascii() or not version.isdigit() or int(version) < 1:
            # Never the part itself in the message: it holds a key.
            raise SettingsError(
                "TREADLE_SECRETS_KEYS must be comma-separated VERSION:KEY pairs with"
                f" versions from 1 (entry {len(keys) + 1} is not)"
            )
        problem = secret_key_problem(key)
        if problem:
            raise SettingsError(f"TREADLE_SECRETS_KEYS: the key of version {version} {problem}")
        if int(version) in keys:
            raise SettingsError(f"TREADLE_SECRETS_KEYS lists version {int(version)} twice")
        keys[int(version)] = key.strip()
    return keys


class KeyMismatch(Exception):
    """A data key, or a version's check, does not open with this process's KEK."""


class Keyring:
    """The platform KEKs by version; wraps and unwraps organizations' data keys."""

    def __init__(self, secret_key: str, listed: dict[int, str]) -> None:
        self.secret_key = secret_key
        self.listed = listed
        self._keks: dict[int, Sealer] = {}

    def kek(self, version: int) -> Sealer:
        sealer = self._keks.get(version)
        if sealer is None:
            root = self.listed.get(version, self.secret_key)
            sealer = Sealer(root, f"secrets key-encryption key v{version}")
            self._keks[version] = sealer
        return sealer

    def next_version(self, current: int) -> int:
        """What a rotation from ``current`` moves to: the highest listed version above
        it, or the next one (derived from the secret key)."""
        return max(current + 1, max(self.listed, default=0))

    def check_value(self, version: int) -> bytes:
        return self.kek(version).seal(_CHECK_PLAIN, b"check:%d" % version)

    def opens_check(self, version: int, check_value: bytes) -> bool:
        try:
            plain = self.kek(version).open(check_value, b"check:%d" % version)
        except ValueError:
            return False
        return hmac.compare_digest(plain, _CHECK_PLAIN)

    def wrap(self, org_id: UUID, version: int, data_key: bytes) -> bytes:
        return self.kek(version).seal(data_key, _key_bound(org_id))

    def unwrap(self, org_id: UUID, version: int, wrapped: bytes) -> bytes:
        try:
            return self.kek(version).open(wrapped, _key_bound(org_id))
        except ValueError:
            raise KeyMismatch(
                f"the data key of organization {org_id} does not open with this process's"
                f" key of version {version}: is TREADLE_SECRETS_KEYS (and TREADLE_SECRET_KEY)"
                " the same on every server and for `treadle secrets rotate-key`?"
            ) from None


def _key_bound(org_id: UUID) -> bytes:
    return b"data-key:" + org_id.bytes


def _value_bound(org_id: UUID, name: str, version: int) -> bytes:
    # Fixed-width fields first, so no two (organization, version, name) give the same bytes.
    return org_id.bytes + version.to_bytes(8, "big") + name.encode()


def _values(data_key: bytes) -> Sealer:
    return Sealer(data_key.hex(), "organization secret values")


def seal_value(data_key: bytes, org_id: UUID, name: str, version: int, plain: bytes) -> bytes:
    return _values(data_key).seal(plain, _value_bound(org_id, name, version))


def open_value(data_key: bytes, org_id: UUID, name: str, version: int, sealed: bytes) -> bytes:
    """The plain value; ``ValueError`` if it was sealed for another organization, name,
    version or data key."""
    return _values(data_key).open(sealed, _value_bound(org_id, name, version))


def check_name(name: str) -> None:
    """For a name being set: 400 naming the rule."""
    if not NAME.match(name):
        raise ApiError.validation(f"name must be {NAME_RULE}", "path.name")


def known_name(name: str) -> None:
    """For a name being looked up: one no secret can have is simply not found."""
    if not NAME.match(name):
        raise _absent(name)


def _audited(row: Row | None) -> Row | None:
    return None if row is None else {"name": row["name"], "version": row["version"]}


class Secrets:
    def __init__(self, settings: Settings, db: Database, bus: Invalidator) -> None:
        self.settings = settings
        self.db = db
        # Every process drops what it keeps of a secret that is replaced or deleted
        # (``changed``), once the change commits.
        self.bus = bus
        self.keyring = Keyring(settings.secret_key, parse_keys(settings.secrets_keys))
        # Versions whose check this process has matched (it cannot change once written).
        self._checked: set[int] = set()

    async def names(self, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            return await store.in_org(conn, org_id, limit, offset)

    async def put(self, actor: Actor, org_id: UUID, name: str, value: str) -> Row:
        """Create ``name`` (version 1) or replace its value (version + 1)."""
        check_name(name)
        if not 0 < len(value) <= MAX_VALUE_CHARS or "\x00" in value:
            # The route's schema refuses these first; a caller of the service may not.
            raise ApiError.validation(
                f"value must be 1 to {MAX_VALUE_CHARS} characters, without NUL", "$.value"
            )
        plain = value.encode()
        principal = actor.signed_in
        async with self.db.transaction() as conn:
            data_key = await self._data_key(conn, org_id)
            before = await store.get(conn, org_id, name)
            version = 1 if before is None else before["version"] + 1
            after = await store.put(
                conn,
                {
                    "organization_id": org_id,
                    "name": name,
                    "version": version,
                    "sealed": seal_value(data_key, org_id, name, version, plain),
                    "updated_by": principal.id,
                    "updated_by_type": principal.kind,
                },
            )
            action = "secret.create" if before is None else "secret.update"
            await audit.record(
                conn,
                actor,
                org_id,
                action,
                "secret",
                name,
                _audited(before),
                _audited(after),
                # No live event: viewers read events, and secret names are for admins.
                event=False,
            )
        await self.bus.publish(CHANGED, f"{org_id}/{name}")
        return after

    async def delete(self, actor: Actor, org_id: UUID, name: str) -> Row:
        """Delete ``name``; the answer is the secret as it was (without its value)."""
        known_name(name)
        async with self.db.transaction() as conn:
            # Locked as a put locks it, so the two do not interleave.
            await store.data_key(conn, org_id, lock=True)
            before = await store.delete(conn, org_id, name)
            if before is None:
                raise _absent(name)
            await audit.record(
                conn,
                actor,
                org_id,
                "secret.delete",
                "secret",
                name,
                before=_audited(before),
                event=False,
            )
        await self.bus.publish(CHANGED, f"{org_id}/{name}")
        return before

    async def reveal(self, actor: Actor, org_id: UUID, name: str) -> str:
        """The plain value of ``name``, for a service that uses it (the providers
        gateway); the use is audited (``secret.use``, without the value)."""
        known_name(name)
        async with self.db.transaction() as conn:
            row = await store.sealed_with_key(conn, org_id, name)
            if row is None:
                raise _absent(name)
            data_key = self._unwrap(org_id, row)
            try:
                plain = open_value(data_key, org_id, name, row["version"], bytes(row["sealed"]))
            except ValueError:
                # Its row was tampered with, or copied from another organization or name.
                log.error("secret %r of organization %s does not open", name, org_id)
                raise ApiError.internal() from None
            await audit.record(conn, actor, org_id, "secret.use", "secret", name, event=False)
        return plain.decode()

    async def _data_key(self, conn: Conn, org_id: UUID) -> bytes:
        """The organization's data key, its row locked until the transaction ends; made
        (under the current KEK version) when it has none."""
        row = await store.data_key(conn, org_id, lock=True)
        if row is None:
            version = await store.current_version(conn)
            await self._check(conn, version)
            wrapped = self.keyring.wrap(org_id, version, os.urandom(DATA_KEY_BYTES))
            await store.insert_data_key(conn, org_id, version, wrapped)
            # A concurrent first put may have won: then its key is the one.
            row = await store.data_key(conn, org_id, lock=True)
            assert row is not None
        return self._unwrap(org_id, row)

    def _unwrap(self, org_id: UUID, row: Row) -> bytes:
        try:
            return self.keyring.unwrap(org_id, row["key_version"], bytes(row["wrapped"]))
        except KeyMismatch as exc:
            log.error("%s", exc)
            raise ApiError.internal() from None

    async def _check(self, conn: Conn, version: int) -> None:
        """Refuse to wrap under ``version`` unless this process's key of it is the one
        the other servers use (the first to use a version records its check)."""
        if version in self._checked:
            return
        stored = await store.key_check(conn, version)
        if stored is None:
            await store.add_key_check(conn, version, self.keyring.check_value(version))
            stored = await store.key_check(conn, version)
        if stored is None or not self.keyring.opens_check(version, stored):
            log.error(
                "this server's key-encryption key of version %d differs from the one in use;"
                " set TREADLE_SECRETS_KEYS (and TREADLE_SECRET_KEY) as on the other servers",
                version,
            )
            raise ApiError.internal()
        self._checked.add(version)


def _absent(name: str) -> ApiError:
    return ApiError.not_found(f"no secret named {name!r} in this organization")


class RotationError(Exception):
    """Why ``rotate_key`` stopped (nothing it re-wrapped is lost: run it again)."""


@dataclass(frozen=True, slots=True)
class Rotation:
    version: int
    rewrapped: int
    resumed: bool


async def rotate_key(
    settings: Settings, batch: int = 100, progress: Callable[[int], None] | None = None
) -> Rotation:
    """Re-wrap every data key under a new KEK version, ``batch`` per transaction.

    The current version moves on first, in a transaction that waits for data-key creations
    in flight (so every later one uses the new version); then older data keys are re-wrapped
    until none is left. Run again after an interruption, it finishes that rotation
    instead of starting another."""
    keyring = Keyring(settings.secret_key, parse_keys(settings.secrets_keys))
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, row_factory=dict_row, autocommit=True
    ) as conn:
        async with conn.transaction():
            current = await store.lock_keyring(conn)
            resumed = await store.any_below(conn, current)
            target = current if resumed else keyring.next_version(current)
            # Refuse before changing anything when this process's keys are not the servers'.
            for version in sorted({*await store.versions_in_use(conn), target}):
                await _verify(conn, keyring, version)
            if target != current:
                await store.set_current_version(conn, target)
        done = 0
        while True:
            async with conn.transaction():
                rows = await store.stale_data_keys(conn, target, batch)
                for row in rows:
                    org_id = row["organization_id"]
                    try:
                        data_key = keyring.unwrap(org_id, row["key_version"], bytes(row["wrapped"]))
                    except KeyMismatch as exc:
                        raise RotationError(str(exc)) from None
                    await store.rewrap(conn, org_id, target, keyring.wrap(org_id, target, data_key))
            done += len(rows)
            if rows:
                if progress is not None:
                    progress(done)
                continue
            if not await store.any_below(conn, target):
                return Rotation(target, done, resumed)
            # What is left is locked by requests changing those organizations' secrets.
            await asyncio.sleep(0.05)


async def _verify(conn: Conn, keyring: Keyring, version: int) -> None:
    stored = await store.key_check(conn, version)
    if stored is None:
        await store.add_key_check(conn, version, keyring.check_value(version))
    elif not keyring.opens_check(version, stored):
        raise RotationError(
            f"this process's key-encryption key of version {version} differs from the one"
            " the servers use: give it the servers' TREADLE_SECRETS_KEYS and TREADLE_SECRET_KEY"
        )
