"""/api/secrets: sealed at rest (AES-GCM), never returned or logged, key rotation."""

from __future__ import annotations

import asyncio
import uuid

from tests.identity.fixtures import SECRETS_KEY_1, SECRETS_KEY_2
from tests.identity.tenants import assert_conforms, database_url, new_tenant


def _rows(server) -> list[dict]:
    from sqlalchemy import select

    from opencomfy.db.database import Database
    from opencomfy.identity import models as m

    async def read():
        db = await Database.open(database_url(server), migrate=False)
        try:
            async with db.read() as conn:
                return [dict(r) for r in (await conn.execute(select(m.secrets))).mappings().all()]
        finally:
            await db.close()

    return asyncio.run(read())


def test_secret_lifecycle_and_value_never_returned(auth_server):
    a = new_tenant(auth_server)
    value = "sk-" + uuid.uuid4().hex
    r = a.post("/api/secrets", {"name": "openai", "secret_value": value, "provider": "openai"})
    assert r.status == 201, r.body
    assert_conforms("POST", "/api/secrets", r)
    created = r.json()
    assert value not in r.body.decode()
    r = a.get("/api/secrets")
    assert_conforms("GET", "/api/secrets", r)
    assert [s["id"] for s in r.json()["data"]] == [created["id"]] and value not in r.body.decode()
    r = a.get(f"/api/secrets/{created['id']}")
    assert r.status == 200 and r.json()["name"] == "openai" and value not in r.body.decode()
    assert_conforms("GET", "/api/secrets/{id}", r)
    r = a.request("PATCH", f"/api/secrets/{created['id']}", {"name": "openai-2",
                                                              "secret_value": value + "x"})
    assert r.status == 200 and r.json()["name"] == "openai-2"
    assert_conforms("PATCH", "/api/secrets/{id}", r)
    # At rest: sealed, bound to its row, not the plaintext.
    (row,) = [row for row in _rows(auth_server) if row["id"] == created["id"]]
    assert value not in row["ciphertext"] and row["key_id"] == "k1"
    assert value not in auth_server.log()
    assert a.delete(f"/api/secrets/{created['id']}").status == 204
    assert a.get(f"/api/secrets/{created['id']}").status == 404
    assert a.delete(f"/api/secrets/{created['id']}").status == 404


def test_duplicates_and_bad_input(auth_server):
    a = new_tenant(auth_server)
    assert a.post("/api/secrets", {"name": "n", "secret_value": "v", "provider": "p"}).status == 201
    assert a.post("/api/secrets", {"name": "n", "secret_value": "v2"}).status == 409
    assert a.post("/api/secrets", {"name": "m", "secret_value": "v", "provider": "p"}).status == 409
    assert a.post("/api/secrets", {"name": "", "secret_value": "v"}).status == 422
    assert a.post("/api/secrets", {"name": "x", "secret_value": ""}).status == 422
    assert a.post("/api/secrets", {"name": "x"}).status == 422
    assert a.post("/api/secrets", [1]).status == 400
    assert a.get("/api/secrets/not-a-uuid").status == 404


def test_secrets_work_without_a_configured_key_and_survive_a_restart(make_server, tmp_path):
    """No OPENCOMFY_SECRETS_KEYS: the first start makes a private keyring file in the data
    directory; a restart reads the same file, so what was sealed before still opens."""
    import stat

    from opencomfy.db.database import Database
    from opencomfy.secrets.keyfile import KEYRING_FILE, resolve_keyring
    from opencomfy.secrets.service import SecretService

    base = tmp_path / "keyring-home"
    srv = make_server(base_dir=base, env={"OPENCOMFY_SECRETS_KEYS": ""})
    r = srv.post("/api/secrets", {"name": "tok", "secret_value": "v-1"})
    assert r.status == 201, r.body
    keyfile = base / KEYRING_FILE
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600
    ring = keyfile.read_text()
    srv.stop()
    again = make_server(base_dir=base, env={"OPENCOMFY_SECRETS_KEYS": ""})
    assert [s["name"] for s in again.get("/api/secrets").json()["data"]] == ["tok"]
    assert keyfile.read_text() == ring

    async def reveal():
        db = await Database.open(database_url(again), migrate=False)
        try:
            service = SecretService(db=db, keyring=resolve_keyring(configured=None, state_dir=base))
            return await service.reveal(workspace_id="local", name="tok")
        finally:
            await db.close()

    assert asyncio.run(reveal()) == "v-1"


