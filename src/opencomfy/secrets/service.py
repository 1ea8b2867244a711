"""`SecretService`: create, list, update, delete a workspace's secrets; open one only for that
workspace's own job. Plaintext never leaves through the API and is never logged."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from opencomfy.db.database import Database
from opencomfy.identity import models as m
from opencomfy.identity.common import iso, now_ms
from opencomfy.identity.errors import Conflict, IdentityError, Invalid, NotFound
from opencomfy.secrets.crypto import Keyring

S = m.secrets.c


class SecretsDisabled(IdentityError):
    status, code = 503, "secrets_disabled"


def _bound_to(workspace_id: str, secret_id: str) -> str:
    return f"{workspace_id}/{secret_id}"


def secret_json(row) -> dict:
    """SecretResponse: metadata only."""
    out = {"id": row["id"], "name": row["name"], "created_at": iso(row["created_at"]),
           "updated_at": iso(row["updated_at"])}
    if row["provider"]:
        out["provider"] = row["provider"]
    if row["last_used_at"]:
        out["last_used_at"] = iso(row["last_used_at"])
    return out


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        raise Invalid("name must be 1 to 255 characters")
    return name


def _check_value(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("secret_value must be a non-empty string")
    return value


class SecretService:
    def __init__(self, *, db: Database, keyring: str | None) -> None:
        self.db = db
        self.keyring = Keyring(keyring) if keyring else None

    def _ring(self) -> Keyring:
        if self.keyring is None:
            raise SecretsDisabled("secrets are not configured on this server "
                                  "(set OPENCOMFY_SECRETS_KEYS)")
        return self.keyring

    async def create(self, *, workspace_id: str, user_id: str, name: object, value: object,
                     provider: object = None) -> dict:
        ring = self._ring()
        name, value = _check_name(name), _check_value(value)
        if provider is not None and (not isinstance(provider, str) or len(provider) > 64):
            raise Invalid("provider must be a string of at most 64 characters")
        secret_id, stamp = str(uuid.uuid4()), now_ms()
        key_id, blob = ring.seal(value, bound_to=_bound_to(workspace_id, secret_id))
        row = {"id": secret_id, "workspace_id": workspace_id, "user_id": user_id, "name": name,
               "provider": provider or None, "key_id": key_id, "ciphertext": blob,
               "created_at": stamp, "updated_at": stamp, "last_used_at": None}
        async with self.db.write() as conn:
            if provider:
                taken = (await conn.execute(select(S.id).where(
                    S.workspace_id == workspace_id, S.provider == provider))).first()
                if taken:
                    raise Conflict("a secret for this provider already exists")
            try:
                await conn.execute(insert(m.secrets).values(**row))
            except IntegrityError:
                raise Conflict("a secret with this name already exists") from None
        return secret_json(row)

    async def list(self, *, workspace_id: str) -> list[dict]:
        self._ring()
        async with self.db.read() as conn:
            rows = (await conn.execute(select(m.secrets).where(S.workspace_id == workspace_id)
                                       .order_by(S.created_at, S.id))).mappings().all()
        return [secret_json(r) for r in rows]

    async def get(self, *, workspace_id: str, secret_id: str) -> dict:
        self._ring()
        async with self.db.read() as conn:
            row = (await conn.execute(select(m.secrets).where(
                S.id == secret_id, S.workspace_id == workspace_id))).mappings().first()
        if row is None:
            raise NotFound("secret not found")
        return secret_json(row)

    async def update(self, *, workspace_id: str, secret_id: str, name: object = None,
                     value: object = None) -> dict:
        ring = self._ring()
        changes: dict = {"updated_at": now_ms()}
        if name is not None:
            changes["name"] = _check_name(name)
        if value is not None:
            changes["key_id"], changes["ciphertext"] = ring.seal(
                _check_value(value), bound_to=_bound_to(workspace_id, secret_id))
        async with self.db.write() as conn:
            try:
                done = await conn.execute(update(m.secrets).where(
                    S.id == secret_id, S.workspace_id == workspace_id).values(**changes))
            except IntegrityError:
                raise Conflict("a secret with this name already exists") from None
            if done.rowcount == 0:
                raise NotFound("secret not found")
            row = (await conn.execute(select(m.secrets).where(S.id == secret_id))).mappings().first()
        return secret_json(row)

    async def delete(self, *, workspace_id: str, secret_id: str) -> None:
        self._ring()
        async with self.db.write() as conn:
            done = await conn.execute(delete(m.secrets).where(
                S.id == secret_id, S.workspace_id == workspace_id))
        if done.rowcount == 0:
            raise NotFound("secret not found")

    async def reveal(self, *, workspace_id: str, name: str) -> str:
        """The plaintext, for a job of this same workspace only (the worker's side)."""
        ring = self._ring()
        async with self.db.read() as conn:
            row = (await conn.execute(select(m.secrets).where(
                S.workspace_id == workspace_id, S.name == name))).mappings().first()
        if row is None:
            raise NotFound("secret not found")
        async with self.db.write() as conn:
            await conn.execute(update(m.secrets).where(S.id == row["id"])
                               .values(last_used_at=now_ms()))
        return ring.open(row["key_id"], row["ciphertext"],
                         bound_to=_bound_to(workspace_id, row["id"]))

    async def reveal_for_job(self, *, prompt_id: str, name: str) -> str:
        """The plaintext for a node of this running job: its own workspace's secret only."""
        from opencomfy.db.models import Job

        async with self.db.read() as conn:
            workspace_id = (await conn.execute(select(Job.workspace_id).where(
                Job.id == prompt_id, Job.status == "in_progress"))).scalar()
        if workspace_id is None:
            raise NotFound("no running job")
        return await self.reveal(workspace_id=workspace_id, name=name)

    async def reseal_all(self) -> int:
        """Key rotation: re-encrypt every secret under the current key; returns how many."""
        ring = self._ring()
        async with self.db.write() as conn:
            rows = (await conn.execute(select(m.secrets).where(
                S.key_id != ring.current_id))).mappings().all()
            for row in rows:
                bound = _bound_to(row["workspace_id"], row["id"])
                plain = ring.open(row["key_id"], row["ciphertext"], bound_to=bound)
                key_id, blob = ring.seal(plain, bound_to=bound)
                await conn.execute(update(m.secrets).where(S.id == row["id"])
                                   .values(key_id=key_id, ciphertext=blob))
        return len(rows)
