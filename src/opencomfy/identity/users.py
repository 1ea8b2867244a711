"""Users and their personal workspace (created with the user, never deletable or leavable)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import (OWNER, PERSONAL, new_user_id, new_workspace_id, normal_email,
                                       now_ms, valid_email)
from opencomfy.identity.errors import Conflict, Invalid
from opencomfy.identity.passwords import hash_password

ACTIVE = "active"


async def create_user(*, db: Database, email: str, name: str | None = None,
                      password: str | None = None, external_issuer: str | None = None,
                      external_subject: str | None = None) -> dict:
    """A new active user with a personal workspace; Conflict when the email is taken."""
    if not valid_email(email):
        raise Invalid("a valid email is required")
    email = normal_email(email)
    password_hash = await hash_password(password) if password else None
    user = {"id": new_user_id(), "email": email, "name": name or email.split("@")[0],
            "password_hash": password_hash, "status": ACTIVE, "external_issuer": external_issuer,
            "external_subject": external_subject, "created_at": now_ms()}
    workspace_id = new_workspace_id()
    try:
        async with db.write() as conn:
            await conn.execute(insert(m.users).values(**user))
            await conn.execute(insert(m.workspaces).values(
                id=workspace_id, name="Personal", type=PERSONAL, owner_user_id=user["id"],
                created_at=user["created_at"]))
            await conn.execute(insert(m.memberships).values(
                workspace_id=workspace_id, user_id=user["id"], role=OWNER,
                joined_at=user["created_at"]))
    except IntegrityError:
        raise Conflict("a user with this email already exists") from None
    return user


async def set_password(*, db: Database, user_id: str, password: str) -> None:
    password_hash = await hash_password(password)
    async with db.write() as conn:
        await conn.execute(update(m.users).where(m.users.c.id == user_id)
                           .values(password_hash=password_hash))


async def get_user(*, db: Database, user_id: str) -> dict | None:
    async with db.read() as conn:
        row = (await conn.execute(select(m.users).where(m.users.c.id == user_id))).mappings().first()
    return dict(row) if row else None


async def get_user_by_email(*, db: Database, email: str) -> dict | None:
    async with db.read() as conn:
        row = (await conn.execute(select(m.users).where(
            m.users.c.email == normal_email(email)))).mappings().first()
    return dict(row) if row else None


async def get_user_by_external(*, db: Database, issuer: str, subject: str) -> dict | None:
    async with db.read() as conn:
        row = (await conn.execute(select(m.users).where(
            m.users.c.external_issuer == issuer,
            m.users.c.external_subject == subject))).mappings().first()
    return dict(row) if row else None


async def personal_workspace_id(*, db: Database, user_id: str) -> str | None:
    async with db.read() as conn:
        return (await conn.execute(select(m.workspaces.c.id).where(
            m.workspaces.c.owner_user_id == user_id, m.workspaces.c.type == PERSONAL,
            m.workspaces.c.deleted_at.is_(None)).limit(1))).scalar()