def test_a_configured_keyring_wins_and_a_broken_file_is_refused(tmp_path):
    import pytest

    from opencomfy.secrets.crypto import KeyringError
    from opencomfy.secrets.keyfile import KEYRING_FILE, resolve_keyring

    spec = f"k1:{SECRETS_KEY_1}"
    assert resolve_keyring(configured=spec, state_dir=tmp_path) == spec
    assert not (tmp_path / KEYRING_FILE).exists()
    (tmp_path / KEYRING_FILE).write_text("k1:not-base64")
    with pytest.raises(KeyringError, match=KEYRING_FILE):
        resolve_keyring(configured=None, state_dir=tmp_path)


def test_keyring_rotation_reseals_and_old_values_open():
    """Sealed under k1; the keyring becomes (k2, k1): old values still open, reseal moves
    them to k2; a value moved onto another row does not open (bound to its owner)."""
    import pytest

    from opencomfy.db.database import Database
    from opencomfy.secrets.crypto import KeyringError
    from opencomfy.secrets.service import SecretService

    async def run(tmp):
        db = await Database.open(f"sqlite+aiosqlite:///{tmp}/s.db")
        try:
            old = SecretService(db=db, keyring=f"k1:{SECRETS_KEY_1}")
            made = await old.create(workspace_id="w-a", user_id="u", name="tok", value="v-1")
            new = SecretService(db=db, keyring=f"k2:{SECRETS_KEY_2},k1:{SECRETS_KEY_1}")
            assert await new.reveal(workspace_id="w-a", name="tok") == "v-1"
            assert await new.reseal_all() == 1
            only_new = SecretService(db=db, keyring=f"k2:{SECRETS_KEY_2}")
            assert await only_new.reveal(workspace_id="w-a", name="tok") == "v-1"
            with pytest.raises(Exception):
                await only_new.reveal(workspace_id="w-b", name="tok")
            # A sealed value copied to another workspace's row does not open there.
            blob_row = await only_new.create(workspace_id="w-b", user_id="u", name="tok", value="x")
            from sqlalchemy import select, update

            from opencomfy.identity import models as m
            async with db.write() as conn:
                src = (await conn.execute(select(m.secrets).where(
                    m.secrets.c.id == made["id"]))).mappings().first()
                await conn.execute(update(m.secrets).where(m.secrets.c.id == blob_row["id"])
                                   .values(ciphertext=src["ciphertext"], key_id=src["key_id"]))
            with pytest.raises(KeyringError):
                await only_new.reveal(workspace_id="w-b", name="tok")
        finally:
            await db.close()

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(tmp))


def test_feedback_is_stored_with_user_and_workspace(auth_server):
    a = new_tenant(auth_server)
    r = a.post("/api/feedback", {"type": "general", "content": "nice", "rating": 5,
                                 "metadata": {"page": "queue"}})
    assert r.status == 201
    assert_conforms("POST", "/api/feedback", r)
    for bad in ({"type": "rant"}, {"type": "general", "rating": 6}, {"type": "general",
                                                                     "rating": "5"},
                {"type": "general", "metadata": []}, {}):
        assert a.post("/api/feedback", bad).status == 400, bad
    assert auth_server.post("/api/feedback", {"type": "general"}).status == 401

    from sqlalchemy import select

    from opencomfy.db.database import Database
    from opencomfy.identity import models as m

    async def read():
        db = await Database.open(database_url(auth_server), migrate=False)
        try:
            async with db.read() as conn:
                return (await conn.execute(select(m.feedback).where(
                    m.feedback.c.id == r.json()["id"]))).mappings().first()
        finally:
            await db.close()

    row = asyncio.run(read())
    assert (row["user_id"], row["workspace_id"], row["rating"]) == (a.user_id, a.workspace_id, 5)
