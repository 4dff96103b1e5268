"""Many rows sent to PostgreSQL as one parameter: a JSON array of objects, read back as a set
of typed rows with ``jsonb_to_recordset``.

This is how the batch statements (jobs, usage, outbox) stay one statement whatever their
size, and it is cheaper than ``unnest`` over one typed array per column: psycopg dumps the
elements of an array one by one in Python, while this is one ``orjson.dumps`` call and one
parse in PostgreSQL (measured on the batch worker routes: the array dumping was the largest
single part of their profile). Text may not hold NUL here, which the body decoder already
refuses everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import orjson
from psycopg.types.json import Jsonb


def _exact(value: Any) -> str:
    # numeric columns get the digits themselves, not a float's approximation of them
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_exact)


def rows_from(alias: str, columns: Mapping[str, str]) -> str:
    """SQL for the set of rows in one ``%s`` parameter, as ``alias`` with ``columns`` (name
    to type) and ``n``, each row's position from 1 (``ORDER BY n`` keeps the given order)."""
    typed = ", ".join(f"{name} {kind}" for name, kind in columns.items())
    return (
        f"ROWS FROM (jsonb_to_recordset(%s::jsonb) AS ({typed}))"
        f" WITH ORDINALITY AS {alias}({', '.join(columns)}, n)"
    )


def param(rows: Iterable[Mapping[str, Any]], columns: Iterable[str]) -> Jsonb:
    """The parameter for ``rows_from``: each row's ``columns``; a ``None`` or a missing key
    is SQL NULL."""
    names = tuple(columns)
    return Jsonb([{name: row.get(name) for name in names} for row in rows], dumps=_dumps)
