"""An organization and its API keys, made through the API the way a customer would, and a
small HTTP client that calls the API with one of those keys."""

from __future__ import annotations

import http.client
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import servers


@dataclass(frozen=True)
class Org:
    id: str
    keys: list[str]


def organization(app: servers.Target, token: str, key_scopes: list[list[str]]) -> Org:
    """A new organization owned by the signed-in user, with one key per scope list."""
    user = {"authorization": f"Bearer {token}"}
    name = f"bench-{secrets.token_hex(3)}"
    status, org = servers._request(app.url + "/v1/organizations", {"name": name}, user)
    if status != 201:
        raise RuntimeError(f"POST /v1/organizations answered {status}: {org}")
    org_id = str(org["data"]["id"])
    keys = []
    for n, scopes in enumerate(key_scopes):
        body = {"organization_id": org_id, "name": f"bench-{n}", "scopes": scopes}
        status, made = servers._request(app.url + "/v1/api-keys", body, user)
        if status != 201:
            raise RuntimeError(f"POST /v1/api-keys answered {status}: {made}")
        keys.append(str(made["data"]["key"]))
    return Org(org_id, keys)


class Client:
    """A keep-alive HTTP/1.1 connection with an API key: ``http.client`` and orjson, which
    cost the client a fraction of what httpx and json do per request (the bench's clients
    share the two cores with the server)."""

    def __init__(self, url: str, key: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        self.headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def get(self, path: str) -> dict[str, Any]:
        status, answer = self._send("GET", path, None, {})
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {answer}")
        return dict(answer)

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return self._send("POST", path, body, headers or {})

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        self.conn.request(method, path, body, {**self.headers, **headers})
        resp = self.conn.getresponse()
        return resp.status, orjson.loads(resp.read() or b"null")
