"""argon2id password hashing, off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from treadle.settings import Settings
from treadle.web.errors import ApiError

MIN_LENGTH = 10
# argon2 cost grows with input; a cap keeps a giant password from being a DoS.
MAX_LENGTH = 256


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

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored or self.decoy, password)

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
