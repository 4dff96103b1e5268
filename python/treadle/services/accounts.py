"""Accounts: signup, sign-in with lockout, password flows, email verification, admin actions."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from treadle import clock
from treadle._core import keyed_hash, random_token
from treadle.bus.redis import UNAVAILABLE, Client
from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.mail import Mail
from treadle.services.passwords import Passwords, check_new
from treadle.services.principal import Actor
from treadle.services.sessions import Sessions
from treadle.settings import Settings
from treadle.store import sessions as session_store
from treadle.store import users as user_store
from treadle.store.db import Database

Row = dict[str, Any]
WRONG_CREDENTIALS = "email or password is wrong"
# One mail of a kind per address per this many seconds, whatever the caller asks.
MAIL_INTERVAL = 60


def public_user(row: Row) -> Row:
    return {
        "id": row["id"],
        "email": row["email"],
        "display_name": row["display_name"],
        "email_verified": row["email_verified_at"] is not None,
        "email_verified_at": row["email_verified_at"],
        "is_platform_admin": row["is_platform_admin"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def admin_user(row: Row) -> Row:
    now = clock.now()
    return {
        **public_user(row),
        "locked": user_store.is_locked(row, now),
        "locked_until": row["locked_until"] if user_store.is_locked(row, now) else None,
        "failed_logins": row["failed_logins"],
        "deleted_at": row["deleted_at"],
    }


class Accounts:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: Client,
        sessions: Sessions,
        passwords: Passwords,
        mail: Mail,
        wake_mailer: Any,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.sessions = sessions
        self.passwords = passwords
        self.mail = mail
        self.wake_mailer = wake_mailer
        self.prefix = settings.redis_prefix

    # -- signup and sign-in ---------------------------------------------------------------

    async def signup(self, actor: Actor, email: str, password: str, name: str) -> Row:
        check_new(password, email)
        password_hash = await self.passwords.hash(password)
        try:
            async with self.db.transaction() as conn:
                user = await user_store.insert(conn, uuid.uuid4(), email, name, password_hash)
                await self._send_verification(conn, user)
                tokens = await self.sessions.issue(conn, user, actor.user_agent, actor.ip)
                await audit.record(
                    conn,
                    actor,
                    None,
                    "user.signup",
                    "user",
                    user["id"],
                    None,
                    public_user(user),
                    as_user=user["id"],
                )
        except psycopg.errors.UniqueViolation:
            raise ApiError.conflict(
                "an account with this email already exists; sign in or reset the password",
                path="$.email",
            ) from None
        self.wake_mailer()
        return {"user": public_user(user), **tokens}

    async def login(self, actor: Actor, email: str, password: str) -> Row:
        async with self.db.connection() as conn:
            user = await user_store.credentials_by_email(conn, email)
        if user is None:
            # Unknown addresses are counted and locked like accounts, so the answers match.
            await self._reserve_unknown(email)
            await self.passwords.verify(None, password)
            raise ApiError.unauthenticated(WRONG_CREDENTIALS)
        right, own_lock = await self._checked(user["id"], user["password_hash"], password)
        if not right:
            raise ApiError.unauthenticated(WRONG_CREDENTIALS)
        async with self.db.transaction() as conn:
            await self._clear_or_refuse(conn, user["id"], own_lock)
            tokens = await self.sessions.issue(conn, user, actor.user_agent, actor.ip)
            await audit.record(
                conn, actor, None, "user.login", "session", tokens["session_id"], as_user=user["id"]
            )
        return {"user": public_user(user), **tokens}

    async def _checked(
        self, user_id: UUID, stored: str | None, password: str
    ) -> tuple[bool, datetime | None]:
        """Check a password under the account's lockout. The attempt is counted as a
        failure before the hash runs, in one locked transaction, so concurrent attempts
        cannot all see the account unlocked: at most ``login_max_failures`` checks run
        before the lock. Whether the password is right, and the lock this very attempt set
        (it was the last one allowed) or None, for ``_clear_or_refuse``."""
        async with self.db.transaction() as conn:
            state = await user_store.lockout_state(conn, user_id)
            if state is None:
                raise ApiError.unauthenticated(WRONG_CREDENTIALS)
            now = clock.now()
            if user_store.is_locked(state, now):
                raise _locked((state["locked_until"] - now).total_seconds())
            state = await user_store.record_failure(
                conn, user_id, self.settings.login_max_failures, self.settings.login_lockout_seconds
            )
        own_lock = state["locked_until"] if user_store.is_locked(state, clock.now()) else None
        if not await self.passwords.verify(stored, password):
            if own_lock is not None:
                await self.sessions.announce([], user_id)
            return False, own_lock
        return True, own_lock

    async def _clear_or_refuse(self, conn: Any, user_id: UUID, own_lock: datetime | None) -> None:
        """A right password still loses to a lock another attempt set meanwhile: inside a
        burst of guesses, the right one does not get in."""
        if not await user_store.clear_failures_unless_locked(conn, user_id, own_lock):
            raise _locked(self.settings.login_lockout_seconds)

    async def _reserve_unknown(self, email: str) -> None:
        """Count the attempt before its (decoy) check: past the limit, locked."""
        key = self._key("login-fail", email)
        seconds = self.settings.login_lockout_seconds
        try:
            count = await self.redis.incr(key)
            if count == 1 or count == self.settings.login_max_failures:
                # The lock runs from the failure that reached the limit.
                await self.redis.expire(key, seconds)
            if count > self.settings.login_max_failures:
                ttl = await self.redis.ttl(key)
                raise _locked(ttl if ttl > 0 else seconds)
        except UNAVAILABLE:
            pass

    def _key(self, kind: str, email: str) -> str:
        return f"{self.prefix}{kind}:{keyed_hash(self.sessions.hash_key, email.encode())}"

    # -- sessions ------------------------------------------------------------------------

    async def logout(self, actor: Actor) -> None:
        session_id = actor.signed_in.session_id
        if session_id is None:
            raise ApiError.forbidden("only a signed-in session can sign out")
        async with self.db.transaction() as conn:
            await session_store.revoke(conn, session_id, "logout")
            await audit.record(conn, actor, None, "session.revoke", "session", session_id)
        await self.sessions.announce([session_id])

    async def logout_all(self, actor: Actor, user_id: UUID, reason: str = "logout_all") -> int:
        async with self.db.transaction() as conn:
            revoked = await self.sessions.revoke_all(conn, user_id, reason)
            await audit.record(
                conn,
                actor,
                None,
                f"user.{reason}",
                "user",
                user_id,
                None,
                {"revoked_sessions": len(revoked)},
            )
        await self.sessions.announce(revoked)
        return len(revoked)

    # -- email verification ----------------------------------------------------------------

    async def _send_verification(self, conn: Any, user: Row) -> None:
        token = random_token(32)
        expires = clock.now() + timedelta(seconds=self.settings.verify_token_ttl)
        await session_store.void_user_tokens(conn, user["id"], "verify_email")
        await session_store.add_user_token(
            conn, self.sessions.hash_token(token), user["id"], "verify_email", expires
        )
        await self.mail.verification(conn, user["email"], token)

    async def verify_email(self, actor: Actor, token: str) -> Row:
        async with self.db.transaction() as conn:
            user_id = await session_store.spend_user_token(
                conn, self.sessions.hash_token(token), "verify_email"
            )
            user = None if user_id is None else await user_store.mark_verified(conn, user_id)
            if user is not None:
                await audit.record(
                    conn, actor, None, "user.email.verify", "user", user["id"], as_user=user["id"]
                )
        if user is None:
            raise ApiError.bad_request(
                "verification token is not valid, was already used, or has expired;"
                " ask for a new one with /v1/auth/resend-verification",
                reason="invalid_token",
            )
        await self.sessions.announce([], user["id"])
        return public_user(user)

    async def resend_verification(self, email: str) -> None:
        if not await self._mail_allowed("verify", email):
            return
        async with self.db.transaction() as conn:
            user = await user_store.credentials_by_email(conn, email)
            if user is None or user["email_verified_at"] is not None:
                return
            await self._send_verification(conn, user)
        self.wake_mailer()

    # -- passwords ---------------------------------------------------------------------

    async def forgot_password(self, email: str) -> None:
        if not await self._mail_allowed("reset", email):
            return
        token = random_token(32)
        expires = clock.now() + timedelta(seconds=self.settings.reset_token_ttl)
        async with self.db.transaction() as conn:
            user = await user_store.credentials_by_email(conn, email)
            if user is None:
                return
            await session_store.void_user_tokens(conn, user["id"], "reset_password")
            await session_store.add_user_token(
                conn, self.sessions.hash_token(token), user["id"], "reset_password", expires
            )
            await self.mail.password_reset(conn, user["email"], token)
        self.wake_mailer()

    async def reset_password(self, actor: Actor, token: str, new_password: str) -> None:
        async with self.db.transaction() as conn:
            user_id = await session_store.spend_user_token(
                conn, self.sessions.hash_token(token), "reset_password"
            )
            user = None if user_id is None else await user_store.by_id(conn, user_id)
            if user is None:
                raise ApiError.bad_request(
                    "reset token is not valid, was already used, or has expired;"
                    " ask for a new one with /v1/auth/forgot-password",
                    reason="invalid_token",
                )
            check_new(new_password, user["email"], "new_password")
            password_hash = await self.passwords.hash(new_password)
            await user_store.set_password(conn, user["id"], password_hash)
            revoked = await self.sessions.revoke_all(conn, user["id"], "password_reset")
            await audit.record(
                conn,
                actor,
                None,
                "user.password.reset",
                "user",
                user["id"],
                None,
                {"revoked_sessions": len(revoked)},
                as_user=user["id"],
            )
        await self.sessions.announce(revoked, user["id"])

    async def change_password(self, actor: Actor, current: str, new: str) -> Row:
        principal = actor.signed_in
        user_id = principal.account
        check_new(new, principal.email, "new_password")
        async with self.db.connection() as conn:
            stored = await user_store.password_hash(conn, user_id)
        # Wrong current passwords count toward the sign-in lockout: a stolen session must
        # not become an unlimited password oracle.
        right, own_lock = await self._checked(user_id, stored, current)
        if not right:
            raise ApiError.forbidden("current_password is wrong")
        password_hash = await self.passwords.hash(new)
        async with self.db.transaction() as conn:
            await self._clear_or_refuse(conn, user_id, own_lock)
            await user_store.set_password(conn, user_id, password_hash)
            revoked = await self.sessions.revoke_all(conn, user_id, "password_change")
            user = await user_store.by_id(conn, user_id)
            assert user is not None
            tokens = await self.sessions.issue(conn, user, actor.user_agent, actor.ip)
            await audit.record(
                conn,
                actor,
                None,
                "user.password.change",
                "user",
                user_id,
                None,
                {"revoked_sessions": len(revoked)},
            )
        await self.sessions.announce(revoked, user_id)
        return {"user": public_user(user), **tokens}

    async def _mail_allowed(self, kind: str, email: str) -> bool:
        try:
            return bool(
                await self.redis.set(self._key(f"mail-{kind}", email), 1, nx=True, ex=MAIL_INTERVAL)
            )
        except UNAVAILABLE:
            return True

    # -- platform admin ------------------------------------------------------------------

    async def admin_get(self, user_id: UUID) -> Row:
        async with self.db.connection() as conn:
            row = await user_store.by_id(conn, user_id, live=False)
        if row is None:
            raise ApiError.not_found("no such user")
        return admin_user(row)

    async def admin_list(self, **query: Any) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            rows, total = await user_store.page(conn, **query)
        return [admin_user(r) for r in rows], total

    async def admin_delete(self, actor: Actor, user_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            row = await user_store.soft_delete(conn, user_id)
            if row is None:
                raise ApiError.not_found("no such user")
            revoked = await self.sessions.revoke_all(conn, user_id, "account_deleted")
            await audit.record(
                conn,
                actor,
                None,
                "user.delete",
                "user",
                user_id,
                None,
                {"revoked_sessions": len(revoked)},
            )
        await self.sessions.announce(revoked, user_id)
        return admin_user(row)

    async def admin_unlock(self, actor: Actor, user_id: UUID) -> Row:
        return await self._admin_change(actor, user_id, "user.unlock", user_store.clear_failures)

    async def admin_verify(self, actor: Actor, user_id: UUID) -> Row:
        return await self._admin_change(actor, user_id, "user.verify", user_store.mark_verified)

    async def _admin_change(self, actor: Actor, user_id: UUID, action: str, change: Any) -> Row:
        async with self.db.transaction() as conn:
            before = await user_store.by_id(conn, user_id)
            if before is None:
                raise ApiError.not_found("no such user")
            await change(conn, user_id)
            row = await user_store.by_id(conn, user_id)
            assert row is not None
            await audit.record(
                conn, actor, None, action, "user", user_id, admin_user(before), admin_user(row)
            )
        await self.sessions.announce([], user_id)
        return admin_user(row)


def _locked(seconds: float) -> ApiError:
    wait = max(1, int(seconds + 0.999))
    return ApiError.rate_limited(
        f"too many failed sign-ins; try again in {wait} seconds or reset the password", wait
    )
