"""Load scenarios for treadle: `locust -f loadtest/locustfile.py --host http://127.0.0.1:3001`.

Install with `.venv/bin/pip install -e '.[load]'`. Point it only at a server you run yourself.
"""

from __future__ import annotations

from loadtest.scenarios.accounts import SignedInUser, TokenRefresher
from loadtest.scenarios.jobs import JobConsumer
from loadtest.scenarios.telemetry import EdgeAgent

__all__ = ["EdgeAgent", "JobConsumer", "SignedInUser", "TokenRefresher"]
