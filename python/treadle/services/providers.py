"""Model providers: configuration, execution, streaming, estimates (issue 13)."""

from __future__ import annotations

from treadle.services.secrets import Secrets
from treadle.settings import Settings
from treadle.store.db import Database


class Providers:
    def __init__(self, settings: Settings, db: Database, secrets: Secrets) -> None:
        self.settings = settings
        self.db = db
        self.secrets = secrets

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
