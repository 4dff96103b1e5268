"""Secrets kept at rest: sealed with AES-256-GCM under a key derived from the server's
secret key, each bound to what it belongs to (the associated data), so a sealed value
copied onto another row does not open there."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from treadle._core import derive_key

# A sealed value: version byte, 12-byte nonce, ciphertext and tag.
VERSION = b"\x01"
NONCE_BYTES = 12


class Sealer:
    def __init__(self, secret_key: str, purpose: str) -> None:
        self._aead = AESGCM(derive_key(f"treadle 2026 sealing: {purpose}", secret_key.encode()))

    def seal(self, plain: bytes, bound_to: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return VERSION + nonce + self._aead.encrypt(nonce, plain, bound_to)

    def open(self, sealed: bytes, bound_to: bytes) -> bytes:
        """The plain value; ``ValueError`` if it was not sealed here for ``bound_to``."""
        if sealed[:1] != VERSION or len(sealed) < 1 + NONCE_BYTES + 16:
            raise ValueError("not a sealed value")
        nonce = sealed[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + NONCE_BYTES :], bound_to)
        except InvalidTag:
            raise ValueError("sealed under another key or for another record") from None
