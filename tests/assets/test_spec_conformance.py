"""Every assets, tags and tasks operation answers with a status the spec lists for it, and its
JSON body validates against the spec's schema for that status (valid and invalid requests)."""

from __future__ import annotations

import json
import urllib.parse
import uuid

from tests.assets.factories import SOURCE_FILES, safetensors_bytes, unique_bytes, upload, wait_task, zip_bytes
from tests.conformance.spec import listed_statuses, response_validator


def _check(method: str, path: str, response) -> None:
    assert response.status in listed_statuses(method, path), (method, path, response.status, response.body)
    validator = response_validator(method, path, response.status)
    if validator is not None and response.body:
        errors = list(validator.iter_errors(json.loads(response.body)))
        assert not errors, (method, path, response.status, [e.message for e in errors][:5])


def test_every_operation_conforms(asset_server, source):
    srv = asset_server
    a = upload(srv, unique_bytes("conf"), name="conf.png", tags="input,conf")
    _check("POST", "/api/assets", a)
    asset = a.json()
    aid, digest = asset["id"], asset["asset_hash"]
    _check("POST", "/api/assets", upload(srv, unique_bytes("conf"), name="conf.png", tags="input"))
    _check("POST", "/api/assets", upload(srv, b"\0" * (3 << 20), name="big.bin"))
    _check("POST", "/api/assets", upload(srv, b"x", name="x.bin", preview_id="bad"))
    _check("POST", "/api/assets", upload(srv, SOURCE_FILES["model.ckpt"], name="m.ckpt", tags="models"))
    _check("POST", "/api/assets", srv.post("/api/assets", data=b"x", headers={"Content-Type": "text/plain"}))
    model_url = f"{source}/model.safetensors?conf={uuid.uuid4()}"
    _check("POST", "/api/assets", srv.post("/api/assets", {"url": model_url, "name": "m.safetensors",
                                                           "tags": ["models"]}))
    _check("POST", "/api/assets", srv.post("/api/assets", {"url": f"{source}/gone.bin", "name": "g"}))
    _check("POST", "/api/assets", srv.post("/api/assets", {"url": "ftp://x/y", "name": "g"}))

    for query in ("", "?include_tags=conf&sort=name&order=asc&limit=1", "?limit=0", "?sort=bogus"):
        _check("GET", "/api/assets", srv.get("/api/assets" + query))
    page = srv.get("/api/assets?limit=1").json()
    if page.get("next_cursor"):
        _check("GET", "/api/assets", srv.get(f"/api/assets?limit=1&after={page['next_cursor']}"))
    for target in (aid, str(uuid.uuid4())):
        _check("GET", "/api/assets/{id}", srv.get(f"/api/assets/{target}"))
    for body in ({"name": "renamed.png", "user_metadata": {"k": 1}}, {}, {"name": 5}):
        _check("PUT", "/api/assets/{id}", srv.request("PUT", f"/api/assets/{aid}", body))
    _check("PUT", "/api/assets/{id}", srv.request("PUT", f"/api/assets/{uuid.uuid4()}", {"name": "x"}))
    for method in ("POST", "DELETE"):
        for body in ({"tags": ["blue"]}, {"tags": []}, {"tags": ["input"]}):
            _check(method, "/api/assets/{id}/tags", srv.request(method, f"/api/assets/{aid}/tags", body))
        _check(method, "/api/assets/{id}/tags",
               srv.request(method, f"/api/assets/{uuid.uuid4()}/tags", {"tags": ["x"]}))
    for body in ({"add": ["red"], "remove": ["blue"]}, {}, {"add": ["output"]}):
        _check("PUT", "/api/assets/{id}/tags", srv.request("PUT", f"/api/assets/{aid}/tags", body))

    for d in (digest, "blake3:" + "0" * 64, "md5:1"):
        _check("HEAD", "/api/assets/hash/{hash}", srv.request("HEAD", f"/api/assets/hash/{d}"))
    for body in ({"hash": digest, "tags": ["output"], "name": "ref.png"},
                 {"hash": "blake3:" + "0" * 64, "tags": ["input"]}, {"hash": "nope", "tags": ["x"]}):
        _check("POST", "/api/assets/from-hash", srv.post("/api/assets/from-hash", body))

    for query in ("", "?prefix=con&order=name_asc&include_zero=true", "?limit=5000"):
        _check("GET", "/api/tags", srv.get("/api/tags" + query))
    for query in ("", "?include_tags=conf", "?limit=0"):
        _check("GET", "/api/assets/tags/refine", srv.get("/api/assets/tags/refine" + query))

    dl = srv.post("/api/assets/download", {"source_url": f"{source}/model.safetensors?d={uuid.uuid4()}"})
    _check("POST", "/api/assets/download", dl)
    task = wait_task(srv, dl.json()["task_id"])
    _check("POST", "/api/assets/download", srv.post("/api/assets/download", {
        "source_url": task["payload"]["source_url"]}))
    _check("POST", "/api/assets/download", srv.post("/api/assets/download", {"source_url": "file:///x"}))
    failed = srv.post("/api/assets/download", {"source_url": f"{source}/gone.bin"})
    failed_task = wait_task(srv, failed.json()["task_id"])

    export = srv.post("/api/assets/export", {"asset_ids": [aid]})
    _check("POST", "/api/assets/export", export)
    _check("POST", "/api/assets/export", srv.post("/api/assets/export", {}))
    done = wait_task(srv, export.json()["task_id"])
    name = done["result"]["export_name"]
    for export_name in (name, "bad name.zip".replace(" ", "%20"), f"export-{uuid.uuid4()}.zip"):
        _check("GET", "/api/assets/exports/{exportName}", srv.get(f"/api/assets/exports/{export_name}"))

    for body in ({"workflow_api_json": {"1": {"class_type": "LoadImage", "inputs": {"image": "conf.png"}}}},
                 {"workflow_api_json": 1}):
        _check("POST", "/api/assets/from-workflow", srv.post("/api/assets/from-workflow", body))
    for body in ({"published_asset_ids": []}, {"published_asset_ids": [str(uuid.uuid4())]}):
        _check("POST", "/api/assets/import", srv.post("/api/assets/import", body))
    for data in (zip_bytes({"in-zip.safetensors": safetensors_bytes()}), zip_bytes({"../x": b"x"})):
        _check("POST", "/api/assets/import", srv.post("/api/assets/import", data=data,
                                                       headers={"Content-Type": "application/zip"}))
    for url in (f"{source}/model.safetensors", f"{source}/gone.bin", "ftp://x"):
        _check("GET", "/api/assets/remote-metadata",
               srv.get("/api/assets/remote-metadata?" + urllib.parse.urlencode({"url": url})))

    seed = srv.post("/api/assets/seed", {"roots": ["input"]})
    _check("POST", "/api/assets/seed", seed)
    _check("GET", "/api/assets/seed/status", srv.get("/api/assets/seed/status"))
    _check("POST", "/api/assets/seed/cancel", srv.post("/api/assets/seed/cancel"))
    wait_task(srv, seed.json()["task_id"])
    _check("POST", "/api/assets/prune", srv.post("/api/assets/prune"))

    for query in ("", "?status=completed,failed&sort_order=asc&limit=100", "?status=nope", "?limit=1000"):
        _check("GET", "/api/tasks", srv.get("/api/tasks" + query))
    for task_id in (task["id"], failed_task["id"], done["id"], str(uuid.uuid4())):
        _check("GET", "/api/tasks/{task_id}", srv.get(f"/api/tasks/{task_id}"))

    _check("DELETE", "/api/assets/{id}", srv.request("DELETE", f"/api/assets/{aid}"))
    _check("DELETE", "/api/assets/{id}", srv.request("DELETE", f"/api/assets/{aid}"))
