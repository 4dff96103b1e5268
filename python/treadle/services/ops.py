"""Operations: failures across kinds, queue depths, component health."""

from __future__ import annotations

from treadle.settings import Settings
from treadle.store.db import Database


class Ops:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
