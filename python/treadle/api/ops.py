"""Operations views: what failed, the queues, and the health of each component."""

from __future__ import annotations

from treadle.web.routing import Route

ROUTES: list[Route] = []
