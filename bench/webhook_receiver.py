"""The webhook receiver of bench/webhook_delivery.py: a bare Granian RSGI app that verifies
every delivery with the ``standardwebhooks`` package and notes when it arrived.

``POST /_secret`` sets the secret to verify with (and forgets what arrived); ``GET
/_report`` answers, for each delivery: its webhook-id, the event's job id, whether it
verified, how long after the event's ``occurred_at`` it arrived (ms), and when (epoch s).

Alone, from bench/: ``granian --interface rsgi webhook_receiver:app``.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

OK = [("content-type", "text/plain")]
_state: dict[str, Any] = {"hook": None, "seen": []}


async def app(scope: Any, proto: Any) -> None:
    if scope.path == "/_report":
        proto.response_bytes(
            200, [("content-type", "application/json")], orjson.dumps(_state["seen"])
        )
        return
    body = await proto()
    if scope.path == "/_secret":
        _state["hook"], _state["seen"] = Webhook(body.decode()), []
        proto.response_bytes(200, OK, b"ok")
        return
    arrived = time.time()
    headers = {
        name: scope.headers.get(name)
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    }
    try:
        _state["hook"].verify(body, headers)
        verified = True
    except (WebhookVerificationError, AttributeError):
        verified = False
    event = orjson.loads(body)
    occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
    _state["seen"].append(
        (headers["webhook-id"], event.get("job_id"), verified, (arrived - occurred) * 1000, arrived)
    )
    proto.response_bytes(200, OK, b"ok")
