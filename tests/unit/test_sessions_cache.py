"""What ``Sessions.authenticate`` keeps between requests (verified tokens, built principals)
never lets through what a fresh check would refuse: an expired token, a tampered one, a
revoked session, or an account whose rows changed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.support.warm import offline_sessions, run, signed_in
from treadle import clock
from treadle._core import jwt_encode
from treadle.services import sessions as sessions_module
from treadle.services.sessions import Sessions
from treadle.web.errors import ApiError
from treadle.web.errors import status as http_status


@pytest.fixture
def warm() -> dict[str, Any]:
    sessions = offline_sessions()
    return {"sessions": sessions, **signed_in(sessions, expires_in=60)}


def refusal(sessions: Sessions, token: str) -> str:
    with pytest.raises(ApiError) as caught:
        run(sessions.authenticate(token))
    assert http_status(caught.value) == 401
    return caught.value.message


def test_a_verified_token_is_refused_once_it_expires(
    warm: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions, token = warm["sessions"], warm["token"]
    assert run(sessions.authenticate(token)).email == "a@example.com"
    assert token in sessions._verified
    later = warm["now"] + 60 + sessions_module.JWT_LEEWAY
    monkeypatch.setattr(clock, "epoch", lambda: later)
    assert "expired" in refusal(sessions, token)


def test_a_tampered_token_never_hits_what_its_original_left(warm: dict[str, Any]) -> None:
    sessions, token = warm["sessions"], warm["token"]
    run(sessions.authenticate(token))
    head, body, mac = token.split(".")
    forged = ".".join((head, body, ("A" if mac[0] != "A" else "B") + mac[1:]))
    assert refusal(sessions, forged) == "access token is not valid"


def test_a_revoked_session_and_a_changed_account_are_seen_at_once(warm: dict[str, Any]) -> None:
    sessions, token = warm["sessions"], warm["token"]
    first = run(sessions.authenticate(token))
    assert run(sessions.authenticate(token)) is first  # built once while the rows stay
    sid, uid = str(warm["session"]["id"]), str(warm["user"]["id"])
    sessions.user_cache.put(uid, {**warm["user"], "email": "b@example.com"})
    assert run(sessions.authenticate(token)).email == "b@example.com"
    sessions.session_cache.put(sid, {**warm["session"], "revoked_at": clock.now()})
    assert "session has ended" in refusal(sessions, token)


def test_the_caches_stay_bounded(warm: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions_module, "VERIFIED_MAX", 3)
    sessions = warm["sessions"]
    now = warm["now"]
    for i in range(10):
        claims = {
            "sub": str(warm["user"]["id"]),
            "sid": str(warm["session"]["id"]),
            "exp": now + i + 10,
        }
        run(sessions.authenticate(jwt_encode(orjson.dumps(claims), sessions.jwt_key)))
        assert len(sessions._verified) <= 3
