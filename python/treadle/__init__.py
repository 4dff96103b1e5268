"""treadle: a multi-tenant control plane for agent and workflow platforms."""

from __future__ import annotations

from treadle._core import __version__

__all__ = ["__version__"]
