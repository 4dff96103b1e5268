"""Thin handlers, one module per resource family; ``routes()`` is the whole table."""

from __future__ import annotations

from treadle.web.routing import Route


def routes() -> list[Route]:
    from treadle.api import (
        admin,
        api_keys,
        approvals,
        assets,
        audit,
        auth,
        authz,
        edge_agents,
        events,
        invitations,
        job_batches,
        jobs,
        me,
        meta,
        ops,
        organizations,
        providers,
        secrets,
        teams,
        telemetry,
        usage,
        webhooks,
        workflow_definitions,
        workflow_runs,
    )

    return [
        *meta.ROUTES,
        *auth.ROUTES,
        *me.ROUTES,
        *admin.ROUTES,
        *organizations.ROUTES,
        *teams.ROUTES,
        *invitations.ROUTES,
        *api_keys.ROUTES,
        *authz.ROUTES,
        *audit.ROUTES,
        *jobs.ROUTES,
        *job_batches.ROUTES,
        *usage.ROUTES,
        *workflow_definitions.ROUTES,
        *workflow_runs.ROUTES,
        *approvals.ROUTES,
        *edge_agents.ROUTES,
        *telemetry.ROUTES,
        *webhooks.ROUTES,
        *secrets.ROUTES,
        *providers.ROUTES,
        *assets.ROUTES,
        *ops.ROUTES,
        *events.ROUTES,
    ]
