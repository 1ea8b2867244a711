"""Invites to a team workspace: by email, single use, expiring, bound to the invited email.

The token is shown once, to the owner who creates it (they pass it on); only its hash is kept.
"""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select, update

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import (MEMBER, PERSONAL, digest, iso, normal_email, now_ms,
                                       random_token, valid_email)
from opencomfy.identity.errors import Conflict, Forbidden, Invalid, NotFound
from opencomfy.identity.users import get_user
from opencomfy.identity.workspaces import add_member

INVITE_TTL_MS = 7 * 24 * 3600 * 1000
I, W = m.invites.c, m.workspaces.c


def _invite_json(row, token: str | None = None) -> dict:
    out = {"id": row["id"], "email": row["email"], "invited_at": iso(row["created_at"]),
           "expires_at": iso(row["expires_at"])}
    if token is not None:
        out["token"] = token
    return out


async def create(*, db: Database, workspace_id: str, invited_by: str, email: object) -> dict:
    """Owner action (checked by the caller). Returns the PendingInvite with its token."""
    if not valid_email(email):
        raise Invalid("a valid email is required")
    email = normal_email(email)  # type: ignore[arg-type]
    token = random_token(32)
    stamp = now_ms()
    row = {"id": str(uuid.uuid4()), "workspace_id": workspace_id, "email": email,
           "token_hash": digest(token), "invited_by": invited_by, "created_at": stamp,
           "expires_at": stamp + INVITE_TTL_MS}
    async with db.write() as conn:
        ws_type = (await conn.execute(select(W.type).where(W.id == workspace_id))).scalar()
        if ws_type == PERSONAL:
            raise Forbidden("a personal workspace cannot have invites")
        member = (await conn.execute(
            select(m.memberships.c.user_id).select_from(
                m.memberships.join(m.users, m.users.c.id == m.memberships.c.user_id))
            .where(m.memberships.c.workspace_id == workspace_id, m.users.c.email == email))).first()
        if member is not None:
            raise Conflict("this email is already a member")
        pending = (await conn.execute(select(I.id).where(
            I.workspace_id == workspace_id, I.email == email, I.accepted_at.is_(None),
            I.revoked_at.is_(None), I.expires_at > stamp))).first()
        if pending is not None:
            raise Conflict("an invite for this email is already pending")
        await conn.execute(insert(m.invites).values(**row))
    return _invite_json(row, token)


async def list_pending(*, db: Database, workspace_id: str) -> list[dict]:
    async with db.read() as conn:
        rows = (await conn.execute(select(m.invites).where(
            I.workspace_id == workspace_id, I.accepted_at.is_(None), I.revoked_at.is_(None),
            I.expires_at > now_ms()).order_by(I.created_at))).mappings().all()
    return [_invite_json(r) for r in rows]


async def revoke(*, db: Database, workspace_id: str, invite_id: str) -> None:
    async with db.write() as conn:
        done = await conn.execute(update(m.invites).where(
            I.id == invite_id, I.workspace_id == workspace_id, I.accepted_at.is_(None),
            I.revoked_at.is_(None)).values(revoked_at=now_ms()))
        if done.rowcount == 0:
            raise NotFound("invite not found")


async def accept_for_user(*, db: Database, token: str, user_id: str) -> dict:
    """`accept` for the user with this id (their email read from their record)."""
    user = await get_user(db=db, user_id=user_id)
    if user is None:
        raise NotFound("user not found")
    return await accept(db=db, token=token, user_id=user["id"], user_email=user["email"])


async def accept(*, db: Database, token: str, user_id: str, user_email: str) -> dict:
    """Join the invite's workspace as a member. Unknown, revoked or expired: NotFound; used
    before: Conflict; another email: Forbidden (the invite stays usable by its owner)."""
    stamp = now_ms()
    async with db.write() as conn:
        row = (await conn.execute(select(m.invites, W.name.label("workspace_name"),
                                         W.deleted_at).select_from(
            m.invites.join(m.workspaces, W.id == I.workspace_id))
            .where(I.token_hash == digest(token)))).mappings().first()
        if row is None or row["revoked_at"] is not None or row["deleted_at"] is not None:
            raise NotFound("invite not found")
        if row["accepted_at"] is not None:
            raise Conflict("invite already used")
        if row["expires_at"] <= stamp:
            raise NotFound("invite expired")
        if normal_email(user_email) != row["email"]:
            raise Forbidden("this invite was sent to another email")
        # Consume first, guarded on accepted_at, so two concurrent accepts cannot both win.
        used = await conn.execute(update(m.invites).where(I.id == row["id"], I.accepted_at.is_(None))
                                  .values(accepted_at=stamp))
        if used.rowcount == 0:
            raise Conflict("invite already used")
        if not await add_member(conn, workspace_id=row["workspace_id"], user_id=user_id, role=MEMBER):
            raise Conflict("already a member of this workspace")
    return {"workspace_id": row["workspace_id"], "workspace_name": row["workspace_name"]}
