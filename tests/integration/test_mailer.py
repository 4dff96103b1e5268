"""The mailer against a real SMTP server: one bad mail never stops the others, transient
failures are retried, mailed tokens do not outlive the send, and retention prunes mail and
platform audit rows."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import bearer, create_org, new_email, signup
from tests.support.mailbox import REFUSED, Mailbox
from tests.support.servers import Server, free_port
from treadle.settings import Settings
from treadle.store.db import Database
from treadle.store.migrate import migrate
from treadle.workers.mailer import Mailer


@pytest.fixture
def own_database(database_url: str) -> Iterator[str]:
    """A database of its own: the test servers' mailers must not take these mails."""
    name = f"treadle_mail_{secrets.token_hex(4)}"
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(database_url, dbname=name)
    migrate(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _queue(url: str, to: str, subject: str, body: str = "hello\n") -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO mail_outbox (to_address, subject, body) VALUES (%s, %s, %s) RETURNING id",
            (to, subject, body),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _mail(url: str, mail_id: int) -> dict[str, Any]:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute("SELECT * FROM mail_outbox WHERE id = %s", (mail_id,)).fetchone()
    assert row is not None
    return row


def _send(url: str, smtp_url: str, passes: int = 3) -> list[int]:
    """Run the mailer's sending passes in this process; what each pass took."""

    async def run() -> list[int]:
        db = Database(url, 1, 2)
        await db.open()
        try:
            mailer = Mailer(Settings(smtp_url=smtp_url, mail_from="treadle@example.test"), db)
            return [await mailer.send_due() for _ in range(passes)]
        finally:
            await db.close()

    return asyncio.run(run())


def test_one_bad_mail_never_stops_the_others(own_database: str, mailbox: Mailbox) -> None:
    """Regression (issue 8, item 9): a CR/LF in a header (an organization name in an
    invitation's subject) raised out of the mailer's batch, rolled it back and came first
    again on every pass, so no mail of the deployment went out."""
    victim = new_email("victim")
    poisoned = _queue(
        own_database, new_email("invitee"), f"You are invited to join Evil\r\nBcc: {victim}"
    )
    refused = _queue(own_database, REFUSED + new_email(), "Hello")
    good: dict[str, int] = {}
    for _ in range(3):
        to = new_email("good")
        good[to] = _queue(own_database, to, "Hello")
    smtp = f"smtp://127.0.0.1:{mailbox.port}"
    assert _send(own_database, smtp) == [5, 0, 0]
    for to, mail_id in good.items():
        assert len(mailbox.wait(to)) == 1
        assert _mail(own_database, mail_id)["sent_at"] is not None
    bad = _mail(own_database, poisoned)
    assert bad["failed_at"] is not None and bad["sent_at"] is None
    assert "cannot build the message" in bad["last_error"]
    assert "linefeed or carriage return" in bad["last_error"]
    assert mailbox.for_address(victim) == []
    refusal = _mail(own_database, refused)
    assert refusal["failed_at"] is not None and refusal["sent_at"] is None
    assert "550" in refusal["last_error"] and "no such mailbox" in refusal["last_error"]
    # Failed for good: later passes neither retry them nor send the good ones again.
    assert _send(own_database, smtp, passes=1) == [0]
    time.sleep(0.2)
    assert all(len(mailbox.for_address(to)) == 1 for to in good)


def test_a_transient_failure_is_retried_with_backoff(own_database: str, mailbox: Mailbox) -> None:
    to = new_email("later")
    mail_id = _queue(own_database, to, "Hello")
    assert _send(own_database, f"smtp://127.0.0.1:{free_port()}", passes=2) == [1, 0]
    waiting = _mail(own_database, mail_id)
    assert waiting["failed_at"] is None and waiting["sent_at"] is None
    assert waiting["attempts"] == 1 and waiting["last_error"]
    with psycopg.connect(own_database, autocommit=True) as conn:
        later = conn.execute(
            "SELECT next_attempt_at > now() FROM mail_outbox WHERE id = %s", (mail_id,)
        ).fetchone()
        assert later == (True,)  # backing off
        conn.execute("UPDATE mail_outbox SET next_attempt_at = now() WHERE id = %s", (mail_id,))
    assert _send(own_database, f"smtp://127.0.0.1:{mailbox.port}", passes=1) == [1]
    assert len(mailbox.wait(to)) == 1
    assert _mail(own_database, mail_id)["sent_at"] is not None


# -- secrets at rest -----------------------------------------------------------------------


def _wait_sent(database_url: str, address: str, count: int) -> None:
    deadline = time.monotonic() + 10
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL) FROM mail_outbox"
                " WHERE to_address = %s",
                (address,),
            ).fetchone()
            if row and row[0] >= count:
                return
            time.sleep(0.05)
    raise AssertionError(f"{count} mail(s) to {address} never recorded as sent")


