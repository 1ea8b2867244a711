"""Every operation of the spec's workspaces, auth, user, secrets and feedback tags, over HTTP:
success and error answers use statuses the spec lists and bodies its schemas accept."""

from __future__ import annotations

from tests.identity.tenants import assert_conforms, new_tenant


def test_every_identity_operation_conforms(auth_server):
    owner, member, outsider = (new_tenant(auth_server) for _ in range(3))
    seen: list[tuple[str, str]] = []

    def check(method, spec_path, response):
        assert_conforms(method, spec_path, response)
        seen.append((method, spec_path))
        return response

    team = check("POST", "/api/workspaces",
                 owner.post("/api/workspaces", {"name": "Conf"}, kind="token")).json()["id"]
    check("POST", "/api/workspaces", owner.post("/api/workspaces", {"name": ""}, kind="token"))
    check("GET", "/api/workspaces", owner.get("/api/workspaces", kind="token"))
    check("GET", "/api/workspaces", auth_server.get("/api/workspaces"))
    check("GET", "/api/workspaces/{id}", owner.get(f"/api/workspaces/{team}", kind="token"))
    check("GET", "/api/workspaces/{id}", outsider.get(f"/api/workspaces/{team}", kind="token"))
    check("PATCH", "/api/workspaces/{id}",
          owner.request("PATCH", f"/api/workspaces/{team}", {"name": "Conf2"}, kind="token"))
    check("PATCH", "/api/workspaces/{id}",
          owner.request("PATCH", f"/api/workspaces/{team}", {"name": ""}, kind="token"))
    in_team = {"X-Comfy-Workspace-ID": team}
    invite = check("POST", "/api/workspace/invites", owner.post(
        "/api/workspace/invites", {"email": member.email}, kind="id", headers=in_team)).json()
    check("POST", "/api/workspace/invites", owner.post(
        "/api/workspace/invites", {"email": member.email}, kind="id", headers=in_team))  # 409
    check("POST", "/api/workspace/invites", owner.post(
        "/api/workspace/invites", {"email": "bad"}, kind="id", headers=in_team))  # 422
    check("GET", "/api/workspace/invites", owner.get("/api/workspace/invites", kind="id",
                                                     headers=in_team))
    check("POST", "/api/invites/{token}/accept",
          outsider.post(f"/api/invites/{invite['token']}/accept", kind="id"))  # 403
    check("POST", "/api/invites/{token}/accept",
          member.post(f"/api/invites/{invite['token']}/accept", kind="id"))
    check("POST", "/api/invites/{token}/accept",
          member.post(f"/api/invites/{invite['token']}/accept", kind="id"))  # 409
    check("POST", "/api/invites/{token}/accept", member.post("/api/invites/nope/accept", kind="id"))
    spare = owner.post("/api/workspace/invites", {"email": "spare@example.com"}, kind="id",
                       headers=in_team).json()
    check("DELETE", "/api/workspace/invites/{inviteId}", member.delete(
        f"/api/workspace/invites/{spare['id']}", kind="id", headers=in_team))  # 403
    check("DELETE", "/api/workspace/invites/{inviteId}", owner.delete(
        f"/api/workspace/invites/{spare['id']}", kind="id", headers=in_team))
    check("GET", "/api/workspace/members", member.get("/api/workspace/members", kind="id",
                                                      headers=in_team))
    check("GET", "/api/workspace/members", member.get("/api/workspace/members?limit=0", kind="id",
                                                      headers=in_team))
    key = check("POST", "/api/workspace/api-keys", member.post(
        "/api/workspace/api-keys", {"name": "m"}, kind="id", headers=in_team)).json()
    check("POST", "/api/workspace/api-keys", member.post(
        "/api/workspace/api-keys", {"name": ""}, kind="id", headers=in_team))
    check("GET", "/api/workspace/api-keys", owner.get("/api/workspace/api-keys", kind="id",
                                                      headers=in_team))
    check("GET", "/api/workspace/api-keys", auth_server.get("/api/workspace/api-keys"))
    check("DELETE", "/api/workspace/api-keys/{id}", member.delete(
        f"/api/workspace/api-keys/{key['id']}", kind="id", headers=in_team))
    check("DELETE", "/api/workspace/api-keys/{id}", member.delete(
        f"/api/workspace/api-keys/{key['id']}x", kind="id", headers=in_team))
    check("DELETE", "/api/workspace/members/{user_id}/api-keys", member.delete(
        f"/api/workspace/members/{owner.user_id}/api-keys", kind="id", headers=in_team))
    check("DELETE", "/api/workspace/members/{user_id}/api-keys", owner.delete(
        f"/api/workspace/members/{member.user_id}/api-keys", kind="id", headers=in_team))
    check("POST", "/api/workspace/leave", owner.post("/api/workspace/leave", kind="id",
                                                     headers=in_team))  # last owner: 403
    check("DELETE", "/api/workspace/members/{userId}", member.delete(
        f"/api/workspace/members/{owner.user_id}", kind="id", headers=in_team))  # 403
    check("DELETE", "/api/workspace/members/{userId}", owner.delete(
        f"/api/workspace/members/{outsider.user_id}", kind="id", headers=in_team))  # 404
    check("POST", "/api/workspace/leave", member.post("/api/workspace/leave", kind="id",
                                                      headers=in_team))
    check("DELETE", "/api/workspaces/{id}", owner.delete(f"/api/workspaces/{owner.workspace_id}",
                                                         kind="token"))  # personal: 403
    check("DELETE", "/api/workspaces/{id}", owner.delete(f"/api/workspaces/{team}", kind="token"))
    check("DELETE", "/api/workspaces/{id}", owner.delete(f"/api/workspaces/{team}", kind="token"))
    # auth, user
    check("POST", "/api/auth/session", owner.post("/api/auth/session"))
    check("POST", "/api/auth/session", auth_server.post("/api/auth/session"))
    check("DELETE", "/api/auth/session", auth_server.request("DELETE", "/api/auth/session"))
    check("POST", "/api/auth/token", owner.post("/api/auth/token", {}, kind="id"))
    check("POST", "/api/auth/token", owner.post("/api/auth/token", {"workspace_id": team}, kind="id"))
    check("POST", "/api/auth/token", auth_server.post("/api/auth/token", {}))
    check("GET", "/.well-known/jwks.json", auth_server.get("/.well-known/jwks.json"))
    check("GET", "/api/user", owner.get("/api/user"))
    check("GET", "/api/user", auth_server.get("/api/user"))
    # secrets, feedback
    secret = check("POST", "/api/secrets", owner.post("/api/secrets", {"name": "s", "secret_value": "v"})).json()
    check("POST", "/api/secrets", owner.post("/api/secrets", {"name": "s", "secret_value": "v"}))
    check("POST", "/api/secrets", owner.post("/api/secrets", [1]))
    check("GET", "/api/secrets", owner.get("/api/secrets"))
    check("GET", "/api/secrets", auth_server.get("/api/secrets"))
    check("GET", "/api/secrets/{id}", owner.get(f"/api/secrets/{secret['id']}"))
    check("GET", "/api/secrets/{id}", outsider.get(f"/api/secrets/{secret['id']}"))
    check("PATCH", "/api/secrets/{id}", owner.request("PATCH", f"/api/secrets/{secret['id']}",
                                                      {"name": "t"}))
    check("DELETE", "/api/secrets/{id}", owner.delete(f"/api/secrets/{secret['id']}"))
    check("DELETE", "/api/secrets/{id}", owner.delete(f"/api/secrets/{secret['id']}"))
    check("POST", "/api/feedback", owner.post("/api/feedback", {"type": "general"}))
    check("POST", "/api/feedback", owner.post("/api/feedback", {"type": "nope"}))
    check("POST", "/api/feedback", auth_server.post("/api/feedback", {"type": "general"}))

    from tests.conformance.spec import load_spec

    tags = {"workspaces", "auth", "secrets", "feedback"}
    wanted = {(m.upper(), p) for p, ops in load_spec()["paths"].items() for m, op in ops.items()
              if isinstance(op, dict) and tags & set(op.get("tags", []))}
    wanted |= {("GET", "/api/user"), ("GET", "/.well-known/jwks.json")}
    assert wanted - set(seen) == set()
