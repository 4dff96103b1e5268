"""Encrypted credentials over HTTP: set, list, replace, delete; values never shown, stored
sealed, absent from audit rows and events; admins only; tenancy; bounds. Values are read
back the way the providers gateway will, through ``Secrets.reveal`` on the same storage."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import (
    add_member,
    bearer,
    create_key,
    create_org,
    envelope,
    error_code,
    signup,
)
from tests.support.jobs import key_auth
from tests.support.servers import Server
from treadle.bus.invalidation import Invalidator
from treadle.bus.redis import connect
from treadle.services.principal import Actor, Principal
from treadle.services.secrets import Secrets
from treadle.settings import Settings
from treadle.store.db import Database
from treadle.web.errors import ApiError
from treadle.web.errors import status as http_status


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


@pytest.fixture
def org(client: httpx.Client) -> dict[str, Any]:
    owner = signup(client)
    return {**create_org(client, owner), "owner": owner}


def path(org_id: str, name: str = "") -> str:
    return f"/v1/organizations/{org_id}/secrets" + (f"/{name}" if name else "")


def put(client: httpx.Client, org_id: str, name: str, value: Any, who: dict) -> httpx.Response:
    headers = who if "Authorization" in who else bearer(who)
    return client.put(path(org_id, name), json={"value": value}, headers=headers)


def new_value() -> str:
    return "sk-live-" + secrets.token_hex(20)


def reveal(server: Server, org_id: str, name: str) -> str:
    """What the providers gateway gets: ``app.secrets.reveal``, on the server's storage."""

    async def run() -> str:
        settings = Settings.from_env(server.env)
        db = Database(settings.database_url, 1, 2)
        await db.open()
        principal = Principal("gateway-test", "user", None, None, "", False)
        try:
            # Reveals publish nothing: the bus is there because the service needs one.
            bus = Invalidator(connect(settings.redis_url), "")
            return await Secrets(settings, db, bus).reveal(
                Actor(principal, "req-test", "127.0.0.1", "pytest"), uuid.UUID(org_id), name
            )
        finally:
            await db.close()

    return asyncio.run(run())


def rows(server: Server, sql: str, *args: Any) -> list[tuple]:
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def test_set_list_replace_delete_and_the_value_is_never_shown_nor_stored_plain(
    client: httpx.Client, org: dict, server: Server
) -> None:
    first, second = new_value(), new_value()
    made = put(client, org["id"], "OPENAI_API_KEY", first, org["owner"])
    assert made.status_code == 200, made.text
    created = envelope(made)["data"]
    assert set(created) == {
        "name",
        "version",
        "created_at",
        "updated_at",
        "updated_by",
        "updated_by_type",
    }
    assert created["name"] == "OPENAI_API_KEY" and created["version"] == 1
    assert (created["updated_by"], created["updated_by_type"]) == (
        org["owner"]["user"]["id"],
        "user",
    )
    replaced = envelope(put(client, org["id"], "OPENAI_API_KEY", second, org["owner"]))["data"]
    assert replaced["version"] == 2 and replaced["created_at"] == created["created_at"]
    put(client, org["id"], "a.db-password_2", new_value(), org["owner"])

    listed = client.get(path(org["id"]), headers=bearer(org["owner"]))
    body = envelope(listed)
    assert [s["name"] for s in body["data"]] == ["OPENAI_API_KEY", "a.db-password_2"]
    assert body["data"][0]["version"] == 2 and "value" not in body["data"][0]
    assert body["meta"]["page"]["total"] == 2
    paged = envelope(
        client.get(path(org["id"]), params={"limit": 1, "offset": 1}, headers=bearer(org["owner"]))
    )
    assert [s["name"] for s in paged["data"]] == ["a.db-password_2"]
    for text in (made.text, listed.text):
        assert first not in text and second not in text

    ((sealed, version),) = rows(
        server,
        "SELECT sealed, version FROM organization_secrets WHERE organization_id = %s"
        " AND name = 'OPENAI_API_KEY'",
        org["id"],
    )
    assert version == 2
    for plain in (first, second):
        assert plain.encode() not in bytes(sealed)
        assert plain.removeprefix("sk-live-").encode() not in bytes(sealed)
    ((key_version, wrapped),) = rows(
        server,
        "SELECT key_version, wrapped FROM secret_data_keys WHERE organization_id = %s",
        org["id"],
    )
    assert key_version >= 1 and len(bytes(wrapped)) == 1 + 12 + 32 + 16

    assert reveal(server, org["id"], "OPENAI_API_KEY") == second
    gone = client.delete(path(org["id"], "OPENAI_API_KEY"), headers=bearer(org["owner"]))
    assert gone.status_code == 200 and envelope(gone)["data"]["version"] == 2
    again = client.delete(path(org["id"], "OPENAI_API_KEY"), headers=bearer(org["owner"]))
    assert again.status_code == 404 and error_code(again) == "not_found"
    with pytest.raises(ApiError) as missing:
        reveal(server, org["id"], "OPENAI_API_KEY")
    assert http_status(missing.value) == 404
    left = envelope(client.get(path(org["id"]), headers=bearer(org["owner"])))["data"]
    assert [s["name"] for s in left] == ["a.db-password_2"]

    # Every change and the use are audited; no value anywhere in the trail or the events.
    audited = rows(
        server,
        "SELECT action, target_id, before::text, after::text FROM audit_logs"
        " WHERE organization_id = %s AND target_type = 'secret' ORDER BY id",
        org["id"],
    )
    assert [(a, t) for a, t, _, _ in audited] == [
        ("secret.create", "OPENAI_API_KEY"),
        ("secret.update", "OPENAI_API_KEY"),
        ("secret.create", "a.db-password_2"),
        ("secret.use", "OPENAI_API_KEY"),
        ("secret.delete", "OPENAI_API_KEY"),
    ]
    assert '"version": 2' in audited[1][3]
    trail = rows(server, "SELECT a::text FROM audit_logs a WHERE organization_id = %s", org["id"])
    events = rows(
        server,
        "SELECT convert_from(payload, 'UTF8') FROM event_outbox WHERE organization_id = %s",
        org["id"],
    )
    topics = rows(server, "SELECT topic FROM event_outbox WHERE organization_id = %s", org["id"])
    # Secret names are for admins: no live event (viewers read events) names one.
    assert ("secret.create",) not in topics and ("secret.use",) not in topics
    for (text,) in [*trail, *events]:
        assert first not in text and second not in text
    assert first not in server.log() and second not in server.log()


