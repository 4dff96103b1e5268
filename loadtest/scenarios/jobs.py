"""Jobs traffic: consumers submitting (and retrying) jobs, workers claiming and finishing
them. Each simulated consumer brings its own organization and keys."""

from __future__ import annotations

import random
import uuid

from locust import HttpUser, between, task

from loadtest.scenarios.accounts import signup


def _organization(user: HttpUser) -> tuple[str, str, str]:
    """A new organization; its id, a submitting key and a worker key."""
    session = signup(user)
    owner = {"Authorization": f"Bearer {session['access_token']}"}
    org = user.client.post("/v1/organizations", json={"name": "Load"}, headers=owner)
    org.raise_for_status()
    org_id = org.json()["data"]["id"]
    keys = []
    for scopes in (["jobs.submit", "jobs.read"], ["jobs:work"]):
        issued = user.client.post(
            "/v1/api-keys",
            json={"organization_id": org_id, "name": "load", "scopes": scopes},
            headers=owner,
        )
        issued.raise_for_status()
        keys.append(issued.json()["data"]["key"])
    return org_id, keys[0], keys[1]


class JobConsumer(HttpUser):
    """Submits jobs; one in ten is sent twice with the same Idempotency-Key, as a client
    retrying after a timeout would, and must come back as a replay of the same job."""

    wait_time = between(0.0, 0.05)
    weight = 3

    def on_start(self) -> None:
        _, submit, work = _organization(self)
        self.client.headers["Authorization"] = f"Bearer {submit}"
        self.worker_key = work

    @task(10)
    def submit(self) -> None:
        key = str(uuid.uuid4())
        body = {"type": "default", "input": {"n": random.randint(1, 1000)}}
        headers = {"Idempotency-Key": key}
        first = self.client.post("/v1/jobs", json=body, headers=headers, name="/v1/jobs")
        if random.random() < 0.1 and first.status_code == 201:
            with self.client.post(
                "/v1/jobs", json=body, headers=headers, name="/v1/jobs (retry)", catch_response=True
            ) as again:
                same = again.json()["data"]["id"] == first.json()["data"]["id"]
                if again.headers.get("idempotent-replayed") != "true" or not same:
                    again.failure("a retry with the same Idempotency-Key was not a replay")

    @task(3)
    def list_jobs(self) -> None:
        self.client.get("/v1/jobs?limit=20", name="/v1/jobs?limit=20")

    @task(2)
    def work(self) -> None:
        """Play the organization's worker too: claim a batch and finish it."""
        worker = {"Authorization": f"Bearer {self.worker_key}"}
        claimed = self.client.post(
            "/v1/jobs/claim", json={"limit": 10}, headers=worker, name="/v1/jobs/claim"
        )
        for job in claimed.json()["data"] or []:
            self.client.post(
                f"/v1/jobs/{job['id']}/complete",
                json={
                    "lease_token": job["lease_token"],
                    "usage": [{"metric": "units", "quantity": 1}],
                },
                headers=worker,
                name="/v1/jobs/{id}/complete",
            )
