"""Standard Webhooks signatures from treadle._core: the specification's published example,
and what the specification's own Python library accepts."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from treadle import _core

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'


def test_the_specifications_example() -> None:
    signature = _core.webhook_sign([SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert _core.webhook_verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, signature)
    assert not _core.webhook_verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, b"{}", signature)


PAYLOADS = st.dictionaries(
    st.text(max_size=12), st.integers() | st.text(max_size=40) | st.booleans(), max_size=12
)


@given(payload=PAYLOADS, msg_id=st.from_regex(r"\Amsg_[A-Za-z0-9]{1,32}\Z"))
def test_the_reference_library_verifies_what_treadle_signs(payload: dict, msg_id: str) -> None:
    # The library parses the body as JSON once it has verified it: payloads are JSON.
    body = json.dumps(payload).encode()
    secret = _core.webhook_secret()
    now = int(time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(now),
        "webhook-signature": _core.webhook_sign([secret], msg_id, now, body),
    }
    Webhook(secret).verify(body, headers)
    tampered = {**headers, "webhook-id": msg_id + "x"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, tampered)


def test_a_rotation_signs_with_both_secrets_and_either_receiver_verifies() -> None:
    old, new = _core.webhook_secret(), _core.webhook_secret()
    assert old != new and len(base64.b64decode(new.removeprefix("whsec_"))) == 32
    now = int(time.time())
    header = _core.webhook_sign([new, old], "msg_1", now, b"{}")
    assert len(header.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(
            b"{}",
            {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header},
        )


def test_secrets_that_are_not_whsec_base64_of_24_to_64_bytes_are_refused() -> None:
    for bad in ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***", "whsec_AAAA"):
        with pytest.raises(ValueError):
            _core.webhook_sign([bad], "msg_1", 0, b"")
