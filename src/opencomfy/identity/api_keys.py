"""Workspace API keys: `comfyui-` + 32 random bytes, shown once, stored as a SHA-256 hash.

A key belongs to one user in one workspace. Revocation and expiry take effect at once: every
request looks the key up (one index probe on `key_hash`); nothing is cached.
"""

from __future__ import annotations

import hmac
import secrets
import uuid

from sqlalchemy import and_, func, insert, select, update

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import OWNER, digest, iso, mark_access_reduced, now_ms, parse_iso
from opencomfy.identity.errors import Invalid, NotFound, TooMany

KEY_PREFIX = "comfyui-"
KEY_BYTES = 32
MAX_KEYS_PER_MEMBER = 50
MAX_DESCRIPTION_BYTES = 5000
# last_used_at is refreshed at most this often, so that reads do not become writes.
LAST_USED_RESOLUTION_MS = 60_000
K = m.api_keys.c


def new_key() -> str:
    return KEY_PREFIX + secrets.token_hex(KEY_BYTES)


def key_info(row) -> dict:
    """WorkspaceAPIKeyInfo: never the key itself (unset times are left out: not nullable)."""
    info = {"id": row["id"], "workspace_id": row["workspace_id"], "user_id": row["user_id"],
            "name": row["name"], "description": row["description"],
            "key_prefix": row["key_prefix"], "created_at": iso(row["created_at"]),
            "expires_at": iso(row["expires_at"]), "last_used_at": iso(row["last_used_at"]),
            "revoked_at": iso(row["revoked_at"])}
    return {k: v for k, v in info.items() if v is not None}


async def create(*, db: Database, workspace_id: str, user_id: str, name: object,
                 description: object = "", expires_at: object = None) -> dict:
    """A new key; the response is the only place its plaintext ever appears."""
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
        raise Invalid("name must be 1 to 255 characters")
    description = "" if description is None else description
    if not isinstance(description, str) or len(description.encode()) > MAX_DESCRIPTION_BYTES:
        raise Invalid(f"description must be a string of at most {MAX_DESCRIPTION_BYTES} bytes")
    expires_ms = None
    if expires_at is not None:
        try:
            expires_ms = parse_iso(expires_at) if isinstance(expires_at, str) else None
        except ValueError:
            expires_ms = None
        if expires_ms is None:
            raise Invalid("expires_at must be an RFC 3339 date-time")
        if expires_ms <= now_ms():
            raise Invalid("expires_at must be in the future")
    key = new_key()
    row = {"id": str(uuid.uuid4()), "workspace_id": workspace_id, "user_id": user_id,
           "name": name.strip(), "description": description, "key_prefix": key[:16],
           "key_hash": digest(key), "created_at": now_ms(), "expires_at": expires_ms,
           "last_used_at": None, "revoked_at": None}
    async with db.write() as conn:
        count = (await conn.execute(select(func.count()).select_from(m.api_keys).where(
            K.workspace_id == workspace_id, K.user_id == user_id, K.revoked_at.is_(None)))).scalar()
        if (count or 0) >= MAX_KEYS_PER_MEMBER:
            raise TooMany(f"at most {MAX_KEYS_PER_MEMBER} active keys per member")
        await conn.execute(insert(m.api_keys).values(**row))
    return {**key_info(row), "key": key}


async def list_keys(*, db: Database, workspace_id: str, user_id: str | None) -> list[dict]:
    """The workspace's keys (`user_id=None`, owners) or one member's own."""
    where = [K.workspace_id == workspace_id]
    if user_id is not None:
        where.append(K.user_id == user_id)
    async with db.read() as conn:
        rows = (await conn.execute(select(m.api_keys).where(*where)
                                   .order_by(K.created_at, K.id))).mappings().all()
    return [key_info(r) for r in rows]


async def revoke(*, db: Database, workspace_id: str, key_id: str, role: str, user_id: str) -> None:
    """Owners revoke any key of the workspace, members their own; others' keys are NotFound."""
    where = [K.id == key_id, K.workspace_id == workspace_id]
    if role != OWNER:
        where.append(K.user_id == user_id)
    async with db.write() as conn:
        row = (await conn.execute(select(K.revoked_at).where(*where))).first()
        if row is None:
            raise NotFound("API key not found")
        if row.revoked_at is None:
            await conn.execute(update(m.api_keys).where(K.id == key_id).values(revoked_at=now_ms()))
    mark_access_reduced(db)


async def revoke_all_of(*, db: Database, workspace_id: str, user_id: str) -> int:
    async with db.write() as conn:
        done = await conn.execute(update(m.api_keys).where(
            K.workspace_id == workspace_id, K.user_id == user_id, K.revoked_at.is_(None))
            .values(revoked_at=now_ms()))
    mark_access_reduced(db)
    return int(done.rowcount or 0)


async def verify(*, db: Database, key: str) -> dict | None:
    """The live key row (with the member's role) for a presented key, or None.

    Looked up by hash, then compared with `hmac.compare_digest`, so timing says nothing
    about how much of a guess matched."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    hashed = digest(key)
    M, W = m.memberships.c, m.workspaces.c
    async with db.read() as conn:
        row = (await conn.execute(
            select(m.api_keys, M.role).select_from(
                m.api_keys.join(m.memberships, and_(M.workspace_id == K.workspace_id,
                                                    M.user_id == K.user_id))
                .join(m.workspaces, W.id == K.workspace_id))
            .where(K.key_hash == hashed, K.revoked_at.is_(None), W.deleted_at.is_(None))
        )).mappings().first()
    stamp = now_ms()
    if row is None or not hmac.compare_digest(row["key_hash"], hashed):
        return None
    if row["expires_at"] is not None and row["expires_at"] <= stamp:
        return None
    if row["last_used_at"] is None or stamp - row["last_used_at"] > LAST_USED_RESOLUTION_MS:
        async with db.write() as conn:
            await conn.execute(update(m.api_keys).where(K.id == row["id"]).values(last_used_at=stamp))
    return dict(row)
