"""Workspace API keys: creation (shown once), listing, revocation and expiry effective at once."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from tests.identity.tenants import assert_conforms, new_tenant


def test_key_format_shown_once_and_listed_without_the_key(auth_server):
    a = new_tenant(auth_server)
    r = a.post("/api/workspace/api-keys", {"name": "ci", "description": "for CI"}, kind="token")
    assert r.status == 201
    assert_conforms("POST", "/api/workspace/api-keys", r)
    created = r.json()
    key = created["key"]
    assert key.startswith("comfyui-") and len(key) - len("comfyui-") >= 64  # 32 bytes, hex
    assert created["key_prefix"] == key[:len(created["key_prefix"])]
    r = a.get("/api/workspace/api-keys", kind="token")
    assert_conforms("GET", "/api/workspace/api-keys", r)
    listed = {k["id"]: k for k in r.json()["api_keys"]}
    assert listed[created["id"]]["name"] == "ci"
    assert listed[created["id"]]["description"] == "for CI"
    assert key not in r.body.decode()
    assert auth_server.get("/api/user", headers={"X-API-Key": key}).status == 200
    # After first use, last_used_at is set.
    listed = {k["id"]: k for k in a.get("/api/workspace/api-keys", kind="token").json()["api_keys"]}
    assert listed[created["id"]].get("last_used_at")


def test_wrong_and_malformed_keys_are_401(auth_server):
    a = new_tenant(auth_server)
    for bad in ("comfyui-" + "0" * 64, a.key[:-1] + ("0" if a.key[-1] != "0" else "1"),
                "not-a-key", a.key + "x", "comfyui-"):
        r = auth_server.get("/api/queue", headers={"X-API-Key": bad})
        assert r.status == 401, bad
        assert r.json()["code"] == "unauthorized"
    assert auth_server.get("/api/queue").status == 401
    assert auth_server.get("/api/queue", headers={"X-API-Key": a.key}).status == 200
    # The key as a bearer token works too (clients do send it that way).
    assert auth_server.get("/api/queue", headers={"Authorization": f"Bearer {a.key}"}).status == 200


def test_revoked_key_fails_at_once(auth_server):
    a = new_tenant(auth_server)
    created = a.post("/api/workspace/api-keys", {"name": "short"}, kind="token").json()
    assert auth_server.get("/api/queue", headers={"X-API-Key": created["key"]}).status == 200
    r = a.delete(f"/api/workspace/api-keys/{created['id']}", kind="token")
    assert r.status == 204
    assert auth_server.get("/api/queue", headers={"X-API-Key": created["key"]}).status == 401
    listed = {k["id"]: k for k in a.get("/api/workspace/api-keys", kind="token").json()["api_keys"]}
    assert listed[created["id"]].get("revoked_at")
    assert a.delete("/api/workspace/api-keys/00000000-0000-0000-0000-000000000000",
                    kind="token").status == 404


def test_expired_key_fails(auth_server):
    a = new_tenant(auth_server)
    soon = (datetime.now(timezone.utc) + timedelta(seconds=2)).isoformat()
    created = a.post("/api/workspace/api-keys", {"name": "brief", "expires_at": soon},
                     kind="token").json()
    assert auth_server.get("/api/queue", headers={"X-API-Key": created["key"]}).status == 200
    time.sleep(2.2)
    assert auth_server.get("/api/queue", headers={"X-API-Key": created["key"]}).status == 401
    past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    assert a.post("/api/workspace/api-keys", {"name": "x", "expires_at": past},
                  kind="token").status == 422
    assert a.post("/api/workspace/api-keys", {"name": "x", "expires_at": "tomorrow"},
                  kind="token").status == 422
    assert a.post("/api/workspace/api-keys", {"name": ""}, kind="token").status == 422
    assert a.post("/api/workspace/api-keys", {"name": "x", "description": "é" * 2501},
                  kind="token").status == 422


def test_api_key_cannot_manage_keys(auth_server):
    """Key management takes a bearer token only: a leaked key cannot mint more keys."""
    a = new_tenant(auth_server)
    assert a.post("/api/workspace/api-keys", {"name": "x"}, kind="key").status == 401
    assert a.get("/api/workspace/api-keys", kind="key").status == 401


def test_members_see_own_keys_owners_all_and_bulk_revoke(auth_server):
    owner, member = new_tenant(auth_server), new_tenant(auth_server)
    team = owner.post("/api/workspaces", {"name": "T"}, kind="token").json()["id"]
    invite = owner.post("/api/workspace/invites", {"email": member.email}, kind="id",
                        headers={"X-Comfy-Workspace-ID": team}).json()
    assert member.post(f"/api/invites/{invite['token']}/accept", kind="id").status == 200
    own = {"X-Comfy-Workspace-ID": team}
    owner_key = owner.post("/api/workspace/api-keys", {"name": "o"}, kind="id", headers=own).json()
    member_keys = [member.post("/api/workspace/api-keys", {"name": f"m{i}"}, kind="id",
                               headers=own).json() for i in range(2)]
    seen_by_member = member.get("/api/workspace/api-keys", kind="id", headers=own).json()["api_keys"]
    assert {k["id"] for k in seen_by_member} == {k["id"] for k in member_keys}
    seen_by_owner = owner.get("/api/workspace/api-keys", kind="id", headers=own).json()["api_keys"]
    assert {k["id"] for k in seen_by_owner} == {owner_key["id"]} | {k["id"] for k in member_keys}
    # A member cannot revoke the owner's key (it is not theirs: 404).
    assert member.delete(f"/api/workspace/api-keys/{owner_key['id']}", kind="id",
                         headers=own).status == 404
    # The member's key works in the team workspace, and only there.
    r = auth_server.get("/api/user", headers={"X-API-Key": member_keys[0]["key"]})
    assert r.json()["workspace_id"] == team and r.json()["role"] == "member"
    r = auth_server.get("/api/user", headers={"X-API-Key": member_keys[0]["key"],
                                              "X-Comfy-Workspace-ID": member.workspace_id})
    assert r.status == 404
    listed = owner.get(f"/api/workspace/members/{member.user_id}/api-keys", kind="id", headers=own)
    assert {k["id"] for k in listed.json()["api_keys"]} == {k["id"] for k in member_keys}
    r = owner.delete(f"/api/workspace/members/{member.user_id}/api-keys", kind="id", headers=own)
    assert r.status == 200 and r.json() == {"revoked_count": 2}
    assert_conforms("DELETE", "/api/workspace/members/{user_id}/api-keys", r)
    for k in member_keys:
        assert auth_server.get("/api/queue", headers={"X-API-Key": k["key"]}).status == 401
    assert auth_server.get("/api/queue", headers={"X-API-Key": owner_key["key"]}).status == 200


def test_cli_creates_users_and_prints_a_key_once(auth_server):
    import uuid

    email = f"cli{uuid.uuid4().hex[:8]}@example.com"
    done = auth_server.cli("users", "create", "--email", email, "--password", "pw-123456")
    assert done.returncode == 0, done.stderr
    again = auth_server.cli("users", "create", "--email", email, "--password", "pw")
    assert again.returncode == 1 and "already exists" in again.stderr
    done = auth_server.cli("keys", "create", "--email", email)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("comfyui-")
    r = auth_server.get("/api/user", headers={"X-API-Key": key})
    assert r.status == 200 and r.json()["email"] == email
    missing = auth_server.cli("keys", "create", "--email", "nobody@example.com")
    assert missing.returncode == 1 and "no user" in missing.stderr
