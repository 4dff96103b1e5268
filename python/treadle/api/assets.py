"""Assets routes (issue 13)."""

from __future__ import annotations

from treadle.web.routing import Route

ROUTES: list[Route] = []
