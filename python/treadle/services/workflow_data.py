"""What a workflow run's templates and conditions read: the run's input, its nodes' outputs
and, in a map, the item. Paths are dot-separated names (list items by index); a reference to
what the run does not hold is an error, a condition on it is false (``missing`` is true)."""

from __future__ import annotations

import operator
from typing import Any

Row = dict[str, Any]
_MISSING = object()


class Missing(Exception):
    """A reference names a value the run does not hold."""


def _lookup(path: str, data: Row) -> Any:
    value: Any = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def resolve(template: Any, data: Row) -> Any:
    if isinstance(template, dict):
        if set(template) == {"$ref"}:
            value = _lookup(template["$ref"], data)
            if value is _MISSING:
                raise Missing(f"{template['$ref']} names nothing this run holds")
            return value
        return {k: resolve(v, data) for k, v in template.items()}
    if isinstance(template, list):
        return [resolve(v, data) for v in template]
    return template


def holds(test: Row, data: Row) -> bool:
    if test.get("all") is not None:
        return all(holds(t, data) for t in test["all"])
    if test.get("any") is not None:
        return any(holds(t, data) for t in test["any"])
    if test.get("not") is not None:
        return not holds(test["not"], data)
    value = _lookup(test["field"], data)
    op: str = test["op"]
    expected: Any = test.get("value")
    if op == "exists":
        return value is not _MISSING
    if op == "missing":
        return value is _MISSING
    if value is _MISSING:
        return False
    if op == "eq":
        return bool(value == expected)
    if op == "ne":
        return bool(value != expected)
    if op in ("in", "not_in"):
        return bool((value in expected) == (op == "in"))
    # Order compares numbers with numbers and strings with strings; anything else is false.
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in (value, expected))
    strings = isinstance(value, str) and isinstance(expected, str)
    if not (numbers or strings):
        return False
    return bool(_ORDER[op](value, expected))


_ORDER = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}