def _tables_holding(database_url: str, needle: str) -> list[str]:
    """Every table with a row whose text, or one of whose bytea columns, holds ``needle``."""
    found = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            binary = [
                c
                for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND table_name = %s AND data_type = 'bytea'",
                    (table,),
                ).fetchall()
            ]
            where = " OR ".join(
                ["t::text LIKE %s"]
                + [f"position(convert_to(%s, 'UTF8') in t.\"{c}\") > 0" for c in binary]
            )
            args = [f"%{needle}%"] + [needle] * len(binary)
            hit = conn.execute(f'SELECT 1 FROM "{table}" t WHERE {where} LIMIT 1', args)
            if hit.fetchone():
                found.append(table)
    return found


def test_mailed_tokens_are_not_kept_once_sent(
    server: Server, mailbox: Mailbox, database_url: str
) -> None:
    """Regression (issue 8, item 14): the outbox kept every mail body, and with it every
    verification, reset and invitation token, in plaintext for good."""
    with server.client() as client:
        account = signup(client)
        email = account["user"]["email"]
        client.post("/v1/auth/forgot-password", json={"email": email}).raise_for_status()
        org = create_org(client, account)
        invitee = new_email("invitee")
        invited = client.post(
            "/v1/invitations",
            json={"organization_id": org["id"], "email": invitee, "role": "member"},
            headers=bearer(account),
        )
        assert invited.status_code == 201, invited.text
    tokens = [mailbox.token(email, 0, count=2), mailbox.token(email, 1, count=2)]
    tokens.append(mailbox.token(invitee))
    assert len(set(tokens)) == 3
    _wait_sent(database_url, email, 2)
    _wait_sent(database_url, invitee, 1)
    for token in tokens:
        assert _tables_holding(database_url, token) == [], token
    with httpx.Client(base_url=server.url) as client:
        reset = client.post(
            "/v1/auth/reset-password",
            json={"token": tokens[1], "new_password": "a brand new passphrase"},
        )
    assert reset.status_code == 200, reset.text  # the mailed token still works


# -- retention ----------------------------------------------------------------------------


def test_retention_prunes_old_mail_and_platform_audit_rows(
    server: Server, database_url: str
) -> None:
    """The test servers sweep every second with the default windows (mail 30 days,
    platform audit 365 days); rows are backdated past them."""
    tag = secrets.token_hex(6)
    with psycopg.connect(database_url, autocommit=True) as conn:

        def mail(label: str, sent: str | None, failed: str | None, created: str) -> None:
            conn.execute(
                "INSERT INTO mail_outbox (to_address, subject, body, sent_at, failed_at,"
                " created_at) VALUES (%s, 'retention', 'x', now() - %s::interval,"
                " now() - %s::interval, now() - %s::interval)",
                (f"{label}-{tag}@example.test", sent, failed, created),
            )

        mail("old-sent", "40 days", None, "40 days")
        mail("old-failed", None, "40 days", "40 days")
        mail("new-sent", "1 day", None, "1 day")
        mail("old-pending", None, None, "40 days")  # never sent: not retention's to drop
        for label, age in (("old", "400 days"), ("new", "10 days")):
            conn.execute(
                "INSERT INTO audit_logs (organization_id, principal_type, action, target_type,"
                " target_id, created_at) VALUES (NULL, 'system', 'test.retention', 'test',"
                " %s, now() - %s::interval)",
                (f"{label}-{tag}", age),
            )
        deadline = time.monotonic() + 15
        while True:
            mails = {
                r[0].split("-" + tag)[0]
                for r in conn.execute(
                    "SELECT to_address FROM mail_outbox WHERE to_address LIKE %s", (f"%-{tag}@%",)
                ).fetchall()
            }
            audits = {
                r[0].split("-" + tag)[0]
                for r in conn.execute(
                    "SELECT target_id FROM audit_logs WHERE target_id LIKE %s", (f"%-{tag}",)
                ).fetchall()
            }
            if mails == {"new-sent", "old-pending"} and audits == {"new"}:
                break
            assert time.monotonic() < deadline, (mails, audits)
            time.sleep(0.2)
