"""Reference authorization evaluator: the semantics of ``treadle._core.Authz``, written
plainly. Every check scans every ACL entry; nothing is indexed or cached.

Rules, in order:

1. A ``user:`` principal who is not a member of the organization: ``not_member``.
2. ACL entries match on resource type, resource id (or ``*``), action (or ``*``) and
   subject: the principal itself, plus each team a user sits in. A matching ``deny``
   wins (``acl_deny``), else a matching ``allow`` (``acl_allow``); the smallest entry id
   is reported.
3. A user: their role in ``team_id`` when they sit in it (``team_role``), then their
   organization role (``org_role``). Roles are cumulative; ``*`` grants everything.
4. An API key: the first scope that is ``*`` or the action (``key_scope``).
5. Otherwise ``no_grant``.
6. For an owner, deny entries do not count for the policy's ``owner_shielded`` actions.
   ``excluding`` decides as if that one entry were not there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

ORG_ROLES = ("viewer", "member", "admin", "owner")  # weakest first
TEAM_ROLES = ("viewer", "member", "admin")
SUBJECT_KINDS = ("user", "team", "api_key")
ANY = "*"

AclEntry = tuple[str, str, str, str, str, str]
BatchItem = tuple[str, str, str, str, str | None]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    decided_by: str | None = None


def parse_subject(subject: str) -> tuple[str, str]:
    kind, colon, ident = subject.partition(":")
    if not colon or kind not in SUBJECT_KINDS or not ident:
        raise ValueError(f"invalid subject {subject!r}")
    return kind, ident


def _cumulative(declared: dict[str, list[str]], order: tuple[str, ...]) -> dict[str, set[str]]:
    for role in declared:
        if role not in order:
            raise ValueError(f"unknown role {role!r}")
    grants: dict[str, set[str]] = {}
    so_far: set[str] = set()
    for role in order:
        so_far = so_far | set(declared.get(role, []))
        grants[role] = so_far
    return grants


class ReferencePolicy:
    def __init__(
        self,
        org_roles: dict[str, list[str]],
        team_roles: dict[str, list[str]],
        owner_shielded: Sequence[str] = (),
    ):
        self.org = _cumulative(org_roles, ORG_ROLES)
        self.team = _cumulative(team_roles, TEAM_ROLES)
        named = {a for acts in [*org_roles.values(), *team_roles.values()] for a in acts}
        self.actions = sorted((named | set(owner_shielded)) - {ANY})
        self.shielded = set(self.actions) if ANY in owner_shielded else set(owner_shielded)

    def org_allows(self, role: str, action: str) -> bool:
        return ANY in self.org[role] or action in self.org[role]

    def team_allows(self, role: str, action: str) -> bool:
        return ANY in self.team[role] or action in self.team[role]


@dataclass
class ReferenceOrg:
    org_id: str
    revision: int
    members: dict[str, str]
    team_members: dict[tuple[str, str], str]
    acl: list[AclEntry]


class ReferenceAuthz:
    def __init__(self, policy: ReferencePolicy) -> None:
        self.policy = policy
        self.orgs: dict[str, ReferenceOrg] = {}

    def load(self, org: ReferenceOrg) -> bool:
        current = self.orgs.get(org.org_id)
        if current is not None and current.revision >= org.revision:
            return False
        self.orgs[org.org_id] = org
        return True

    def revision(self, org_id: str) -> int | None:
        org = self.orgs.get(org_id)
        return None if org is None else org.revision

    def drop(self, org_id: str) -> bool:
        return self.orgs.pop(org_id, None) is not None

    def check(
        self,
        org_id: str,
        subject: str,
        action: str,
        resource_type: str,
        resource_id: str,
        team_id: str | None = None,
        scopes: Sequence[str] | None = None,
        excluding: str | None = None,
    ) -> Decision:
        kind, ident = parse_subject(subject)
        org = self.orgs.get(org_id)
        if org is None:
            return Decision(False, "unknown_organization")
        if kind == "user" and ident not in org.members:
            return Decision(False, "not_member")

        subjects = {subject}
        if kind == "user":
            subjects |= {f"team:{team}" for (team, user) in org.team_members if user == ident}
        matching = [
            (entry_id, effect)
            for (entry_id, e_type, e_id, e_action, e_subject, effect) in org.acl
            if e_type == resource_type
            and e_id in (resource_id, ANY)
            and e_action in (action, ANY)
            and e_subject in subjects
        ]
        matching = [(entry_id, effect) for entry_id, effect in matching if entry_id != excluding]
        shielded = (
            kind == "user" and org.members[ident] == "owner" and action in self.policy.shielded
        )
        denies = sorted(entry_id for entry_id, effect in matching if effect == "deny")
        if denies and not shielded:
            return Decision(False, "acl_deny", denies[0])
        allows = sorted(entry_id for entry_id, effect in matching if effect == "allow")
        if allows:
            return Decision(True, "acl_allow", allows[0])

        if kind == "user":
            team_role = org.team_members.get((team_id, ident)) if team_id is not None else None
            if team_role is not None and self.policy.team_allows(team_role, action):
                return Decision(True, "team_role", f"team_role:{team_id}:{team_role}")
            org_role = org.members[ident]
            if self.policy.org_allows(org_role, action):
                return Decision(True, "org_role", f"org_role:{org_role}")
        if kind == "api_key":
            for scope in scopes or []:
                if scope in (ANY, action):
                    return Decision(True, "key_scope", f"scope:{scope}")
        return Decision(False, "no_grant")

    def check_batch(
        self, org_id: str, items: Iterable[object], scopes: Sequence[str] | None = None
    ) -> list[Decision]:
        decisions = []
        for item in items:
            if not _well_formed(item):
                decisions.append(Decision(False, "invalid_item"))
                continue
            subject, action, resource_type, resource_id, team_id = cast(BatchItem, item)
            try:
                decisions.append(
                    self.check(org_id, subject, action, resource_type, resource_id, team_id, scopes)
                )
            except ValueError:
                decisions.append(Decision(False, "invalid_item"))
        return decisions

    def permissions(
        self,
        org_id: str,
        subject: str,
        resource_type: str,
        resource_id: str,
        team_id: str | None = None,
        scopes: Sequence[str] | None = None,
    ) -> list[str]:
        parse_subject(subject)
        return [
            action
            for action in self.policy.actions
            if self.check(
                org_id, subject, action, resource_type, resource_id, team_id, scopes
            ).allowed
        ]


def _well_formed(item: object) -> bool:
    return (
        isinstance(item, tuple)
        and len(item) == 5
        and all(isinstance(part, str) for part in item[:4])
        and (item[4] is None or isinstance(item[4], str))
    )
