"""Teams inside an organization, and their members."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import psycopg

from treadle.errors import ApiError
from treadle.services import audit
from treadle.services.authz import Authorizer
from treadle.services.principal import Actor
from treadle.store import orgs as org_store
from treadle.store import teams as team_store
from treadle.store.db import Database

Row = dict[str, Any]


def public_team_member(row: Row) -> Row:
    return {k: row[k] for k in ("team_id", "user_id", "email", "display_name", "role")} | {
        "joined_at": row["created_at"]
    }


class Teams:
    def __init__(self, db: Database, authz: Authorizer) -> None:
        self.db = db
        self.authz = authz

    async def create(self, actor: Actor, org_id: UUID, name: str, description: str) -> Row:
        team_id = uuid.uuid4()
        try:
            async with self.db.transaction() as conn:
                team = await team_store.insert(conn, team_id, org_id, name, description)
                await audit.record(conn, actor, org_id, "team.create", "team", team_id, None, team)
        except psycopg.errors.UniqueViolation:
            raise ApiError.conflict(
                f"a team named {name!r} exists already", path="$.name"
            ) from None
        return team

    async def get(self, team_id: UUID) -> Row:
        async with self.db.connection() as conn:
            team = await team_store.get(conn, team_id)
        if team is None:
            raise ApiError.not_found(f"no team with id {team_id}")
        return team

    async def in_org(self, org_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            return await team_store.in_org(conn, org_id, limit, offset)

    async def mine(self, user_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            return await team_store.for_user(conn, user_id, limit, offset)

    async def update(
        self, actor: Actor, team_id: UUID, name: str | None, description: str | None
    ) -> Row:
        try:
            async with self.db.transaction() as conn:
                before = await team_store.get(conn, team_id)
                after = await team_store.update(conn, team_id, name, description)
                if before is None or after is None:
                    raise ApiError.not_found(f"no team with id {team_id}")
                await audit.record(
                    conn,
                    actor,
                    after["organization_id"],
                    "team.update",
                    "team",
                    team_id,
                    before,
                    after,
                )
        except psycopg.errors.UniqueViolation:
            raise ApiError.conflict(
                f"a team named {name!r} exists already", path="$.name"
            ) from None
        return after

    async def delete(self, actor: Actor, team_id: UUID) -> Row:
        async with self.db.transaction() as conn:
            team = await team_store.delete(conn, team_id)
            if team is None:
                raise ApiError.not_found(f"no team with id {team_id}")
            org_id = team["organization_id"]
            revision = await self.authz.changed(conn, org_id)
            await audit.record(conn, actor, org_id, "team.delete", "team", team_id, team, None)
        await self.authz.announce(org_id, revision)
        return team

    async def members(self, team_id: UUID, limit: int, offset: int) -> tuple[list[Row], int]:
        async with self.db.connection() as conn:
            rows, total = await team_store.members(conn, team_id, limit, offset)
        return [public_team_member(r) for r in rows], total

    async def add_member(self, actor: Actor, team_id: UUID, user_id: UUID, role: str) -> Row:
        async with self.db.transaction() as conn:
            team = await team_store.get(conn, team_id)
            if team is None:
                raise ApiError.not_found(f"no team with id {team_id}")
            org_id = team["organization_id"]
            if await org_store.member(conn, org_id, user_id) is None:
                raise ApiError.not_found(
                    f"no member with user_id {user_id} in this organization; add them there first"
                )
            before = await team_store.member(conn, team_id, user_id)
            row = await team_store.add_member(conn, team_id, org_id, user_id, role)
            revision = await self.authz.changed(conn, org_id)
            await audit.record(
                conn,
                actor,
                org_id,
                "team.member.add",
                "user",
                user_id,
                None if before is None else {"role": before["role"]},
                {"team_id": team_id, "role": role},
            )
        await self.authz.announce(org_id, revision)
        return public_team_member(row)

    async def remove_member(self, actor: Actor, team_id: UUID, user_id: UUID) -> None:
        async with self.db.transaction() as conn:
            team = await team_store.get(conn, team_id)
            before = await team_store.member(conn, team_id, user_id)
            if team is None or before is None:
                raise ApiError.not_found(f"no team member with user_id {user_id}")
            org_id = team["organization_id"]
            await team_store.remove_member(conn, team_id, user_id)
            revision = await self.authz.changed(conn, org_id)
            await audit.record(
                conn,
                actor,
                org_id,
                "team.member.remove",
                "user",
                user_id,
                {"team_id": team_id, "role": before["role"]},
                None,
            )
        await self.authz.announce(org_id, revision)
