"""Two signed-in tenants on an `--auth required` server: B gets 404 on every asset and task
id of A, and never sees A's tags, hashes or histogram."""

from __future__ import annotations

import uuid

from tests.harness import multipart
from tests.identity.fixtures import auth_server  # noqa: F401  (fixture)
from tests.identity.tenants import new_tenant


def _upload(tenant, data: bytes, name: str, tags: str):
    body, ctype = multipart({"tags": tags, "name": name}, {"file": (name, data)})
    return tenant.request("POST", "/api/assets", data=body, headers={"Content-Type": ctype})


def test_another_workspace_gets_404_on_every_asset_route(auth_server):  # noqa: F811
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    assert a.workspace_id != b.workspace_id
    secret_tag = "secret" + uuid.uuid4().hex[:6]
    r = _upload(a, b"A's private bytes " + uuid.uuid4().bytes, "private.png", f"input,{secret_tag}")
    assert r.status == 201, r.body
    asset = r.json()
    aid, digest = asset["id"], asset["asset_hash"]
    assert a.get(f"/api/assets/{aid}").status == 200
    for method, path, body in (
        ("GET", f"/api/assets/{aid}", None),
        ("GET", f"/api/assets/{aid}/content", None),
        ("PUT", f"/api/assets/{aid}", {"name": "stolen"}),
        ("DELETE", f"/api/assets/{aid}", None),
        ("POST", f"/api/assets/{aid}/tags", {"tags": ["x"]}),
        ("DELETE", f"/api/assets/{aid}/tags", {"tags": [secret_tag]}),
        ("PUT", f"/api/assets/{aid}/tags", {"add": ["x"]}),
        ("POST", "/api/assets/from-hash", {"hash": digest, "tags": ["input"]}),
    ):
        r = b.request(method, path, body)
        assert r.status == 404, (method, path, r.status, r.body)
    assert b.request("HEAD", f"/api/assets/hash/{digest}").status == 404
    assert a.request("HEAD", f"/api/assets/hash/{digest}").status == 200
    assert b.get("/api/assets").json()["total"] == 0
    assert b.get(f"/api/assets/tags/refine?include_tags={secret_tag}").json()["tag_counts"] == {}
    assert b.get("/api/assets/tags/refine").json()["tag_counts"] == {}
    assert all(t["name"] != secret_tag for t in b.get("/api/tags?limit=1000").json()["tags"])
    # export: a task of A is invisible to B
    r = a.post("/api/assets/export", {"asset_ids": [aid]})
    assert r.status == 202, r.body
    task_id = r.json()["task_id"]
    assert b.get(f"/api/tasks/{task_id}").status == 404
    assert all(t["id"] != task_id for t in b.get("/api/tasks").json()["tasks"])
    assert a.get(f"/api/tasks/{task_id}").status == 200
    # A's record is untouched
    after = a.get(f"/api/assets/{aid}").json()
    assert after["name"] == "private.png" and secret_tag in after["tags"]
    # without credentials: 401, not a listing
    assert auth_server.get("/api/assets").status == 401