def test_admins_and_their_keys_manage_members_viewers_are_refused_others_see_nothing(
    client: httpx.Client, org: dict
) -> None:
    owner = org["owner"]
    users = {role: signup(client) for role in ("admin", "member", "viewer")}
    for role, user in users.items():
        add_member(client, owner, org["id"], user, role)
    assert put(client, org["id"], "BY_ADMIN", new_value(), users["admin"]).status_code == 200
    for role in ("member", "viewer"):
        who = bearer(users[role])
        for response in (
            client.get(path(org["id"]), headers=who),
            put(client, org["id"], "X", new_value(), who),
            client.delete(path(org["id"], "BY_ADMIN"), headers=who),
        ):
            assert response.status_code == 403, (role, response.text)
            assert error_code(response) == "forbidden"

    manager = create_key(client, owner, org["id"], scopes=["secrets.manage", "secrets.read"])
    made = put(client, org["id"], "BY_KEY", new_value(), key_auth(manager))
    assert made.status_code == 200, made.text
    assert envelope(made)["data"]["updated_by_type"] == "api_key"
    reader = create_key(client, owner, org["id"], scopes=["org.read"])
    refused = put(client, org["id"], "NO", new_value(), key_auth(reader))
    assert refused.status_code == 403

    # Another tenant's owner, and an organization that does not exist: not found.
    stranger = signup(client)
    create_org(client, stranger, "Other")
    for org_id in (org["id"], str(uuid.uuid4())):
        for response in (
            client.get(path(org_id), headers=bearer(stranger)),
            put(client, org_id, "BY_ADMIN", new_value(), stranger),
            client.delete(path(org_id, "BY_ADMIN"), headers=bearer(stranger)),
        ):
            assert response.status_code == 404, response.text
    unauthenticated = client.get(path(org["id"]))
    assert unauthenticated.status_code == 401
    names = [
        s["name"] for s in envelope(client.get(path(org["id"]), headers=bearer(owner)))["data"]
    ]
    assert names == ["BY_ADMIN", "BY_KEY"]


@pytest.mark.parametrize("name", ["a%20b", "x" * 129, "na%C3%AFve", "a%0A", "a%3Ab", "%00"])
def test_bad_names_are_refused_naming_the_path(client: httpx.Client, org: dict, name: str) -> None:
    response = put(client, org["id"], name, "v", org["owner"])
    assert response.status_code == 400, response.text
    error = envelope(response)["error"]
    assert error["code"] == "validation_failed" and error["details"]["path"] == "path.name"
    if name != "%00":  # the kernel refuses NUL in any path parameter
        assert error["message"].startswith("name must be")
        # No secret can have that name: deleting it finds none.
        gone = client.delete(path(org["id"], name), headers=bearer(org["owner"]))
        assert gone.status_code == 404 and error_code(gone) == "not_found"


