"""argon2id password hashing, off the event loop, a bounded number at a time.

Each hash costs tens of milliseconds of CPU and ``argon2_memory_kib`` of memory; without a
bound, a flood of logins would queue threads and memory without limit. At most
``password_hash_concurrency`` run at once per process and ``password_hash_queue`` wait;
past that the caller gets 503 with Retry-After at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from treadle.errors import ApiError
from treadle.settings import Settings

MIN_LENGTH = 10
# argon2 cost grows with input; a cap keeps a giant password from being a DoS.
MAX_LENGTH = 256

T = TypeVar("T")


class Passwords:
    def __init__(self, settings: Settings) -> None:
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against when the account does not exist, so both cases cost the same.
        self.decoy = self.hasher.hash("treadle-decoy-password")
        self.concurrency = settings.password_hash_concurrency or os.cpu_count() or 1
        self.queue = settings.password_hash_queue
        self._slots = asyncio.Semaphore(self.concurrency)
        self._waiting = 0

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        return await self._run(self._verify, stored or self.decoy, password)

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        if self._slots.locked() and self._waiting >= self.queue:
            raise ApiError.unavailable("too many password checks in progress; retry shortly", 1)
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self._slots.release()

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False


def check_new(password: str, email: str, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise ApiError.validation(f"{field} must be at least {MIN_LENGTH} characters", f"$.{field}")
    if len(password) > MAX_LENGTH:
        raise ApiError.validation(f"{field} must be at most {MAX_LENGTH} characters", f"$.{field}")
    if password.strip().lower() == email.lower():
        raise ApiError.validation(f"{field} must not be the email address", f"$.{field}")
