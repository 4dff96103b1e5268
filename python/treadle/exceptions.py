"""The exception hierarchy of the Rust core, re-exported in one place."""

from __future__ import annotations

from treadle._core import AuthzError, CoreError, FanoutError, RouteError, TokenError

__all__ = ["AuthzError", "CoreError", "FanoutError", "RouteError", "TokenError"]
