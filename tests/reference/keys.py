"""Reference API key format check: the rules ``treadle._core.api_key_check`` enforces.

A key is ``trd_live_`` or ``trd_test_``, 32 base62 characters of body, then the CRC-32
(zlib) of prefix + body as 6 base62 digits, most significant first.
"""

from __future__ import annotations

import string
import zlib

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PREFIXES = ("trd_live_", "trd_test_")
KEY_LEN = 9 + 32 + 6


def checksum(prefix_and_body: str) -> str:
    value = zlib.crc32(prefix_and_body.encode())
    digits = ""
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    return digits


def api_key_check(raw: str) -> bool:
    if len(raw) != KEY_LEN or raw[:9] not in PREFIXES:
        return False
    body, given = raw[9:41], raw[41:]
    if any(c not in BASE62 for c in body + given):
        return False
    return given == checksum(raw[:41])
