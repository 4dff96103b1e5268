"""The bare Robyn hello-world: the baseline for the Robyn rows of http_compare.py.

Alone: ``python bench/hello_robyn.py --port 8080 --processes 1 --workers 1``.

The handler is ``async`` like treadle's (its kernel is async), so the comparison measures
treadle's work rather than Robyn's sync-versus-async dispatch.
"""

from __future__ import annotations

import argparse

from robyn import Response, Robyn

BODY = b'{"status":"ok"}'

app = Robyn(__file__)


@app.get("/")  # type: ignore[untyped-decorator]
async def hello() -> Response:
    return Response(200, {"content-type": "application/json"}, BODY)


if __name__ == "__main__":
    # Robyn reads --processes/--workers/--log-level itself and ignores the rest.
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args, _ = parser.parse_known_args()
    app.start(host=args.host, port=args.port)
