"""Accounts and sessions over HTTP, with mail received by a real SMTP server."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support.api import PASSWORD, bearer, envelope, error_code, new_email, signup
from tests.support.mailbox import Mailbox
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def login(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/v1/auth/login", json={"email": email, "password": password})


def test_signup_then_me(client: httpx.Client) -> None:
    email = new_email()
    response = client.post(
        "/v1/auth/signup",
        json={"email": email.upper(), "password": PASSWORD, "display_name": "Ada"},
    )
    assert response.status_code == 201
    session = envelope(response)["data"]
    assert session["user"]["email"] == email  # stored lower-cased
    assert session["user"]["email_verified"] is False
    assert session["token_type"] == "Bearer"
    me = envelope(client.get("/v1/me", headers=bearer(session)))["data"]
    assert me["id"] == session["user"]["id"]
    assert me["display_name"] == "Ada"
    assert "password_hash" not in me


def test_password_is_stored_as_argon2id(client: httpx.Client, server: Server) -> None:
    import psycopg

    account = signup(client)
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        (stored,) = conn.execute(
            "SELECT password_hash FROM users WHERE id = %s", (account["user"]["id"],)
        ).fetchone()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_duplicate_signup_is_409(client: httpx.Client) -> None:
    account = signup(client)
    again = client.post(
        "/v1/auth/signup", json={"email": account["user"]["email"], "password": PASSWORD}
    )
    assert again.status_code == 409
    assert error_code(again) == "conflict"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "$.email"),
        ({"email": "a@b.co", "password": "short"}, "$.password"),
        ({"email": "a@b.co"}, "$"),
        ({"email": "a@b.co", "password": PASSWORD, "is_platform_admin": True}, "$"),
    ],
)
def test_signup_validation(client: httpx.Client, body: dict, path: str) -> None:
    response = client.post("/v1/auth/signup", json=body)
    assert response.status_code == 400
    assert envelope(response)["error"]["details"]["path"] == path


def test_login_and_wrong_password_look_the_same_as_unknown_email(client: httpx.Client) -> None:
    account = signup(client)
    ok = login(client, account["user"]["email"])
    wrong = login(client, account["user"]["email"], "not the password!")
    unknown = login(client, new_email("ghost"))
    assert ok.status_code == 200
    assert envelope(ok)["data"]["access_token"]
    assert wrong.status_code == unknown.status_code == 401
    assert envelope(wrong)["error"] == envelope(unknown)["error"]


def test_repeated_failures_lock_the_account_and_admin_unlock_clears_it(
    client: httpx.Client, admin: dict
) -> None:
    account = signup(client)
    email = account["user"]["email"]
    ghost = new_email("ghost")
    for _ in range(3):  # TREADLE_LOGIN_MAX_FAILURES=3 in the test servers
        assert login(client, email, "wrong password!!").status_code == 401
        assert login(client, ghost, "wrong password!!").status_code == 401
    locked = login(client, email)  # even the right password is refused while locked
    ghost_locked = login(client, ghost)
    assert locked.status_code == ghost_locked.status_code == 429
    assert error_code(locked) == error_code(ghost_locked) == "rate_limited"
    assert 0 < int(locked.headers["retry-after"]) <= 60
    assert int(ghost_locked.headers["retry-after"]) > 0
    unlocked = client.post(f"/v1/admin/users/{account['user']['id']}/unlock", headers=bearer(admin))
    assert envelope(unlocked)["data"]["locked"] is False
    assert login(client, email).status_code == 200


def test_refresh_rotates_and_reuse_revokes_the_family(client: httpx.Client) -> None:
    first = signup(client)
    rotated = client.post("/v1/auth/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = envelope(rotated)["data"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["session_id"] == first["session_id"]
    assert client.get("/v1/me", headers=bearer(second)).status_code == 200
    # The spent token comes back: someone has a copy. The whole session dies.
    replay = client.post("/v1/auth/token/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert "revoked" in envelope(replay)["error"]["message"]
    after = client.post("/v1/auth/token/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    assert client.get("/v1/me", headers=bearer(second)).status_code == 401


def test_unknown_refresh_token_is_401(client: httpx.Client) -> None:
    response = client.post("/v1/auth/token/refresh", json={"refresh_token": "nope"})
    assert response.status_code == 401


def test_logout_ends_only_this_session(client: httpx.Client) -> None:
    account = signup(client)
    other = envelope(login(client, account["user"]["email"]))["data"]
    assert client.post("/v1/auth/logout", headers=bearer(account)).status_code == 200
    assert client.get("/v1/me", headers=bearer(account)).status_code == 401
    assert client.get("/v1/me", headers=bearer(other)).status_code == 200
    refresh = client.post(
        "/v1/auth/token/refresh", json={"refresh_token": account["refresh_token"]}
    )
    assert refresh.status_code == 401


def test_logout_all_ends_every_session(client: httpx.Client) -> None:
    account = signup(client)
    other = envelope(login(client, account["user"]["email"]))["data"]
    response = client.post("/v1/auth/logout-all", headers=bearer(account))
    assert envelope(response)["data"]["revoked_sessions"] == 2
    for session in (account, other):
        assert client.get("/v1/me", headers=bearer(session)).status_code == 401


def test_verification_mail_link_verifies_once(client: httpx.Client, mailbox: Mailbox) -> None:
    account = signup(client)
    email = account["user"]["email"]
    [mail] = mailbox.wait(email)
    assert mail["Subject"] == "Verify your email address"
    link = next(
        line for line in mail.get_content().splitlines() if "/v1/auth/verify?token=" in line
    )
    path = link[link.index("/v1/auth/verify") :]
    verified = client.get(path)
    assert verified.status_code == 200
    assert envelope(verified)["data"]["email_verified"] is True
    again = client.get(path)
    assert again.status_code == 400
    assert envelope(client.get("/v1/me", headers=bearer(account)))["data"]["email_verified"] is True


def test_resend_verification_invalidates_the_old_link(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    account = signup(client)
    email = account["user"]["email"]
    old = mailbox.token(email)
    response = client.post("/v1/auth/resend-verification", json={"email": email})
    assert response.status_code == 202
    new = mailbox.token(email, count=2)
    assert new != old
    assert client.get("/v1/auth/verify", params={"token": old}).status_code == 400
    assert client.get("/v1/auth/verify", params={"token": new}).status_code == 200


def test_forgot_password_answers_the_same_for_unknown_email(
    client: httpx.Client, mailbox: Mailbox
) -> None:
    account = signup(client)
    known = client.post("/v1/auth/forgot-password", json={"email": account["user"]["email"]})
    ghost_email = new_email("ghost")
    unknown = client.post("/v1/auth/forgot-password", json={"email": ghost_email})
    assert known.status_code == unknown.status_code == 202
    assert envelope(known)["data"] == envelope(unknown)["data"]
    mailbox.wait(account["user"]["email"], count=2)  # verification + reset
    time.sleep(0.5)
    assert mailbox.for_address(ghost_email) == []


def test_reset_password_flow(client: httpx.Client, mailbox: Mailbox) -> None:
    account = signup(client)
    email = account["user"]["email"]
    client.post("/v1/auth/forgot-password", json={"email": email})
    mails = mailbox.wait(email, count=2)
    reset = next(m for m in mails if m["Subject"] == "Reset your password")
    token = reset.get_content().split("token=")[1].split()[0]
    new_password = "a brand new passphrase"
    done = client.post(
        "/v1/auth/reset-password", json={"token": token, "new_password": new_password}
    )
    assert done.status_code == 200
    assert client.get("/v1/me", headers=bearer(account)).status_code == 401  # sessions ended
    assert login(client, email).status_code == 401
    assert login(client, email, new_password).status_code == 200
    reused = client.post(
        "/v1/auth/reset-password", json={"token": token, "new_password": "another one 123"}
    )
    assert reused.status_code == 400


def test_change_password_revokes_every_session_and_opens_a_new_one(client: httpx.Client) -> None:
    account = signup(client)
    other = envelope(login(client, account["user"]["email"]))["data"]
    wrong = client.post(
        "/v1/auth/change-password",
        json={"current_password": "not it at all", "new_password": "new passphrase 1"},
        headers=bearer(account),
    )
    assert wrong.status_code == 403
    changed = client.post(
        "/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "new passphrase 1"},
        headers=bearer(account),
    )
    assert changed.status_code == 200
    fresh = envelope(changed)["data"]
    for old in (account, other):
        assert client.get("/v1/me", headers=bearer(old)).status_code == 401
    assert client.get("/v1/me", headers=bearer(fresh)).status_code == 200
    assert login(client, account["user"]["email"], "new passphrase 1").status_code == 200


def test_expired_access_token_is_refused(server: Server) -> None:
    import orjson

    from treadle._core import derive_key, jwt_encode

    with server.client() as client:
        account = signup(client)
    key = derive_key("treadle 2026 access-token signing", server.env["TREADLE_SECRET_KEY"].encode())
    claims = {
        "iss": "treadle",
        "sub": account["user"]["id"],
        "sid": account["session_id"],
        "iat": int(time.time()) - 100,
        "exp": int(time.time()) - 60,
    }
    expired = jwt_encode(orjson.dumps(claims), key)
    forged = jwt_encode(orjson.dumps({**claims, "exp": int(time.time()) + 600}), b"k" * 32)
    with server.client() as client:
        too_old = client.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
        wrong_key = client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert too_old.status_code == wrong_key.status_code == 401
    assert "expired" in envelope(too_old)["error"]["message"]


def test_account_changes_are_in_the_platform_audit_log(client: httpx.Client, admin: dict) -> None:
    account = signup(client)
    user_id = account["user"]["id"]
    login(client, account["user"]["email"]).raise_for_status()
    client.post("/v1/auth/logout-all", headers=bearer(account)).raise_for_status()
    client.post(f"/v1/admin/users/{user_id}/verify", headers=bearer(admin)).raise_for_status()
    rows = envelope(
        client.get("/v1/audit-logs", params={"target_id": user_id}, headers=bearer(admin))
    )["data"]
    actions = [r["action"] for r in rows]
    assert actions == ["user.verify", "user.logout_all", "user.signup"]
    verify, _, created = rows
    assert (created["actor_id"], created["principal_type"]) == (user_id, "user")
    assert created["after"]["email"] == account["user"]["email"]
    assert "password" not in str(created)
    assert verify["actor_id"] == admin["user"]["id"]
    assert (verify["before"]["email_verified"], verify["after"]["email_verified"]) == (False, True)
    logins = envelope(
        client.get(
            "/v1/audit-logs",
            params={"action": "user.login", "actor_id": user_id},
            headers=bearer(admin),
        )
    )["data"]
    assert len(logins) == 1


def test_refresh_tokens_are_stored_only_as_keyed_hashes(
    client: httpx.Client, server: Server
) -> None:
    import psycopg

    account = signup(client)
    with psycopg.connect(server.env["TREADLE_DATABASE_URL"]) as conn:
        hashes = [
            r[0]
            for r in conn.execute(
                "SELECT token_hash FROM refresh_tokens WHERE session_id = %s",
                (account["session_id"],),
            )
        ]
    assert len(hashes) == 1
    assert account["refresh_token"] not in hashes[0]
    assert len(hashes[0]) == 64
