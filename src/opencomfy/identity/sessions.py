"""Cookie sessions: a random token in an HttpOnly cookie, a server-side record by its hash.

Revocable at once (logout, member removal): every request checks the record."""

from __future__ import annotations

import uuid

from sqlalchemy import and_, insert, select, update

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import digest, mark_access_reduced, now_ms, random_token

SESSION_TTL_MS = 2 * 3600 * 1000  # the spec: the session cookie expires in 2 hours
S = m.auth_sessions.c


async def create(*, db: Database, user_id: str, workspace_id: str) -> tuple[str, int]:
    """A new session; returns (token for the cookie, expiry in ms)."""
    token = random_token(32)
    stamp = now_ms()
    async with db.write() as conn:
        await conn.execute(insert(m.auth_sessions).values(
            id=str(uuid.uuid4()), token_hash=digest(token), user_id=user_id,
            workspace_id=workspace_id, created_at=stamp, expires_at=stamp + SESSION_TTL_MS))
    return token, stamp + SESSION_TTL_MS


async def verify(*, db: Database, token: str) -> dict | None:
    """The live session (with the user's role in its workspace), or None."""
    if not token or len(token) > 200:
        return None
    M, W = m.memberships.c, m.workspaces.c
    async with db.read() as conn:
        row = (await conn.execute(
            select(m.auth_sessions, M.role).select_from(
                m.auth_sessions.join(m.memberships, and_(M.workspace_id == S.workspace_id,
                                                         M.user_id == S.user_id))
                .join(m.workspaces, W.id == S.workspace_id))
            .where(S.token_hash == digest(token), S.revoked_at.is_(None),
                   S.expires_at > now_ms(), W.deleted_at.is_(None)))).mappings().first()
    return dict(row) if row else None


async def revoke(*, db: Database, token: str) -> bool:
    async with db.write() as conn:
        done = await conn.execute(update(m.auth_sessions).where(
            S.token_hash == digest(token), S.revoked_at.is_(None)).values(revoked_at=now_ms()))
    mark_access_reduced(db)
    return bool(done.rowcount)
