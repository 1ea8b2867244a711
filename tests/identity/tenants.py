"""Test users of a `--auth required` server: created through the CLI, signed in over HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.harness import Response, Server


@dataclass
class Tenant:
    """A user with credentials: `token` (workspace JWT), `id_token` (identity JWT), `key`."""

    server: Server
    email: str
    password: str
    user_id: str = ""
    workspace_id: str = ""
    id_token: str = ""
    token: str = ""
    key: str = ""
    extra_headers: dict = field(default_factory=dict)

    def auth(self, kind: str = "key") -> dict[str, str]:
        if kind == "key":
            return {"X-API-Key": self.key, **self.extra_headers}
        if kind == "token":
            return {"Authorization": f"Bearer {self.token}", **self.extra_headers}
        if kind == "id":
            return {"Authorization": f"Bearer {self.id_token}", **self.extra_headers}
        raise ValueError(kind)

    def request(self, method: str, path: str, body: Any = None, *, kind: str = "key",
                headers: dict | None = None, **kw) -> Response:
        return self.server.request(method, path, body, headers={**self.auth(kind), **(headers or {})},
                                   **kw)

    def get(self, path: str, **kw) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> Response:
        return self.request("POST", path, body, **kw)

    def delete(self, path: str, **kw) -> Response:
        return self.request("DELETE", path, **kw)


def create_user(server: Server, email: str | None = None, password: str = "correct horse") -> Tenant:
    email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
    done = server.cli("users", "create", "--email", email, "--password", password)
    assert done.returncode == 0, done.stderr
    return Tenant(server=server, email=email, password=password)


def sign_in(tenant: Tenant) -> Tenant:
    """Password login (identity token), exchange for a workspace token, and a fresh API key."""
    r = tenant.server.post("/login", {"email": tenant.email, "password": tenant.password})
    assert r.status == 200, r.body
    body = r.json()
    tenant.id_token, tenant.user_id, tenant.workspace_id = (body["token"], body["user_id"],
                                                            body["workspace_id"])
    r = tenant.server.post("/api/auth/token", {},
                           headers={"Authorization": f"Bearer {tenant.id_token}"})
    assert r.status == 200, r.body
    tenant.token = r.json()["token"]
    r = tenant.server.post("/api/workspace/api-keys", {"name": "tests"},
                           headers={"Authorization": f"Bearer {tenant.token}"})
    assert r.status == 201, r.body
    tenant.key = r.json()["key"]
    return tenant


def new_tenant(server: Server, email: str | None = None) -> Tenant:
    return sign_in(create_user(server, email))
