"""Another organization's resource is a 404, on every organization-scoped route.

Generated from the route table: a route added with a scope is covered without editing this
file, and one whose body this file cannot fill fails loudly until a sample is added.
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.support.api import add_member, bearer, create_org, envelope, signup
from tests.support.servers import Server
from treadle.api import assets, jobs, ops, routes, scopes

# Routes for edge agents act in the agent's own organization: there is no other to name.
SCOPED = [
    r for r in routes() if r.scope is not None and r.scope is not scopes.edge_agent_organization
]


# Scopes that take the organization from ?organization_id=.
IN_QUERY = (scopes.organization_in_query, scopes.caller_organization, ops.reach_scope)


@pytest.fixture(scope="module")
def tenants(granian_server: Server) -> dict:
    """Organization A (whose owner attacks) and B (whose resources are the targets)."""
    with granian_server.client() as client:
        attacker, victim, bystander = signup(client), signup(client), signup(client)
        org_a = create_org(client, attacker, "A")
        org_b = create_org(client, victim, "B")
        add_member(client, victim, org_b["id"], bystander, "member")
        team = envelope(
            client.post(
                "/v1/teams",
                json={"organization_id": org_b["id"], "name": "B team"},
                headers=bearer(victim),
            )
        )["data"]
        entry = envelope(
            client.post(
                "/v1/acl",
                json={
                    "organization_id": org_b["id"],
                    "resource_type": "workflow",
                    "resource_id": "w",
                    "action": "workflows.run",
                    "subject": f"user:{bystander['user']['id']}",
                    "effect": "allow",
                },
                headers=bearer(victim),
            )
        )["data"]
        invitation = envelope(
            client.post(
                "/v1/invitations",
                json={"organization_id": org_b["id"], "email": "guest@example.test"},
                headers=bearer(victim),
            )
        )["data"]
        api_key = envelope(
            client.post(
                "/v1/api-keys",
                json={"organization_id": org_b["id"], "name": "B key", "scopes": ["org.read"]},
                headers=bearer(victim),
            )
        )["data"]
        job = envelope(
            client.post(
                "/v1/jobs",
                json={"organization_id": org_b["id"], "type": "default"},
                headers={**bearer(victim), "Idempotency-Key": "isolation"},
            )
        )["data"]
        definition = envelope(
            client.post(
                "/v1/workflow-definitions",
                json={
                    "organization_id": org_b["id"],
                    "name": "b-flow",
                    "nodes": [{"id": "wait", "type": "delay", "seconds": 1}],
                },
                headers=bearer(victim),
            )
        )["data"]
        run = envelope(
            client.post(
                "/v1/workflow-runs",
                json={"organization_id": org_b["id"], "definition_id": definition["id"]},
                headers={**bearer(victim), "Idempotency-Key": "isolation-run"},
            )
        )["data"]
        enrollment = envelope(
            client.post(
                "/v1/edge-agents/enrollments",
                json={"organization_id": org_b["id"]},
                headers=bearer(victim),
            )
        )["data"]
        agent = envelope(
            client.post("/v1/edge-agents/enroll", json={"token": enrollment["token"]})
        )["data"]
        hook = envelope(
            client.post(
                "/v1/webhooks",
                json={"organization_id": org_b["id"], "url": "http://127.0.0.1:9/b"},
                headers=bearer(victim),
            )
        )["data"]
        delivery = envelope(client.post(f"/v1/webhooks/{hook['id']}/test", headers=bearer(victim)))[
            "data"
        ]
        asset = envelope(
            client.post(
                "/v1/assets",
                params={"organization_id": org_b["id"], "name": "b.txt"},
                content=b"organization B's file",
                headers=bearer(victim),
            )
        )["data"]
    return {
        "webhook_b": hook["id"],
        "delivery_b": delivery["id"],
        "asset_b": asset["id"],
        "digest_b": asset["digest"],
        "agent_b": agent["agent"]["id"],
        "definition_b": definition["id"],
        "run_b": run["id"],
        "job_b": job["id"],
        "key_b": api_key["id"],
        "invitation_b": invitation["id"],
        "attacker": attacker,
        "org_a": org_a["id"],
        "org_b": org_b["id"],
        "team_b": team["id"],
        "acl_b": entry["id"],
        "user_b": bystander["user"]["id"],
    }


def _path(template: str, route_scope, t: dict) -> str:
    ids = {
        scopes.organization: t["org_b"],
        scopes.team: t["team_b"],
        scopes.acl_entry: t["acl_b"],
        scopes.invitation: t["invitation_b"],
        scopes.api_key: t["key_b"],
        scopes.job: t["job_b"],
        jobs.worker_job: t["job_b"],
        scopes.workflow_definition: t["definition_b"],
        scopes.workflow_run: t["run_b"],
        scopes.edge_agent: t["agent_b"],
        scopes.webhook: t["webhook_b"],
        assets.asset_scope: t["asset_b"],
        ops.failure_scope: t["job_b"],
    }
    path = template.replace("{user_id}", t["user_b"])
    path = path.replace("{delivery_id}", t["delivery_b"]).replace("{name}", "b-name")
    path = path.replace("{kind}", "job").replace("{digest}", t["digest_b"])
    if "{id}" in path:
        path = path.replace("{id}", ids.get(route_scope, t["org_b"]))
    assert not re.search(r"\{\w+\}", path), f"add an id for {template}"
    return path


def _body(route, t: dict) -> dict | None:
    if route.body is None:
        return None
    org_b = t["org_b"]
    samples = {
        "NewTeam": {"organization_id": org_b, "name": "stolen"},
        "TeamPatch": {"name": "stolen"},
        "NewTeamMember": {"user_id": t["user_b"]},
        "OrganizationPatch": {"name": "stolen"},
        "NewMember": {"email": "someone@example.test", "role": "member"},
        "MemberPatch": {"role": "viewer"},
        "OrgSettings": {},
        "Check": {"organization_id": org_b, "action": "org.read"},
        "CheckBatch": {"organization_id": org_b, "items": [{"action": "org.read"}]},
        "NewApiKey": {"organization_id": org_b, "name": "k", "scopes": ["org.read"]},
        "ApiKeyPatch": {"name": "stolen"},
        "Rotate": {},
        "NewInvitation": {"organization_id": org_b, "email": "thief@example.test"},
        "NewJob": {"organization_id": org_b, "type": "default"},
        "Claim": {},
        "JobBatch": {"organization_id": org_b, "jobs": [{"type": "default"}]},
        "NewRun": {"organization_id": org_b, "definition_id": t.get("definition_b", org_b)},
        "Signal": {"name": "stolen"},
        "ApprovalDecision": {"node": "gate", "decision": "approve"},
        "AgentRotate": {},
        "NewWebhook": {"organization_id": org_b, "url": "http://127.0.0.1:9/stolen"},
        "WebhookPatch": {"description": "stolen"},
        "SecretRotate": {},
        "SecretValue": {"value": "stolen"},
        "ProviderConfig": {
            "kind": "openai",
            "base_url": "http://127.0.0.1:9/v1",
            "models": [{"name": "m", "input_price": 1, "output_price": 1}],
            "price_version": "stolen",
        },
        "ExecuteRequest": {
            "organization_id": org_b,
            "provider": "b-name",
            "model": "m",
            "messages": [{"role": "user", "content": "stolen"}],
        },
        "NewEnrollment": {"organization_id": org_b},
        "RunFilter": {"organization_id": org_b},
        "NewDefinition": {
            "organization_id": org_b,
            "name": "stolen",
            "nodes": [{"id": "wait", "type": "delay", "seconds": 1}],
        },
        "Items": {"items": [{"id": t.get("job_b", org_b), "lease_token": "stolen"}]},
        "Heartbeat": {"lease_token": "stolen"},
        "Completion": {"lease_token": "stolen"},
        "Failure": {"lease_token": "stolen", "error_code": "stolen"},
        "NewAclEntry": {
            "organization_id": org_b,
            "resource_type": "x",
            "resource_id": "y",
            "action": "z",
            "subject": f"user:{t['user_b']}",
            "effect": "allow",
        },
    }
    # An Annotated body (one that adds schema rules) is named after the struct it wraps.
    name = getattr(route.body, "__origin__", route.body).__name__
    assert name in samples, f"add a sample body for {name}"
    return samples[name]


@pytest.mark.parametrize("route", SCOPED, ids=[f"{r.method} {r.path}" for r in SCOPED])
def test_other_tenants_resources_are_not_found(
    route, granian_server: Server, tenants: dict
) -> None:
    params = {}
    if route.scope in IN_QUERY:
        params["organization_id"] = tenants["org_b"]
    with granian_server.client() as client:
        response = client.request(
            route.method,
            _path(route.path, route.scope, tenants),
            params=params,
            json=_body(route, tenants),
            headers=bearer(tenants["attacker"]),
        )
    assert response.status_code == 404, response.text
    if route.method != "HEAD":  # a HEAD answer has no body
        assert envelope(response)["error"]["code"] == "not_found"


@pytest.mark.parametrize("route", SCOPED, ids=[f"{r.method} {r.path}" for r in SCOPED])
def test_unknown_ids_are_the_same_404(route, granian_server: Server, tenants: dict) -> None:
    ghost = str(uuid.uuid4())
    fake = {
        **tenants,
        "org_b": ghost,
        "team_b": ghost,
        "acl_b": ghost,
        "invitation_b": ghost,
        "key_b": ghost,
        "job_b": ghost,
        "agent_b": ghost,
        "webhook_b": ghost,
        "delivery_b": ghost,
        "asset_b": ghost,
    }
    params = {"organization_id": ghost} if route.scope in IN_QUERY else {}
    with granian_server.client() as client:
        response = client.request(
            route.method,
            _path(route.path, route.scope, fake),
            params=params,
            json=_body(route, fake),
            headers=bearer(tenants["attacker"]),
        )
    assert response.status_code == 404, response.text


def test_every_scoped_route_is_covered() -> None:
    assert len(SCOPED) >= 20
    assert {r.scope for r in SCOPED} <= {
        scopes.organization,
        scopes.organization_in_body,
        scopes.organization_in_query,
        scopes.team,
        scopes.acl_entry,
        scopes.invitation,
        scopes.api_key,
        scopes.job,
        scopes.caller_organization,
        scopes.body_or_key,
        jobs.worker_job,
        scopes.workflow_definition,
        scopes.workflow_run,
        scopes.edge_agent,
        scopes.webhook,
        assets.asset_scope,
        ops.reach_scope,
        ops.failure_scope,
    }
