"""Invitations by email: admins invite, the invitee accepts with the mailed token."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.api import add_member, bearer, create_org, envelope, new_email, signup
from tests.support.mailbox import Mailbox
from tests.support.servers import Server


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with server.client() as c:
        yield c


def _invite(client, who, org_id, email, role="member"):
    return client.post(
        "/v1/invitations",
        json={"organization_id": org_id, "email": email, "role": role},
        headers=bearer(who),
    )


def _token(mailbox: Mailbox, email: str) -> tuple[str, str]:
    [mail] = mailbox.wait(email)
    found = re.search(
        r"/invitations/([0-9a-f-]+)/accept\?token=([A-Za-z0-9_-]+)", mail.get_content()
    )
    assert found, mail.get_content()
    return found.group(1), found.group(2)


def test_invite_then_accept_creates_the_membership(client: httpx.Client, mailbox: Mailbox) -> None:
    owner = signup(client)
    org = create_org(client, owner, "Invite Co")
    email = new_email("invitee")
    made = _invite(client, owner, org["id"], email, "viewer")
    assert made.status_code == 201
    invitation = envelope(made)["data"]
    assert invitation["status"] == "pending"
    assert "token" not in str(invitation)
    invitation_id, token = _token(mailbox, email)
    assert invitation_id == invitation["id"]
    invitee = signup(client, email)
    accepted = client.post(
        f"/v1/invitations/{invitation_id}/accept", json={"token": token}, headers=bearer(invitee)
    )
    assert envelope(accepted)["data"]["status"] == "accepted"
    members = envelope(client.get(f"/v1/organizations/{org['id']}/members", headers=bearer(owner)))
    assert {(m["email"], m["role"]) for m in members["data"]} >= {(email, "viewer")}
    again = client.post(
        f"/v1/invitations/{invitation_id}/accept", json={"token": token}, headers=bearer(invitee)
    )
    assert again.status_code == 409  # single use


def test_wrong_token_wrong_account_and_revoked(client: httpx.Client, mailbox: Mailbox) -> None:
    owner = signup(client)
    org = create_org(client, owner)
    email = new_email("invitee")
    _invite(client, owner, org["id"], email).raise_for_status()
    invitation_id, token = _token(mailbox, email)
    invitee, stranger = signup(client, email), signup(client)
    path = f"/v1/invitations/{invitation_id}"
    bad = client.post(f"{path}/accept", json={"token": token[:-2] + "xx"}, headers=bearer(invitee))
    assert bad.status_code == 404
    other = client.post(f"{path}/accept", json={"token": token}, headers=bearer(stranger))
    assert other.status_code == 403
    revoked = client.post(f"{path}/revoke", headers=bearer(owner))
    assert envelope(revoked)["data"]["status"] == "revoked"
    late = client.post(f"{path}/accept", json={"token": token}, headers=bearer(invitee))
    assert late.status_code == 409
    assert envelope(late)["error"]["details"]["reason"] == "revoked"


def test_guards_duplicates_members_roles_and_floods(client: httpx.Client) -> None:
    owner, member = signup(client), signup(client)
    org = create_org(client, owner)
    add_member(client, owner, org["id"], member, "member")
    assert _invite(client, member, org["id"], new_email()).status_code == 403  # admin+ only
    assert _invite(client, owner, org["id"], member["user"]["email"]).status_code == 409
    assert _invite(client, owner, org["id"], "x@y.zz", "owner").status_code == 400
    email = new_email("dup")
    assert _invite(client, owner, org["id"], email).status_code == 201
    dup = _invite(client, owner, org["id"], email.upper())
    assert dup.status_code == 409
    statuses = [_invite(client, owner, org["id"], new_email("flood")).status_code for _ in range(6)]
    # TREADLE_INVITATIONS_PER_HOUR=6 in the test servers; two were sent above (adding the
    # member is an invitation too).
    assert statuses == [201] * 4 + [429] * 2
    listed = envelope(
        client.get("/v1/invitations", params={"organization_id": org["id"]}, headers=bearer(owner))
    )
    assert listed["meta"]["page"]["total"] == 6


def test_adding_a_member_invites_and_only_acceptance_makes_them_one(
    client: httpx.Client, mailbox: Mailbox, admin: dict
) -> None:
    """Issue 8: adding by email made anyone a member of any organization, unasked."""
    owner, invitee = signup(client), signup(client)
    org = create_org(client, owner)
    members = f"/v1/organizations/{org['id']}/members"
    email = invitee["user"]["email"]
    added = client.post(members, json={"email": email, "role": "member"}, headers=bearer(owner))
    assert added.status_code == 202, added.text
    data = envelope(added)["data"]
    assert (data["status"], data["member"]) == ("invited", None)
    assert (data["invitation"]["email"], data["invitation"]["status"]) == (email, "pending")
    listed = envelope(client.get(members, headers=bearer(owner)))["data"]
    assert email not in {m["email"] for m in listed}
    assert client.get(f"/v1/organizations/{org['id']}", headers=bearer(invitee)).status_code == 404
    token = mailbox.invitation_token(email, data["invitation"]["id"])
    accepted = client.post(
        f"/v1/invitations/{data['invitation']['id']}/accept",
        json={"token": token},
        headers=bearer(invitee),
    )
    assert accepted.status_code == 200, accepted.text
    listed = envelope(client.get(members, headers=bearer(owner)))["data"]
    assert (email, "member") in {(m["email"], m["role"]) for m in listed}
    # Nobody is invited straight in as owner: they join, then an owner promotes them.
    other = signup(client)
    as_owner = client.post(
        members, json={"user_id": other["user"]["id"], "role": "owner"}, headers=bearer(owner)
    )
    assert as_owner.status_code == 400, as_owner.text
    assert envelope(as_owner)["error"]["details"]["path"] == "$.role"
    # A platform admin adds at once.
    theirs = create_org(client, admin)
    direct = client.post(
        f"/v1/organizations/{theirs['id']}/members",
        json={"user_id": other["user"]["id"], "role": "viewer"},
        headers=bearer(admin),
    )
    assert direct.status_code == 202, direct.text
    data = envelope(direct)["data"]
    assert (data["status"], data["invitation"]) == ("added", None)
    assert (data["member"]["user_id"], data["member"]["role"]) == (other["user"]["id"], "viewer")
