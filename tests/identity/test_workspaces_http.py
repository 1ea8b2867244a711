"""Workspaces, members, invites and leaving, over HTTP against a `--auth required` server."""

from __future__ import annotations

from tests.identity.tenants import Tenant, assert_conforms, new_tenant


def _team(owner: Tenant, name: str = "Studio") -> str:
    r = owner.post("/api/workspaces", {"name": name}, kind="token")
    assert r.status == 201, r.body
    body = r.json()
    assert body["type"] == "team" and body["name"] == name and body["id"].startswith("w-")
    return body["id"]


def _as(t: Tenant, workspace_id: str) -> dict:
    return {"X-Comfy-Workspace-ID": workspace_id}


def _invite_and_join(owner: Tenant, workspace_id: str, member: Tenant) -> None:
    r = owner.post("/api/workspace/invites", {"email": member.email}, kind="id",
                   headers=_as(owner, workspace_id))
    assert r.status == 201, r.body
    r = member.post(f"/api/invites/{r.json()['token']}/accept", kind="id")
    assert r.status == 200, r.body


def test_personal_workspace_listed_with_role(auth_server):
    a = new_tenant(auth_server)
    r = a.get("/api/workspaces", kind="token")
    assert r.status == 200
    (only,) = r.json()["workspaces"]
    assert only == {**only, "id": a.workspace_id, "type": "personal", "role": "owner"}
    assert set(only) >= {"id", "name", "type", "role", "created_at", "joined_at"}


def test_workspace_routes_take_bearer_only(auth_server):
    a = new_tenant(auth_server)
    assert a.get("/api/workspaces", kind="key").status == 401
    assert a.get("/api/workspaces", kind="id").status == 200


def test_create_get_rename_delete_team(auth_server):
    a = new_tenant(auth_server)
    team = _team(a)
    assert a.get(f"/api/workspaces/{team}", kind="token").json()["name"] == "Studio"
    r = a.request("PATCH", f"/api/workspaces/{team}", {"name": "Renamed"}, kind="token")
    assert r.status == 200 and r.json()["name"] == "Renamed"
    assert a.request("PATCH", f"/api/workspaces/{team}", {"name": ""}, kind="token").status == 422
    assert a.post("/api/workspaces", {"name": "x" * 101}, kind="token").status == 422
    assert a.post("/api/workspaces", {}, kind="token").status == 422
    assert a.delete(f"/api/workspaces/{team}", kind="token").status == 204
    assert a.get(f"/api/workspaces/{team}", kind="token").status == 404
    ids = [w["id"] for w in a.get("/api/workspaces", kind="token").json()["workspaces"]]
    assert team not in ids


def test_personal_workspace_cannot_be_deleted_or_left(auth_server):
    a = new_tenant(auth_server)
    assert a.delete(f"/api/workspaces/{a.workspace_id}", kind="token").status == 403
    assert a.post("/api/workspace/leave", kind="token").status == 403
    r = a.post("/api/workspace/invites", {"email": "x@example.com"}, kind="token")
    assert r.status == 403


def test_invite_accept_is_single_use_and_bound_to_email(auth_server):
    owner, invited, other = (new_tenant(auth_server) for _ in range(3))
    team = _team(owner)
    r = owner.post("/api/workspace/invites", {"email": invited.email.upper()}, kind="id",
                   headers=_as(owner, team))
    assert r.status == 201
    invite = r.json()
    assert set(invite) >= {"id", "email", "invited_at", "expires_at", "token"}
    listed = owner.get("/api/workspace/invites", kind="id", headers=_as(owner, team)).json()
    assert [i["id"] for i in listed["invites"]] == [invite["id"]]
    assert "token" not in listed["invites"][0]
    # Another email: 403, and the invite stays usable by its owner.
    assert other.post(f"/api/invites/{invite['token']}/accept", kind="id").status == 403
    r = invited.post(f"/api/invites/{invite['token']}/accept", kind="id")
    assert r.status == 200 and r.json() == {"workspace_id": team, "workspace_name": "Studio"}
    # Replay: refused.
    assert invited.post(f"/api/invites/{invite['token']}/accept", kind="id").status == 409
    assert other.post("/api/invites/not-a-token/accept", kind="id").status == 404
    roles = {w["id"]: w["role"] for w in
             invited.get("/api/workspaces", kind="token").json()["workspaces"]}
    assert roles[team] == "member"
    # A duplicate invite to a member: 409.
    assert owner.post("/api/workspace/invites", {"email": invited.email}, kind="id",
                      headers=_as(owner, team)).status == 409
    assert owner.post("/api/workspace/invites", {"email": "not-an-email"}, kind="id",
                      headers=_as(owner, team)).status == 422


