"""Workspaces and memberships. Every function takes the acting user; a workspace the user is
not a member of is NotFound (never Forbidden), so ids of other tenants do not leak."""

from __future__ import annotations

from sqlalchemy import and_, delete, func, insert, select, update

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import (OWNER, PERSONAL, TEAM, iso, mark_access_reduced,
                                       new_workspace_id, now_ms)
from opencomfy.identity.errors import Forbidden, Invalid, NotFound

W, M = m.workspaces.c, m.memberships.c


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise Invalid("name must be 1 to 100 characters")
    return name.strip()


def workspace_json(row) -> dict:
    return {"id": row["id"], "name": row["name"], "type": row["type"],
            "created_at": iso(row["created_at"])}


async def role_of(*, db: Database, workspace_id: str, user_id: str) -> str | None:
    """The user's role in a live workspace, or None when not a member."""
    async with db.read() as conn:
        return (await conn.execute(select(M.role).select_from(
            m.memberships.join(m.workspaces, W.id == M.workspace_id)).where(
            M.workspace_id == workspace_id, M.user_id == user_id,
            W.deleted_at.is_(None)))).scalar()


async def list_for_user(*, db: Database, user_id: str) -> list[dict]:
    """WorkspaceWithRole for each live workspace the user belongs to, personal first."""
    async with db.read() as conn:
        rows = (await conn.execute(
            select(m.workspaces, M.role, M.joined_at)
            .select_from(m.memberships.join(m.workspaces, W.id == M.workspace_id))
            .where(M.user_id == user_id, W.deleted_at.is_(None))
            .order_by((W.type != PERSONAL), W.created_at))).mappings().all()
    return [{**workspace_json(r), "role": r["role"], "joined_at": iso(r["joined_at"])} for r in rows]


async def create_team(*, db: Database, user_id: str, name: object) -> dict:
    name = check_name(name)
    row = {"id": new_workspace_id(), "name": name, "type": TEAM, "owner_user_id": user_id,
           "created_at": now_ms(), "deleted_at": None}
    async with db.write() as conn:
        await conn.execute(insert(m.workspaces).values(**row))
        await conn.execute(insert(m.memberships).values(
            workspace_id=row["id"], user_id=user_id, role=OWNER, joined_at=row["created_at"]))
    return workspace_json(row)


async def _live(conn, workspace_id: str, user_id: str):
    """(workspace row, caller's role), or NotFound."""
    row = (await conn.execute(
        select(m.workspaces, M.role).select_from(
            m.workspaces.join(m.memberships, and_(M.workspace_id == W.id, M.user_id == user_id)))
        .where(W.id == workspace_id, W.deleted_at.is_(None)))).mappings().first()
    if row is None:
        raise NotFound("workspace not found")
    return row


async def get(*, db: Database, user_id: str, workspace_id: str) -> dict:
    async with db.read() as conn:
        return workspace_json(await _live(conn, workspace_id, user_id))


async def rename(*, db: Database, user_id: str, workspace_id: str, name: object) -> dict:
    async with db.write() as conn:
        row = await _live(conn, workspace_id, user_id)
        if row["role"] != OWNER:
            raise Forbidden("only owners can change the workspace")
        if name is not None:
            name = check_name(name)
            await conn.execute(update(m.workspaces).where(W.id == workspace_id).values(name=name))
            row = {**row, "name": name}
    return workspace_json(row)


async def soft_delete(*, db: Database, user_id: str, workspace_id: str) -> None:
    async with db.write() as conn:
        row = await _live(conn, workspace_id, user_id)
        if row["role"] != OWNER:
            raise Forbidden("only owners can delete the workspace")
        if row["type"] == PERSONAL:
            raise Forbidden("a personal workspace cannot be deleted")
        await conn.execute(update(m.workspaces).where(W.id == workspace_id)
                           .values(deleted_at=now_ms()))
        # Its credentials stop working at once.
        await conn.execute(update(m.api_keys).where(m.api_keys.c.workspace_id == workspace_id,
                                                    m.api_keys.c.revoked_at.is_(None))
                           .values(revoked_at=now_ms()))
    mark_access_reduced(db)


