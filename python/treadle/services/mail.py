"""The mails treadle sends. They are queued in the outbox inside the caller's transaction."""

from __future__ import annotations

from treadle.settings import Settings
from treadle.store import outbox
from treadle.store.db import Conn


class Mail:
    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.base_url
        self.verify_hours = settings.verify_token_ttl // 3600
        self.reset_minutes = settings.reset_token_ttl // 60

    async def verification(self, conn: Conn, to: str, token: str) -> None:
        link = f"{self.base_url}/v1/auth/verify?token={token}"
        await outbox.enqueue(
            conn,
            to,
            "Verify your email address",
            f"Welcome to treadle.\n\nOpen this link to verify your email address:\n{link}\n\n"
            f"The link works once and expires in {self.verify_hours} hours.\n",
        )

    async def password_reset(self, conn: Conn, to: str, token: str) -> None:
        link = f"{self.base_url}/reset-password?token={token}"
        await outbox.enqueue(
            conn,
            to,
            "Reset your password",
            "Someone asked to reset the password of your treadle account.\n\n"
            f"Open this link to choose a new one:\n{link}\n\n"
            f"Or POST the token to /v1/auth/reset-password: {token}\n\n"
            f"It works once and expires in {self.reset_minutes} minutes. "
            "If you did not ask for this, ignore this mail.\n",
        )

    async def invitation(
        self, conn: Conn, to: str, org_name: str, invitation_id: object, token: str, days: int
    ) -> None:
        link = f"{self.base_url}/invitations/{invitation_id}/accept?token={token}"
        await outbox.enqueue(
            conn,
            to,
            f"You are invited to join {org_name} on treadle",
            f"You have been invited to join {org_name}.\n\nOpen this link to accept:\n{link}\n\n"
            f"Or, signed in as {to}, POST the token to /v1/invitations/{invitation_id}/accept:"
            f" {token}\n\nThe invitation works once and expires in {days} days.\n",
        )
