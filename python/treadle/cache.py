"""A small in-process cache with a time-to-live, dropped by key on invalidation."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class TTLCache(Generic[K, V]):
    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: dict[K, tuple[float, V]] = {}
        # Bumped by every drop: a fill that read the source before a drop must not land.
        self.generation = 0

    def get(self, key: K) -> V | object:
        """The value, or ``MISSING`` (compare with ``is``) when absent or stale."""
        hit = self._data.get(key)
        if hit is None or hit[0] < time.monotonic():
            return _MISSING
        return hit[1]

    def put(self, key: K, value: V, generation: int | None = None) -> None:
        if generation is not None and generation != self.generation:
            return
        if len(self._data) >= self.max_entries:
            # Crude but bounded: entries come back on the next miss.
            self._data.clear()
        self._data[key] = (time.monotonic() + self.ttl, value)

    async def load(self, key: K, loader: Callable[[], Awaitable[V]]) -> V:
        """Fill a miss: load the value and keep it, unless it was invalidated meanwhile.
        Callers check ``get`` first, so a hit costs no coroutine."""
        generation = self.generation
        value = await loader()
        self.put(key, value, generation)
        return value

    def drop(self, key: K) -> None:
        self.generation += 1
        self._data.pop(key, None)

    def clear(self) -> None:
        self.generation += 1
        self._data.clear()


MISSING = _MISSING
