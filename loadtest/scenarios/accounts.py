"""Accounts traffic: a signed-in consumer polling /v1/me, and sessions that refresh."""

from __future__ import annotations

import secrets

from locust import HttpUser, between, task

PASSWORD = "load test passphrase"


def signup(user: HttpUser) -> dict[str, str]:
    email = f"load-{secrets.token_hex(8)}@example.test"
    response = user.client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD})
    response.raise_for_status()
    data: dict[str, str] = response.json()["data"]
    return data


class SignedInUser(HttpUser):
    wait_time = between(0.0, 0.01)
    weight = 9

    def on_start(self) -> None:
        self.session = signup(self)
        self.client.headers["Authorization"] = f"Bearer {self.session['access_token']}"

    @task(20)
    def me(self) -> None:
        self.client.get("/v1/me", name="/v1/me")

    @task(1)
    def health(self) -> None:
        self.client.get("/healthz")


class TokenRefresher(HttpUser):
    wait_time = between(0.05, 0.2)
    weight = 1

    def on_start(self) -> None:
        self.refresh_token = signup(self)["refresh_token"]

    @task
    def refresh(self) -> None:
        with self.client.post(
            "/v1/auth/token/refresh",
            json={"refresh_token": self.refresh_token},
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"refresh failed: {response.status_code}")
                return
            self.refresh_token = response.json()["data"]["refresh_token"]
