"""Organizations, members, teams and settings over HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.support.api import add_member, bearer, create_org, envelope, error_code, signup
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def test_creator_becomes_owner_and_sees_the_org(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner, "Acme Robotics")
    assert org["role"] == "owner"
    assert org["slug"].startswith("acme-robotics-")
    got = client.get(f"/v1/organizations/{org['id']}", headers=bearer(owner))
    body = envelope(got)
    assert body["data"]["name"] == "Acme Robotics"
    assert body["context"]["organization_id"] == org["id"]
    mine = envelope(client.get("/v1/me/organizations", headers=bearer(owner)))
    assert [o["id"] for o in mine["data"]] == [org["id"]]
    members = envelope(client.get(f"/v1/organizations/{org['id']}/members", headers=bearer(owner)))
    assert [(m["user_id"], m["role"]) for m in members["data"]] == [(owner["user"]["id"], "owner")]


def test_roles_decide_what_members_may_do(client: httpx.Client) -> None:
    owner, viewer = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], viewer, "viewer")
    path = f"/v1/organizations/{org['id']}"
    assert client.get(path, headers=bearer(viewer)).status_code == 200
    denied = client.patch(path, json={"name": "Mine now"}, headers=bearer(viewer))
    assert denied.status_code == 403
    body = envelope(denied)
    assert body["error"]["code"] == "forbidden"
    assert body["error"]["details"]["reason"] == "no_grant"
    renamed = client.patch(path, json={"name": "Renamed"}, headers=bearer(owner))
    assert envelope(renamed)["data"]["name"] == "Renamed"


def test_the_last_owner_cannot_be_removed_or_demoted(client: httpx.Client) -> None:
    owner, admin = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], admin, "admin")
    me = f"/v1/organizations/{org['id']}/members/{owner['user']['id']}"
    demote = client.patch(me, json={"role": "admin"}, headers=bearer(owner))
    remove = client.delete(me, headers=bearer(owner))
    assert demote.status_code == remove.status_code == 409
    assert envelope(demote)["error"]["details"]["reason"] == "last_owner"
    # An admin cannot touch the owner role at all.
    promote = client.patch(
        f"/v1/organizations/{org['id']}/members/{admin['user']['id']}",
        json={"role": "owner"},
        headers=bearer(admin),
    )
    assert promote.status_code == 403
    # With a second owner, the first may step down.
    client.patch(
        f"/v1/organizations/{org['id']}/members/{admin['user']['id']}",
        json={"role": "owner"},
        headers=bearer(owner),
    ).raise_for_status()
    assert (
        envelope(client.patch(me, json={"role": "member"}, headers=bearer(owner)))["data"]["role"]
        == "member"
    )


def test_removed_member_loses_access_at_once(client: httpx.Client) -> None:
    owner, member = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], member, "member")
    path = f"/v1/organizations/{org['id']}"
    assert client.get(path, headers=bearer(member)).status_code == 200
    client.delete(
        f"{path}/members/{member['user']['id']}", headers=bearer(owner)
    ).raise_for_status()
    gone = client.get(path, headers=bearer(member))
    assert gone.status_code == 404
    assert error_code(gone) == "not_found"


def test_archive_is_owner_only_and_hides_the_org(client: httpx.Client) -> None:
    owner, admin = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], admin, "admin")
    path = f"/v1/organizations/{org['id']}"
    assert client.delete(path, headers=bearer(admin)).status_code == 403
    archived = client.delete(path, headers=bearer(owner))
    assert envelope(archived)["data"]["archived"] is True
    assert client.get(path, headers=bearer(owner)).status_code == 404
    assert envelope(client.get("/v1/organizations", headers=bearer(owner)))["data"] == []


def test_settings_round_trip_and_validation(client: httpx.Client) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    path = f"/v1/organizations/{org['id']}/settings"
    assert envelope(client.get(path, headers=bearer(owner)))["data"] == {
        "branding": {"display_name": None, "logo_url": None, "primary_color": None},
        "rate_limit_policies": [],
        "retention": {
            "audit_log_days": 365,
            "authz_denial_days": 90,
            "telemetry_days": 30,
            "webhook_delivery_days": 30,
        },
        "job_types": [
            {
                "name": "default",
                "base_cost": 0.0,
                "unit_cost": 0.0,
                "unit": "units",
                "max_attempts": 3,
                "lease_seconds": 60,
            }
        ],
        "telemetry": {
            "sampling_rate": 1.0,
            "max_batch_events": 1000,
            "max_batch_bytes": 1048576,
            "allowed_types": [],
            "flush_interval_seconds": 10,
        },
        "monthly_budget": None,
    }
    new = {"branding": {"display_name": "Acme", "primary_color": "#112233"}}
    put = client.put(path, json=new, headers=bearer(owner))
    assert envelope(put)["data"]["branding"]["primary_color"] == "#112233"
    bad = client.put(
        path, json={"branding": {"logo_url": "javascript:alert(1)"}}, headers=bearer(owner)
    )
    assert bad.status_code == 400
    assert envelope(bad)["error"]["details"]["path"] == "$.branding.logo_url"
    twice = {"job_types": [{"name": "a"}, {"name": "a"}]}
    dup = client.put(path, json=twice, headers=bearer(owner))
    assert dup.status_code == 400
    assert envelope(dup)["error"]["details"]["path"] == "$.job_types"
    none = client.put(path, json={"job_types": []}, headers=bearer(owner))
    assert envelope(none)["error"]["details"]["path"] == "$.job_types"


def test_teams_and_team_roles(client: httpx.Client) -> None:
    owner, lead, outsider = signup(client), signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], lead, "member")
    made = client.post(
        "/v1/teams", json={"organization_id": org["id"], "name": "Platform"}, headers=bearer(owner)
    )
    team = envelope(made)["data"]
    assert made.status_code == 201
    dup = client.post(
        "/v1/teams", json={"organization_id": org["id"], "name": "platform"}, headers=bearer(owner)
    )
    assert dup.status_code == 409
    path = f"/v1/teams/{team['id']}"
    # A plain member cannot rename the team until they are its admin.
    assert client.patch(path, json={"name": "Infra"}, headers=bearer(lead)).status_code == 403
    client.post(
        f"{path}/members",
        json={"user_id": lead["user"]["id"], "role": "admin"},
        headers=bearer(owner),
    ).raise_for_status()
    renamed = client.patch(path, json={"name": "Infra"}, headers=bearer(lead))
    assert envelope(renamed)["data"]["name"] == "Infra"
    # Only organization members can join a team.
    stranger = client.post(
        f"{path}/members", json={"user_id": outsider["user"]["id"]}, headers=bearer(owner)
    )
    assert stranger.status_code == 404
    listed = envelope(client.get(f"/v1/organizations/{org['id']}/teams", headers=bearer(lead)))
    assert [t["name"] for t in listed["data"]] == ["Infra"]
    my_teams = envelope(client.get("/v1/me/teams", headers=bearer(lead)))["data"]
    assert [(t["id"], t["role"]) for t in my_teams] == [(team["id"], "admin")]
    removed = client.delete(f"{path}/members/{lead['user']['id']}", headers=bearer(owner))
    assert removed.status_code == 200
    assert client.patch(path, json={"name": "Again"}, headers=bearer(lead)).status_code == 403


def test_me_permissions_lists_every_scope(client: httpx.Client) -> None:
    owner, viewer = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], viewer, "viewer")
    team = envelope(
        client.post(
            "/v1/teams", json={"organization_id": org["id"], "name": "T"}, headers=bearer(owner)
        )
    )["data"]
    client.post(
        f"/v1/teams/{team['id']}/members",
        json={"user_id": viewer["user"]["id"], "role": "admin"},
        headers=bearer(owner),
    ).raise_for_status()
    scopes = envelope(client.get("/v1/me/permissions", headers=bearer(viewer)))["data"]
    by_kind = {s["resource_type"]: s for s in scopes}
    assert by_kind["organization"]["role"] == "viewer"
    assert "org.read" in by_kind["organization"]["actions"]
    assert "org.update" not in by_kind["organization"]["actions"]
    assert by_kind["team"]["team_id"] == team["id"]
    assert "teams.update" in by_kind["team"]["actions"]


def test_mutations_write_audit_rows_and_failures_write_none(client: httpx.Client) -> None:
    owner, member = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], member, "member")
    # Refused for the last owner: nothing happened, so nothing is audited.
    client.delete(
        f"/v1/organizations/{org['id']}/members/{owner['user']['id']}", headers=bearer(owner)
    )
    logs = envelope(client.get(f"/v1/organizations/{org['id']}/audit-logs", headers=bearer(owner)))
    rows = logs["data"]
    # Newest first; the member joined by accepting an invitation.
    assert [r["action"] for r in rows] == [
        "member.add",
        "invitation.accept",
        "invitation.create",
        "organization.create",
    ]
    add, invite = rows[0], rows[2]
    assert add["actor_id"] == add["target_id"] == member["user"]["id"]
    assert add["principal_type"] == "user"
    assert add["after"] == {"role": "member", "via": "invitation"}
    assert add["request_id"]
    assert invite["actor_id"] == owner["user"]["id"]
    assert invite["after"] == {"email": member["user"]["email"], "role": "member"}
    only = envelope(
        client.get(
            f"/v1/organizations/{org['id']}/audit-logs",
            params={"action": "organization.create"},
            headers=bearer(owner),
        )
    )
    assert [r["action"] for r in only["data"]] == ["organization.create"]
    first = envelope(
        client.get(
            f"/v1/organizations/{org['id']}/audit-logs", params={"limit": 3}, headers=bearer(owner)
        )
    )
    assert first["meta"]["page"]["next_cursor"]
    second = envelope(client.get(first["links"]["next"], headers=bearer(owner)))
    assert [r["action"] for r in second["data"]] == ["organization.create"]
    assert (
        client.get(f"/v1/organizations/{org['id']}/audit-logs", headers=bearer(member)).status_code
        == 403
    )


def test_platform_audit_log_is_for_platform_admins(client: httpx.Client, admin: dict) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    assert client.get("/v1/audit-logs", headers=bearer(owner)).status_code == 403
    rows = envelope(
        client.get("/v1/audit-logs", params={"organization_id": org["id"]}, headers=bearer(admin))
    )["data"]
    assert [r["action"] for r in rows] == ["organization.create"]


def test_retention_deletes_audit_rows_older_than_the_setting(
    client: httpx.Client, server: Server
) -> None:
    import time

    import psycopg

    owner = signup(client)
    org = create_org(client, owner)
    put = client.put(
        f"/v1/organizations/{org['id']}/settings",
        json={"retention": {"audit_log_days": 7}},
        headers=bearer(owner),
    )
    assert envelope(put)["data"]["retention"] == {
        "audit_log_days": 7,
        "authz_denial_days": 90,
        "telemetry_days": 30,
        "webhook_delivery_days": 30,
    }
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"], autocommit=True) as conn:
        # Age the organization's first row past the retention; keep the settings change fresh.
        conn.execute(
            "UPDATE audit_logs SET created_at = now() - interval '8 days'"
            " WHERE organization_id = %s AND action = 'organization.create'",
            (org["id"],),
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # TREADLE_RETENTION_SWEEP_SECONDS=1 in the test servers
        logs = envelope(
            client.get(f"/v1/organizations/{org['id']}/audit-logs", headers=bearer(owner))
        )
        if [r["action"] for r in logs["data"]] == ["organization.settings.update"]:
            break
        time.sleep(0.3)
    assert [r["action"] for r in logs["data"]] == ["organization.settings.update"]