def test_revoked_invite_cannot_be_accepted(auth_server):
    owner, invited = new_tenant(auth_server), new_tenant(auth_server)
    team = _team(owner)
    invite = owner.post("/api/workspace/invites", {"email": invited.email}, kind="id",
                        headers=_as(owner, team)).json()
    assert owner.delete(f"/api/workspace/invites/{invite['id']}", kind="id",
                        headers=_as(owner, team)).status == 204
    assert owner.delete(f"/api/workspace/invites/{invite['id']}", kind="id",
                        headers=_as(owner, team)).status == 404
    assert invited.post(f"/api/invites/{invite['token']}/accept", kind="id").status == 404


def test_members_page_and_owner_only_actions(auth_server):
    owner, member = new_tenant(auth_server), new_tenant(auth_server)
    team = _team(owner)
    _invite_and_join(owner, team, member)
    r = member.get("/api/workspace/members", kind="id", headers=_as(member, team))
    assert r.status == 200
    body = r.json()
    assert body["pagination"] == {"offset": 0, "limit": 20, "total": 2, "has_more": False}
    assert {m["id"]: m["role"] for m in body["members"]} == {owner.user_id: "owner",
                                                             member.user_id: "member"}
    page = member.get("/api/workspace/members?limit=1&offset=1", kind="id",
                      headers=_as(member, team)).json()
    assert len(page["members"]) == 1 and page["pagination"]["has_more"] is False
    assert member.get("/api/workspace/members?limit=101", kind="id",
                      headers=_as(member, team)).status == 422
    # A member tries owner actions: 403 each.
    hdr = _as(member, team)
    assert member.delete(f"/api/workspace/members/{owner.user_id}", kind="id",
                         headers=hdr).status == 403
    assert member.post("/api/workspace/invites", {"email": "z@example.com"}, kind="id",
                       headers=hdr).status == 403
    assert member.get("/api/workspace/invites", kind="id", headers=hdr).status == 403
    assert member.request("PATCH", f"/api/workspaces/{team}", {"name": "Mine"},
                          kind="token").status == 403
    assert member.delete(f"/api/workspaces/{team}", kind="token").status == 403
    assert member.delete(f"/api/workspace/members/{owner.user_id}/api-keys", kind="id",
                         headers=hdr).status == 403
    # The owner removes the member: their access to the team ends at once.
    assert owner.delete(f"/api/workspace/members/{member.user_id}", kind="id",
                        headers=_as(owner, team)).status == 204
    assert member.get("/api/workspace/members", kind="id", headers=hdr).status == 404
    assert owner.delete(f"/api/workspace/members/{member.user_id}", kind="id",
                        headers=_as(owner, team)).status == 404


def test_last_owner_cannot_leave_or_be_removed_member_can_leave(auth_server):
    owner, member = new_tenant(auth_server), new_tenant(auth_server)
    team = _team(owner)
    _invite_and_join(owner, team, member)
    assert owner.post("/api/workspace/leave", kind="id", headers=_as(owner, team)).status == 403
    assert owner.delete(f"/api/workspace/members/{owner.user_id}", kind="id",
                        headers=_as(owner, team)).status == 403
    assert member.post("/api/workspace/leave", kind="id", headers=_as(member, team)).status == 204
    ids = [w["id"] for w in member.get("/api/workspaces", kind="token").json()["workspaces"]]
    assert ids == [member.workspace_id]