def test_bad_values_are_refused_naming_the_field_without_echoing_it(
    client: httpx.Client, org: dict
) -> None:
    marker = "sk-" + secrets.token_hex(8)
    for body in (
        {"value": ""},
        {"value": marker + "\x00tail"},
        {"value": marker + "x" * (64 * 1024)},
        {"value": "é" * (64 * 1024 + 1)},
        {"value": 5},
        {"value": None},
        {},
    ):
        response = client.put(path(org["id"], "K"), json=body, headers=bearer(org["owner"]))
        assert response.status_code == 400, (body, response.text)
        error = envelope(response)["error"]
        assert error["code"] == "validation_failed"
        # The field is in details.path (a missing one is named in the message instead).
        assert error["details"]["path"] == ("$.value" if body else "$"), error
        assert body or "`value`" in error["message"]
        assert marker not in response.text and "éé" not in response.text
    extra = client.put(
        path(org["id"], "K"), json={"value": "v", "note": marker}, headers=bearer(org["owner"])
    )
    assert extra.status_code == 400 and error_code(extra) == "validation_failed"
    largest = put(client, org["id"], "K", "é" * (64 * 1024), org["owner"])
    assert largest.status_code == 200, largest.text
    assert (
        envelope(client.get(path(org["id"]), headers=bearer(org["owner"])))["data"][0]["version"]
        == 1
    )


def test_a_value_does_not_open_in_another_organization_or_under_another_name(
    client: httpx.Client, org: dict, server: Server
) -> None:
    other = create_org(client, org["owner"], "Sibling")
    value = new_value()
    for org_id, name, plain in (
        (org["id"], "K", value),
        (other["id"], "K", new_value()),
        (org["id"], "L", new_value()),
    ):
        assert put(client, org_id, name, plain, org["owner"]).status_code == 200
    db = server.env["TREADLE_DATABASE_URL"]
    with psycopg.connect(db, autocommit=True) as conn:
        # A's sealed value copied onto B's row of the same name and version.
        conn.execute(
            "UPDATE organization_secrets b SET sealed = a.sealed FROM organization_secrets a"
            " WHERE a.organization_id = %s AND a.name = 'K' AND b.organization_id = %s"
            " AND b.name = 'K'",
            (org["id"], other["id"]),
        )
        # And onto A's own row of another name.
        conn.execute(
            "UPDATE organization_secrets SET sealed = (SELECT sealed FROM organization_secrets"
            " WHERE organization_id = %s AND name = 'K') WHERE organization_id = %s"
            " AND name = 'L'",
            (org["id"], org["id"]),
        )
    for org_id, name in ((other["id"], "K"), (org["id"], "L")):
        with pytest.raises(ApiError) as refused:
            reveal(server, org_id, name)
        assert http_status(refused.value) == 500 and value not in refused.value.message
    assert reveal(server, org["id"], "K") == value
    with psycopg.connect(db, autocommit=True) as conn:
        # A's wrapped data key copied onto B's row: it is bound to A.
        conn.execute(
            "UPDATE secret_data_keys b SET wrapped = a.wrapped, key_version = a.key_version"
            " FROM secret_data_keys a WHERE a.organization_id = %s AND b.organization_id = %s",
            (org["id"], other["id"]),
        )
    with pytest.raises(ApiError) as refused:
        reveal(server, other["id"], "K")
    assert http_status(refused.value) == 500
    assert value not in server.log()


def test_puts_take_no_idempotency_key_and_concurrent_ones_all_land(
    client: httpx.Client, org: dict, server: Server
) -> None:
    headers = {**bearer(org["owner"]), "Idempotency-Key": str(uuid.uuid4())}
    answers = [
        client.put(path(org["id"], "SAME"), json={"value": new_value()}, headers=headers)
        for _ in range(2)
    ]
    assert [envelope(a)["data"]["version"] for a in answers] == [1, 2]
    assert all("idempotent-replayed" not in a.headers for a in answers)
    assert not rows(
        server, "SELECT 1 FROM idempotency_keys WHERE key = %s", headers["Idempotency-Key"]
    )

    # The organization's first puts race to make its data key; every one lands.
    fresh = create_org(client, org["owner"], "Fresh")
    values = {f"N{i}": new_value() for i in range(8)}

    def one(item: tuple[str, str]) -> int:
        with server.client() as c:
            return put(c, fresh["id"], item[0], item[1], org["owner"]).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, values.items())) == [200] * 8
        versions = list(pool.map(lambda _: one(("SHARED", new_value())), range(8)))
    assert versions == [200] * 8
    assert rows(
        server, "SELECT count(*) FROM secret_data_keys WHERE organization_id = %s", fresh["id"]
    ) == [(1,)]
    listed = envelope(client.get(path(fresh["id"]), headers=bearer(org["owner"])))["data"]
    assert {s["name"]: s["version"] for s in listed}["SHARED"] == 8
    for name, value in values.items():
        assert reveal(server, fresh["id"], name) == value


def test_the_routes_are_documented_without_a_value_in_any_answer(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths["/v1/organizations/{id}/secrets/{name}"]) >= {"put", "delete"}
    assert "get" in paths["/v1/organizations/{id}/secrets"]
    schema = document["components"]["schemas"]["Secret"]
    assert "value" not in schema["properties"]
    assert document["components"]["schemas"]["SecretValue"]["required"] == ["value"]
