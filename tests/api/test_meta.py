"""Health, readiness, version, OpenAPI, docs and metrics."""

from __future__ import annotations

import re

from tests.support.api import bearer, envelope, signup
from tests.support.servers import Server
from treadle import __version__
from treadle.api import routes


def test_healthz_and_version(server: Server) -> None:
    with server.client() as client:
        assert envelope(client.get("/healthz"))["data"] == {"status": "ok"}
        version = envelope(client.get("/version"))["data"]
    assert version == {"version": __version__, "api_version": "1.0"}


def test_readyz_when_everything_is_up(server: Server) -> None:
    with server.client() as client:
        body = envelope(client.get("/readyz"))
    assert body["data"] == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


def test_openapi_lists_exactly_the_route_table(server: Server) -> None:
    with server.client() as client:
        doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in routes()}
    login = doc["paths"]["/v1/auth/login"]["post"]
    assert set(login["requestBody"]["content"]) == {
        "application/json",
        "application/yaml",
        "application/toml",
    }
    ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    assert "security" in doc["paths"]["/v1/me"]["get"]
    assert "security" not in doc["paths"]["/healthz"]["get"]


def test_docs_are_served_from_the_package(server: Server) -> None:
    with server.client() as client:
        page = client.get("/docs")
        script = client.get("/docs/swagger-ui-bundle.js")
        css = client.get("/docs/swagger-ui.css")
        missing = client.get("/docs/../../etc/passwd")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text
    # No CDN: every asset the page loads is our own.
    assert all(src.startswith("/docs/") for src in re.findall(r'(?:src|href)="([^"]+)"', page.text))
    assert script.status_code == css.status_code == 200
    assert len(script.content) > 100_000
    assert missing.status_code == 404


def test_metrics_count_requests_per_route_and_status(server: Server) -> None:
    with server.client() as client:
        account = signup(client)
        for _ in range(3):
            client.get("/v1/me", headers=bearer(account))
        client.get("/v1/me")
        text = client.get("/metrics").text
    assert "# TYPE treadle_http_request_duration_seconds histogram" in text
    ok = re.search(
        r'treadle_http_requests_total\{method="GET",route="/v1/me",status="200"\} (\d+)', text
    )
    denied = re.search(
        r'treadle_http_requests_total\{method="GET",route="/v1/me",status="401"\} (\d+)', text
    )
    assert ok and int(ok.group(1)) >= 3
    assert denied and int(denied.group(1)) >= 1
    assert (
        'treadle_http_request_duration_seconds_bucket{method="GET",route="/v1/me",status="200",le="+Inf"}'
        in text
    )


def test_access_log_is_one_json_line_per_request_without_secrets(server: Server) -> None:
    import orjson

    with server.client() as client:
        account = signup(client)
        client.get("/v1/me", headers={**bearer(account), "X-Request-Id": "log-probe-1"})
        client.get("/v1/auth/verify", params={"token": "secret-token-value"})
    import time

    time.sleep(0.3)
    lines = [orjson.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    [entry] = [e for e in lines if e.get("request_id") == "log-probe-1"]
    assert entry["msg"] == "request"
    assert entry["method"] == "GET"
    assert entry["route"] == "/v1/me"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0
    log = server.log()
    assert account["access_token"] not in log
    assert account["refresh_token"] not in log
    assert "secret-token-value" not in log
    assert "correct horse battery" not in log


def test_invented_methods_count_as_one_other_label(server: Server) -> None:
    with server.client() as client:
        statuses = {client.request(f"FOO{i}", "/v1/me").status_code for i in range(1, 51)}
        client.request("FOO1", "/no/such/path")
        text = client.get("/metrics").text
    assert statuses <= {405}, statuses
    methods = set(re.findall(r'treadle_http_requests_total\{method="([^"]*)"', text))
    assert "OTHER" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}
    assert 'route="<unmatched>"' in text
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert not any("no/such" in r for r in routes)
