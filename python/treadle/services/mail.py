"""The mails treadle sends. They are queued in the outbox inside the caller's transaction.

A mail that carries a single-use token (verification, reset, invitation) is queued with
``TOKEN`` where the token goes and the token in a column of its own; the mailer fills it in
when it sends (``render``) and the outbox erases the token in the transaction that records
the send, so no sent mail keeps a usable token. (Not encrypted while pending: we have no
authenticated cipher among our dependencies, and a pending mail normally lives for less
than a second; the token tables themselves hold only keyed hashes.)
"""

from __future__ import annotations

from treadle.settings import Settings
from treadle.store import outbox
from treadle.store.db import Conn

TOKEN = "{token}"


def render(body: str, token: str | None) -> str:
    """The body as it is sent: the token where ``TOKEN`` stands."""
    return body if token is None else body.replace(TOKEN, token)


class Mail:
    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.base_url
        self.verify_hours = settings.verify_token_ttl // 3600
        self.reset_minutes = settings.reset_token_ttl // 60

    async def verification(self, conn: Conn, to: str, token: str) -> None:
        link = f"{self.base_url}/v1/auth/verify?token={TOKEN}"
        await outbox.enqueue(
            conn,
            to,
            "Verify your email address",
            f"Welcome to treadle.\n\nOpen this link to verify your email address:\n{link}\n\n"
            f"The link works once and expires in {self.verify_hours} hours.\n",
            token,
        )

    async def password_reset(self, conn: Conn, to: str, token: str) -> None:
        link = f"{self.base_url}/reset-password?token={TOKEN}"
        await outbox.enqueue(
            conn,
            to,
            "Reset your password",
            "Someone asked to reset the password of your treadle account.\n\n"
            f"Open this link to choose a new one:\n{link}\n\n"
            f"Or POST the token to /v1/auth/reset-password: {TOKEN}\n\n"
            f"It works once and expires in {self.reset_minutes} minutes. "
            "If you did not ask for this, ignore this mail.\n",
            token,
        )

    async def invitation(
        self, conn: Conn, to: str, org_name: str, invitation_id: object, token: str, days: int
    ) -> None:
        link = f"{self.base_url}/invitations/{invitation_id}/accept?token={TOKEN}"
        await outbox.enqueue(
            conn,
            to,
            f"You are invited to join {org_name} on treadle",
            f"You have been invited to join {org_name}.\n\nOpen this link to accept:\n{link}\n\n"
            f"Or, signed in as {to}, POST the token to /v1/invitations/{invitation_id}/accept:"
            f" {TOKEN}\n\nThe invitation works once and expires in {days} days.\n",
            token,
        )
