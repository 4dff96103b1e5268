"""The kernel's HTTP contract, over real HTTP, on every server adapter."""

from __future__ import annotations

import re

import pytest

from tests.support.api import bearer, envelope, error_code, new_email, signup
from tests.support.servers import Server


def test_unknown_route_is_404_in_the_envelope(any_server: Server) -> None:
    with any_server.client() as client:
        response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert error_code(response) == "not_found"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_with_allow(any_server: Server, method: str) -> None:
    with any_server.client() as client:
        response = client.request(method, "/v1/auth/login")
    assert response.status_code == 405
    body = envelope(response)
    assert body["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "POST"
    assert body["error"]["details"]["allowed"] == ["POST"]


def test_request_and_correlation_ids_are_echoed(any_server: Server) -> None:
    with any_server.client() as client:
        given = client.get(
            "/healthz", headers={"X-Request-Id": "abc-123", "x-correlation-id": "flow-9"}
        )
        made = client.get("/healthz")
    assert given.headers["x-request-id"] == "abc-123"
    assert given.headers["x-correlation-id"] == "flow-9"
    assert envelope(given)["meta"]["request_id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert made.headers["x-correlation-id"] == made.headers["x-request-id"]


def test_hostile_request_id_is_replaced(any_server: Server) -> None:
    with any_server.client() as client:
        response = client.get("/healthz", headers={"X-Request-Id": "x" * 500})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


def test_traceparent_becomes_the_trace_id(any_server: Server) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with any_server.client() as client:
        traced = client.get("/healthz", headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
        broken = client.get("/healthz", headers={"traceparent": "garbage"})
    assert envelope(traced)["meta"]["trace_id"] == trace
    assert re.fullmatch(r"[0-9a-f]{32}", envelope(broken)["meta"]["trace_id"])
    assert envelope(broken)["meta"]["trace_id"] != trace


def test_envelope_on_success(any_server: Server) -> None:
    with any_server.client() as client:
        response = client.get("/healthz")
    body = envelope(response)
    assert body["data"] == {"status": "ok"}
    assert body["context"] == {"principal_id": None, "organization_id": None, "team_id": None}
    assert body["links"]["self"] == "/healthz"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["meta"]["timestamp"])


def test_malformed_json_is_400(any_server: Server) -> None:
    with any_server.client() as client:
        response = client.post(
            "/v1/auth/login",
            content=b'{"email": "a@b.c", "password": ',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert error_code(response) == "bad_request"


def test_wrong_type_is_400_with_the_field_path(any_server: Server) -> None:
    with any_server.client() as client:
        response = client.post("/v1/auth/login", json={"email": "a@b.co", "password": 12345})
    body = envelope(response)
    assert response.status_code == 400
    assert body["error"]["code"] == "validation_failed"
    assert body["error"]["details"]["path"] == "$.password"


def test_unsupported_content_type_is_415(any_server: Server) -> None:
    with any_server.client() as client:
        response = client.post(
            "/v1/auth/login", content=b"email=a", headers={"content-type": "text/plain"}
        )
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


def test_body_over_the_limit_is_413(any_server: Server) -> None:
    with any_server.client() as client:
        response = client.post(
            "/v1/auth/login",
            content=b'{"email": "' + b"a" * 2_000_000 + b'"}',
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


@pytest.mark.parametrize(
    ("content_type", "template"),
    [
        ("application/yaml", "email: {email}\npassword: correct horse battery\n"),
        ("application/toml", 'email = "{email}"\npassword = "correct horse battery"\n'),
    ],
)
def test_yaml_and_toml_bodies(any_server: Server, content_type: str, template: str) -> None:
    with any_server.client() as client:
        account = signup(client)
        response = client.post(
            "/v1/auth/login",
            content=template.format(email=account["user"]["email"]).encode(),
            headers={"content-type": content_type},
        )
    assert response.status_code == 200, response.text
    assert envelope(response)["data"]["user"]["email"] == account["user"]["email"]


def test_authentication_is_enforced(any_server: Server) -> None:
    with any_server.client() as client:
        missing = client.get("/v1/me")
        garbage = client.get("/v1/me", headers={"Authorization": "Bearer not.a.jwt"})
        wrong_scheme = client.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        account = signup(client, new_email())
        ok = client.get("/v1/me", headers=bearer(account))
    for response in (missing, garbage, wrong_scheme):
        assert response.status_code == 401
        assert error_code(response) == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"
    assert ok.status_code == 200
    body = envelope(ok)
    assert body["context"]["principal_id"] == account["user"]["id"]


def test_oversized_body_is_refused_before_it_is_read(server: Server) -> None:
    import socket

    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500000000\r\n\r\n" + b"{" * 1024
        )
        # Half a gigabyte was announced and one kilobyte sent: the answer comes anyway.
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"payload_too_large"' in reply
