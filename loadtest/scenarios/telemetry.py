"""Edge agents: each enrolls once (its own organization makes the token), fetches its policy
(again with If-None-Match, as an agent polling it would), and posts batches of events,
retrying a batch under the same Idempotency-Key as an agent would after a timeout."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from locust import HttpUser, between, task

from loadtest.scenarios.accounts import signup

BATCH = 200


class EdgeAgent(HttpUser):
    wait_time = between(0.05, 0.2)
    weight = 2

    def on_start(self) -> None:
        session = signup(self)
        owner = {"Authorization": f"Bearer {session['access_token']}"}
        org = self.client.post("/v1/organizations", json={"name": "Edge"}, headers=owner)
        org.raise_for_status()
        made = self.client.post(
            "/v1/edge-agents/enrollments",
            json={"organization_id": org.json()["data"]["id"]},
            headers=owner,
        )
        made.raise_for_status()
        enrolled = self.client.post(
            "/v1/edge-agents/enroll",
            json={"token": made.json()["data"]["token"], "version": "load"},
        )
        enrolled.raise_for_status()
        self.client.headers["Authorization"] = (
            f"Bearer {enrolled.json()['data']['credential']['key']}"
        )
        self.etag = ""

    @task(1)
    def policy(self) -> None:
        with self.client.get(
            "/v1/edge-agents/policy",
            headers={"If-None-Match": self.etag} if self.etag else {},
            name="/v1/edge-agents/policy",
            catch_response=True,
        ) as answer:
            if answer.status_code in (200, 304):
                self.etag = answer.headers.get("etag", self.etag)
                answer.success()

    @task(10)
    def ingest(self) -> None:
        body = orjson.dumps([_event(i) for i in range(BATCH)])
        headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
        first = self.client.post(
            "/v1/telemetry/ingest", data=body, headers=headers, name="/v1/telemetry/ingest"
        )
        if random.random() < 0.05 and first.status_code == 201:
            with self.client.post(
                "/v1/telemetry/ingest",
                data=body,
                headers=headers,
                name="/v1/telemetry/ingest (retry)",
                catch_response=True,
            ) as again:
                same = again.json()["data"]["batch_id"] == first.json()["data"]["batch_id"]
                if again.headers.get("idempotent-replayed") != "true" or not same:
                    again.failure("a retried batch was not a replay of the same batch")


def _event(i: int) -> dict[str, Any]:
    return {
        "type": random.choice(("cpu.sample", "mem.sample", "net.sample")),
        "timestamp": datetime.now(UTC).isoformat(),
        "attributes": {"host": f"edge-{i % 8}", "value": random.random(), "ok": True},
    }
