"""Content-addressed assets with signed links (issue 13)."""

from __future__ import annotations

from treadle.settings import Settings
from treadle.store.db import Database


class Assets:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
