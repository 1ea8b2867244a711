"""Userdata and settings belong to the signed-in user (the comfy-user header is not trusted)."""

from __future__ import annotations

from tests.identity.tenants import new_tenant


def test_userdata_is_per_user(auth_server):
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    path = "/api/userdata/workflows%2Fprivate.json"
    r = a.request("POST", path, data=b'{"nodes": []}',
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200, r.body
    assert a.get(path).body == b'{"nodes": []}'
    assert b.get(path).status == 404
    assert b.get(path, headers={"comfy-user": a.user_id}).status == 404
    assert "private.json" not in b.get("/api/userdata?dir=workflows").body.decode()
    assert b.request("DELETE", path).status == 404
    assert b.post("/api/userdata/workflows%2Fprivate.json/move/workflows%2Fmine.json").status == 404
    assert a.get(path).status == 200


def test_settings_are_per_user(auth_server):
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    assert a.post("/api/settings", {"Comfy.Secret.Setting": "A-only"}).status == 200
    assert a.get("/api/settings").json().get("Comfy.Secret.Setting") == "A-only"
    assert "Comfy.Secret.Setting" not in b.get("/api/settings").json()
    assert b.get("/api/settings/Comfy.Secret.Setting").json() is None


def test_secrets_are_per_workspace(auth_server):
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    created = a.post("/api/secrets", {"name": "k", "secret_value": "v"}).json()
    sid = created["id"]
    assert b.get(f"/api/secrets/{sid}").status == 404
    assert b.request("PATCH", f"/api/secrets/{sid}", {"name": "stolen"}).status == 404
    assert b.delete(f"/api/secrets/{sid}").status == 404
    assert b.get("/api/secrets").json() == {"data": []}
    # Same name in B's workspace is no conflict.
    assert b.post("/api/secrets", {"name": "k", "secret_value": "w"}).status == 201
    assert a.get(f"/api/secrets/{sid}").json()["name"] == "k"


def test_workspace_ids_of_others_are_404(auth_server):
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    team = a.post("/api/workspaces", {"name": "A team"}, kind="token").json()["id"]
    for ws in (team, a.workspace_id):
        assert b.get(f"/api/workspaces/{ws}", kind="token").status == 404
        assert b.request("PATCH", f"/api/workspaces/{ws}", {"name": "x"}, kind="token").status == 404
        assert b.delete(f"/api/workspaces/{ws}", kind="token").status == 404
        # Acting in A's workspace by header: 404, not 403.
        assert b.get("/api/queue", kind="id", headers={"X-Comfy-Workspace-ID": ws}).status == 404
        assert b.post("/api/auth/token", {"workspace_id": ws}, kind="id").status == 404
    invite = a.post("/api/workspace/invites", {"email": "c@example.com"}, kind="id",
                    headers={"X-Comfy-Workspace-ID": team}).json()
    assert b.delete(f"/api/workspace/invites/{invite['id']}", kind="id").status == 404
    key_id = a.get("/api/workspace/api-keys", kind="token").json()["api_keys"][0]["id"]
    assert b.delete(f"/api/workspace/api-keys/{key_id}", kind="token").status == 404
    assert a.get("/api/queue").status == 200
