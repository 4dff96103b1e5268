"""Edge agents over HTTP for the tests: enrollment, and batches of events to ingest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from tests.support.api import bearer, envelope

INGEST = "/v1/telemetry/ingest"


def enrollment(client: httpx.Client, org: dict, **body: Any) -> dict[str, Any]:
    made = client.post(
        "/v1/edge-agents/enrollments",
        json={"organization_id": org["id"], **body},
        headers=bearer(org["owner"]),
    )
    assert made.status_code == 201, made.text
    return dict(envelope(made)["data"])


def enroll(client: httpx.Client, org: dict, name: str = "", version: str = "1.0.0") -> dict:
    """A new agent of ``org``: its record, its key and the headers that carry it."""
    token = enrollment(client, org)["token"]
    done = client.post(
        "/v1/edge-agents/enroll", json={"token": token, "name": name, "version": version}
    )
    assert done.status_code == 201, done.text
    data = envelope(done)["data"]
    return {
        **data,
        "auth": {"Authorization": f"Bearer {data['credential']['key']}"},
    }


def event(kind: str = "cpu.sample", **attributes: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": datetime.now(UTC).isoformat(),
        "attributes": attributes or {"host": "edge-1", "value": 0.5},
    }


def post_batch(
    client: httpx.Client,
    agent: dict,
    body: bytes | list[Any],
    key: str | None = None,
    **headers: str,
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"Content-Type": "application/json", **headers, **agent["auth"]}
    sent["Idempotency-Key"] = key or str(uuid.uuid4())
    return client.post(INGEST, content=raw, headers=sent)
