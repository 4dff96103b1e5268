"""What the workflow tests share: an organization whose owner defines and runs workflows."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import bearer
from tests.support.jobs import job_org


def workflow_org(client: httpx.Client) -> dict[str, Any]:
    """``job_org`` (job types render, quick, brief; submitting and worker keys), with the
    owner's credentials as ``defs`` for the workflow routes."""
    org = job_org(client)
    org["defs"] = bearer(org["owner"])
    return org
