"""Test users of a `--auth required` server: created through the CLI, signed in over HTTP."""

from __future__ import annotations

import asyncio
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


def create_user(server: Server, email: str | None = None, password: str = "correct horse",
                *, via_cli: bool = False) -> Tenant:
    """A user in the server's database: through `opencomfy users create`, or (faster, the
    same code) through the identity module on the server's database."""
    email = email or f"u{uuid.uuid4().hex[:10]}@example.com"
    if via_cli:
        done = server.cli("users", "create", "--email", email, "--password", password)
        assert done.returncode == 0, done.stderr
    else:
        asyncio.run(_create_in_db(server, email, password))
    return Tenant(server=server, email=email, password=password)


def database_url(server: Server) -> str:
    return server.database_url or f"sqlite+aiosqlite:///{server.base_dir.resolve() / 'opencomfy.db'}"


async def _create_in_db(server: Server, email: str, password: str) -> None:
    from opencomfy.db.database import Database
    from opencomfy.identity import users

    db = await Database.open(database_url(server), migrate=False)
    try:
        await users.create_user(db=db, email=email, password=password)
    finally:
        await db.close()


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


def assert_conforms(method: str, path: str, response: Response) -> None:
    """The status is one the spec lists for the operation, and a JSON body fits its schema."""
    from tests.conformance.spec import listed_statuses, response_validator

    assert response.status in listed_statuses(method, path), (method, path, response.status)
    validator = response_validator(method, path, response.status)
    if validator is not None:
        errors = sorted(validator.iter_errors(response.json()), key=str)
        assert not errors, (method, path, [e.message for e in errors])
