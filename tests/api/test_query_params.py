"""Query parameters are parsed as strictly as the OpenAPI document declares them."""

from __future__ import annotations

import httpx

from tests.support.api import bearer, create_org, envelope, error_code, signup
from tests.support.servers import Server


def test_include_deleted_is_a_boolean_not_any_text(server: Server, admin: dict) -> None:
    with server.client() as client:
        for value in ("AAA", "1", "yes", ""):
            bad = client.get(
                "/v1/admin/users", params={"include_deleted": value}, headers=bearer(admin)
            )
            assert bad.status_code == 400, (value, bad.text)
            assert envelope(bad)["error"]["details"]["path"] == "query.include_deleted"
        for value in ("true", "false"):
            ok = client.get(
                "/v1/admin/users", params={"include_deleted": value}, headers=bearer(admin)
            )
            assert ok.status_code == 200, (value, ok.text)


def test_an_empty_since_or_until_is_refused(server: Server) -> None:
    with server.client() as client:
        owner = signup(client)
        org = create_org(client, owner)
        for name in ("since", "until"):
            response = client.get(
                f"/v1/organizations/{org['id']}/audit-logs",
                params={name: ""},
                headers=bearer(owner),
            )
            assert response.status_code == 400, (name, response.text)
            assert error_code(response) == "validation_failed"
            assert envelope(response)["error"]["details"]["path"] == f"query.{name}"


def test_offset_past_its_documented_maximum_is_refused(server: Server) -> None:
    with server.client() as client:
        owner = signup(client)
        doc = httpx.get(f"{server.url}/openapi.json").json()
        params = doc["paths"]["/v1/me/organizations"]["get"]["parameters"]
        top = next(p for p in params if p["name"] == "offset")["schema"]["maximum"]
        ok = client.get("/v1/me/organizations", params={"offset": top}, headers=bearer(owner))
        assert ok.status_code == 200, ok.text
        bad = client.get("/v1/me/organizations", params={"offset": top + 1}, headers=bearer(owner))
        assert bad.status_code == 400, bad.text
