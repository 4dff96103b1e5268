"""Jobs over HTTP for the tests: an organization with priced job types and its keys, and
the submit / claim calls every job test makes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.api import bearer, create_key, create_org, envelope, signup

RENDER = {"name": "render", "base_cost": 0.5, "unit_cost": 0.01, "unit": "frames"}


def job_org(client: httpx.Client) -> dict[str, Any]:
    """An organization with a priced job type, its owner, a submitting key and a worker key."""
    owner = signup(client)
    org = create_org(client, owner)
    settings = {
        "job_types": [
            RENDER,
            {"name": "quick", "max_attempts": 2},
            {"name": "brief", "lease_seconds": 1, "max_attempts": 5},
        ]
    }
    done = client.put(
        f"/v1/organizations/{org['id']}/settings", json=settings, headers=bearer(owner)
    )
    assert done.status_code == 200, done.text
    submitter = create_key(client, owner, org["id"], scopes=["jobs.submit", "jobs.read"])
    worker = create_key(client, owner, org["id"], scopes=["jobs:work"])
    return {
        **org,
        "owner": owner,
        "submit": key_auth(submitter),
        "work": key_auth(worker),
    }


def key_auth(issued: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {issued['key']}"}


def once(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": str(uuid.uuid4())}


def submit(client: httpx.Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("type", "render")
    response = client.post("/v1/jobs", json=body, headers=once(headers))
    assert response.status_code == 201, response.text
    return dict(envelope(response)["data"])


def claim(client: httpx.Client, headers: dict[str, str], **body: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/jobs/claim", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return list(envelope(response)["data"])


def lease(claimed: dict[str, Any]) -> dict[str, str]:
    """The body field that proves a worker holds the attempt ``claimed`` was leased as."""
    return {"lease_token": claimed["lease_token"]}
