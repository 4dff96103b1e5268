"""A real SMTP server (aiosmtpd) that keeps what it receives, for following mailed links."""

from __future__ import annotations

import re
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.support.servers import free_port

# Recipients whose local part starts with this are refused for good (550), as a real
# server refuses a mailbox that does not exist.
REFUSED = "refused-"


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith(REFUSED):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        with self.box.lock:
            for rcpt in envelope.rcpt_tos:
                self.box.messages.append((rcpt.lower(), message))
        return "250 OK"


# The catcher the test servers send to, once the session has started it.
_running: Mailbox | None = None


def running() -> Mailbox:
    assert _running is not None, "no mailbox started: use the mailbox fixture"
    return _running


class Mailbox:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[tuple[str, EmailMessage]] = []
        self.lock = threading.Lock()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        global _running
        self.controller.start()
        _running = self

    def stop(self) -> None:
        global _running
        self.controller.stop()
        _running = None

    def for_address(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpt, m in self.messages if rcpt == address.lower()]

    def wait(self, address: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.for_address(address)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"expected {count} mail(s) to {address}, got {len(self.for_address(address))}"
        )

    def token(self, address: str, index: int = -1, count: int = 1) -> str:
        """The token of the link in the ``index``-th mail to ``address``."""
        body = self.wait(address, count)[index].get_content()
        match = re.search(r"token=([A-Za-z0-9_-]+)", body)
        assert match, body
        return match.group(1)

    def invitation_token(self, address: str, invitation_id: str, timeout: float = 10.0) -> str:
        """The token mailed to ``address`` for invitation ``invitation_id``."""
        pattern = re.compile(rf"/invitations/{invitation_id}/accept\?token=([A-Za-z0-9_-]+)")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for mail in self.for_address(address):
                found = pattern.search(mail.get_content())
                if found:
                    return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no mail to {address} for invitation {invitation_id}")