def test_workspace_token_for_a_team_carries_its_role(auth_server):
    owner, member = new_tenant(auth_server), new_tenant(auth_server)
    team = _team(owner)
    _invite_and_join(owner, team, member)
    r = member.post("/api/auth/token", {"workspace_id": team}, kind="id")
    assert r.status == 200
    body = r.json()
    assert body["role"] == "member" and body["workspace"] == {"id": team, "name": "Studio",
                                                              "type": "team"}
    team_token = body["token"]
    r = auth_server.get("/api/user", headers={"Authorization": f"Bearer {team_token}"})
    assert r.json()["workspace_id"] == team and r.json()["role"] == "member"
    # A workspace token cannot be moved to another workspace by the header.
    r = auth_server.get("/api/user", headers={"Authorization": f"Bearer {team_token}",
                                              "X-Comfy-Workspace-ID": member.workspace_id})
    assert r.status == 404
    # Not a member: 404.
    stranger = new_tenant(auth_server)
    assert stranger.post("/api/auth/token", {"workspace_id": team}, kind="id").status == 404


def test_responses_match_the_spec_schemas(auth_server):
    owner, member = new_tenant(auth_server), new_tenant(auth_server)
    team = _team(owner)
    hdr = _as(owner, team)
    checks = [
        ("GET", "/api/workspaces", owner.get("/api/workspaces", kind="token")),
        ("POST", "/api/workspaces", owner.post("/api/workspaces", {"name": "S2"}, kind="token")),
        ("GET", "/api/workspaces/{id}", owner.get(f"/api/workspaces/{team}", kind="token")),
        ("PATCH", "/api/workspaces/{id}", owner.request("PATCH", f"/api/workspaces/{team}",
                                                       {"name": "S3"}, kind="token")),
        ("POST", "/api/workspace/invites", owner.post("/api/workspace/invites",
                                                      {"email": member.email}, kind="id",
                                                      headers=hdr)),
        ("GET", "/api/workspace/invites", owner.get("/api/workspace/invites", kind="id",
                                                    headers=hdr)),
        ("GET", "/api/workspace/members", owner.get("/api/workspace/members", kind="id",
                                                    headers=hdr)),
        ("GET", "/api/workspaces/{id}", owner.get("/api/workspaces/w-nope", kind="token")),
        ("GET", "/api/workspaces", auth_server.get("/api/workspaces")),
        ("GET", "/api/user", owner.get("/api/user")),
        ("POST", "/api/auth/token", owner.post("/api/auth/token", {}, kind="id")),
    ]
    for method, path, response in checks:
        assert_conforms(method, path, response)


def test_removed_member_keys_and_sessions_stop_at_once(auth_server):
    owner, member = new_tenant(auth_server), new_tenant(auth_server)
    team = _team(owner)
    _invite_and_join(owner, team, member)
    in_team = _as(member, team)
    key = member.post("/api/workspace/api-keys", {"name": "k"}, kind="id", headers=in_team).json()["key"]
    cookie = member.post("/api/auth/session", kind="id", headers=in_team).headers["Set-Cookie"]
    cookie = cookie.split(";", 1)[0]
    assert auth_server.get("/api/queue", headers={"X-API-Key": key}).status == 200
    assert auth_server.get("/api/queue", headers={"Cookie": cookie}).status == 200
    assert owner.delete(f"/api/workspace/members/{member.user_id}", kind="id",
                        headers=_as(owner, team)).status == 204
    assert auth_server.get("/api/queue", headers={"X-API-Key": key}).status == 401
    assert auth_server.get("/api/queue", headers={"Cookie": cookie}).status == 401
    # Their personal workspace is untouched.
    assert member.get("/api/queue").status == 200