async def page_members(*, db: Database, workspace_id: str, offset: int, limit: int) -> dict:
    U = m.users.c
    async with db.read() as conn:
        total = (await conn.execute(select(func.count()).select_from(m.memberships)
                                    .where(M.workspace_id == workspace_id))).scalar() or 0
        rows = (await conn.execute(
            select(U.id, U.name, U.email, M.role, M.joined_at)
            .select_from(m.memberships.join(m.users, U.id == M.user_id))
            .where(M.workspace_id == workspace_id).order_by(M.joined_at, U.id)
            .offset(offset).limit(limit))).mappings().all()
    members = [{"id": r["id"], "name": r["name"], "email": r["email"], "role": r["role"],
                "joined_at": iso(r["joined_at"])} for r in rows]
    return {"members": members, "pagination": {"offset": offset, "limit": limit, "total": total,
                                               "has_more": offset + len(members) < total}}


async def _owner_count(conn, workspace_id: str) -> int:
    return (await conn.execute(select(func.count()).select_from(m.memberships).where(
        M.workspace_id == workspace_id, M.role == OWNER))).scalar() or 0


async def _remove(conn, workspace_id: str, user_id: str) -> None:
    await conn.execute(delete(m.memberships).where(M.workspace_id == workspace_id,
                                                   M.user_id == user_id))
    # A departed member's keys and sessions for this workspace stop working at once.
    stamp = now_ms()
    await conn.execute(update(m.api_keys).where(
        m.api_keys.c.workspace_id == workspace_id, m.api_keys.c.user_id == user_id,
        m.api_keys.c.revoked_at.is_(None)).values(revoked_at=stamp))
    await conn.execute(update(m.auth_sessions).where(
        m.auth_sessions.c.workspace_id == workspace_id, m.auth_sessions.c.user_id == user_id,
        m.auth_sessions.c.revoked_at.is_(None)).values(revoked_at=stamp))


async def remove_member(*, db: Database, workspace_id: str, user_id: str) -> None:
    """Owner action (checked by the caller): NotFound for a non-member; the last owner stays."""
    async with db.write() as conn:
        role = (await conn.execute(select(M.role).where(
            M.workspace_id == workspace_id, M.user_id == user_id))).scalar()
        if role is None:
            raise NotFound("member not found")
        ws_type = (await conn.execute(select(W.type).where(W.id == workspace_id))).scalar()
        if ws_type == PERSONAL:
            raise Forbidden("a personal workspace's owner cannot be removed")
        if role == OWNER and await _owner_count(conn, workspace_id) <= 1:
            raise Forbidden("the last owner cannot be removed")
        await _remove(conn, workspace_id, user_id)
    mark_access_reduced(db)


async def leave(*, db: Database, workspace_id: str, user_id: str) -> None:
    async with db.write() as conn:
        row = await _live(conn, workspace_id, user_id)
        if row["type"] == PERSONAL:
            raise Forbidden("a personal workspace cannot be left")
        if row["role"] == OWNER and await _owner_count(conn, workspace_id) <= 1:
            raise Forbidden("the last owner cannot leave the workspace")
        await _remove(conn, workspace_id, user_id)
    mark_access_reduced(db)


async def add_member(conn, *, workspace_id: str, user_id: str, role: str) -> bool:
    """Inside an open write transaction; False when already a member."""
    exists = (await conn.execute(select(M.role).where(
        M.workspace_id == workspace_id, M.user_id == user_id))).scalar()
    if exists is not None:
        return False
    await conn.execute(insert(m.memberships).values(workspace_id=workspace_id, user_id=user_id,
                                                    role=role, joined_at=now_ms()))
    return True
