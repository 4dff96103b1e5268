"""Encrypted credentials of organizations (issue 13)."""

from __future__ import annotations

from treadle.settings import Settings
from treadle.store.db import Database


class Secrets:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
