"""Background asset work over HTTP: downloads, exports, zip import, seed, prune, tasks."""

from __future__ import annotations

import io
import urllib.parse
import urllib.request
import uuid
import zipfile

import blake3

from tests.assets.factories import (SOURCE_FILES, safetensors_bytes, send_json, unique_bytes, upload,
                                    wait_task, zip_bytes)


def _download(srv, url: str, **extra):
    return send_json(srv, "POST", "/api/assets/download", {"source_url": url, **extra})


def test_download_with_progress_then_dedup(asset_server, source):
    url = f"{source}/slow/big.safetensors?run={uuid.uuid4()}"
    r = _download(asset_server, url, tags=["models", "checkpoints"], user_metadata={"from": "test"})
    assert r.status == 202, r.body
    task_id = r.json()["task_id"]
    assert r.json()["status"] in ("created", "running")
    seen_partial = False
    task = None
    while True:
        task = asset_server.get(f"/api/tasks/{task_id}").json()
        if task["status"] == "running" and 0 < task["progress"] < 1:
            seen_partial = True
        if task["status"] in ("completed", "failed"):
            break
    assert seen_partial, ("progress was never reported between 0 and 1", task)
    assert task["status"] == "completed", task
    assert task["progress"] == 1.0 and task["task_name"] == "asset_download"
    asset = task["result"]["asset"]
    data = SOURCE_FILES["big.safetensors"]
    assert asset["asset_hash"] == "blake3:" + blake3.blake3(data).hexdigest()
    assert asset["name"] == "big.safetensors" and asset["tags"] == ["checkpoints", "models"]
    assert asset["metadata"] == {"source_url": url} and asset["user_metadata"] == {"from": "test"}
    assert asset_server.get(f"/api/assets/{asset['id']}/content").body == data
    # the same URL again: already stored, answered at once
    again = _download(asset_server, url)
    assert again.status == 200 and again.json()["id"] == asset["id"]
    assert again.json()["created_new"] is False


def test_download_refusals(asset_server, source):
    own = asset_server.url + "/api/assets"
    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "not a url", "http://example.com/x",
                own, f"http://localhost:{asset_server.port}/api/view", None):
        r = _download(asset_server, url)
        assert r.status == 400, (url, r.body)
        assert r.json()["code"] == "invalid_request"
    assert send_json(asset_server, "POST", "/api/assets/download", [1]).status == 400
    # a redirect back to the server itself fails the task, with its reason
    r = _download(asset_server, f"{source}/to/{own}?{uuid.uuid4()}")
    task = wait_task(asset_server, r.json()["task_id"])
    assert task["status"] == "failed" and "this server" in task["error_message"]
    r = _download(asset_server, f"{source}/missing.safetensors")
    task = wait_task(asset_server, r.json()["task_id"])
    assert task["status"] == "failed" and "404" in task["error_message"]


def test_download_of_a_pickle_model_fails_the_task(asset_server, source):
    before = asset_server.get("/api/assets?limit=1").json()["total"]
    for name in ("model.ckpt", "evil.safetensors"):
        r = _download(asset_server, f"{source}/{name}?{uuid.uuid4()}", tags=["models"])
        task = wait_task(asset_server, r.json()["task_id"])
        assert task["status"] == "failed"
        assert task["error_message"].startswith("FORMAT_NOT_ALLOWED")
        assert "asset" not in (task.get("result") or {})
    assert asset_server.get("/api/assets?limit=1").json()["total"] == before


def test_remote_metadata(asset_server, source):
    r = asset_server.get("/api/assets/remote-metadata?url=" + urllib.parse.quote(f"{source}/model.safetensors"))
    assert r.status == 200, r.body
    meta = r.json()
    assert meta["content_length"] == len(SOURCE_FILES["model.safetensors"])
    assert meta["filename"] == "model.safetensors" and meta["tags"] == ["models"]
    assert meta["validation"]["is_valid"] is True
    ckpt = asset_server.get("/api/assets/remote-metadata?url=" + urllib.parse.quote(f"{source}/model.ckpt")).json()
    assert ckpt["validation"]["is_valid"] is False
    assert ckpt["validation"]["errors"][0]["code"] == "FORMAT_NOT_ALLOWED"
    assert asset_server.get("/api/assets/remote-metadata").status == 400
    assert asset_server.get("/api/assets/remote-metadata?url=ftp://x/y").status == 400
    missing = asset_server.get("/api/assets/remote-metadata?url=" + urllib.parse.quote(f"{source}/nope.bin"))
    assert missing.status == 422


def test_export_zip(asset_server):
    a = upload(asset_server, b"first" + unique_bytes(), name="one.png").json()
    b = upload(asset_server, b"second" + unique_bytes(), name="two.txt").json()
    r = send_json(asset_server, "POST", "/api/assets/export",
                  {"asset_ids": [a["id"], b["id"], str(uuid.uuid4())], "naming_strategy": "asset_id"})
    assert r.status == 202, r.body
    task = wait_task(asset_server, r.json()["task_id"])
    assert task["status"] == "completed", task
    name = task["result"]["export_name"]
    assert task["result"]["asset_count"] == 2
    link = asset_server.get(f"/api/assets/exports/{name}")
    assert link.status == 200 and link.json()["expires_at"]
    url = link.json()["url"]
    if url.startswith("/"):
        url = asset_server.url + url
    if asset_server.store == "s3":
        assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url) as resp:
        archive = zipfile.ZipFile(io.BytesIO(resp.read()))
    assert sorted(archive.namelist()) == sorted([f"{a['id']}.png", f"{b['id']}.txt"])
    assert archive.read(f"{a['id']}.png").startswith(b"first")
    # bad requests and unknown exports
    assert send_json(asset_server, "POST", "/api/assets/export", {}).status == 400
    assert send_json(asset_server, "POST", "/api/assets/export",
                     {"asset_ids": [a["id"]], "naming_strategy": "random"}).status == 400
    assert asset_server.get("/api/assets/exports/../x.zip").status in (400, 404)
    assert asset_server.get("/api/assets/exports/bad%20name.zip").status == 400
    assert asset_server.get(f"/api/assets/exports/export-{uuid.uuid4()}.zip").status == 404


def _import(srv, data: bytes, tags: str = ""):
    return srv.post("/api/assets/import" + (f"?tags={tags}" if tags else ""), data=data,
                    headers={"Content-Type": "application/zip"})


def test_import_zip(asset_server):
    tag = "imp" + uuid.uuid4().hex[:8]
    payload = {"a.png": b"A" + unique_bytes(), "sub/b.safetensors": safetensors_bytes(unique_bytes())}
    r = _import(asset_server, zip_bytes(payload, compression=zipfile.ZIP_DEFLATED), tags=tag)
    assert r.status == 200, r.body
    infos = r.json()["assets"]
    assert sorted(i["name"] for i in infos) == ["a.png", "b.safetensors"]
    assert all(i["in_library"] and not i["public"] for i in infos)
    listed = asset_server.get(f"/api/assets?include_tags={tag}").json()
    assert listed["total"] == 2
    a = next(i for i in infos if i["name"] == "a.png")
    assert asset_server.get(a["storage_url"]).body == payload["a.png"]


def test_import_refuses_unsafe_archives(asset_server):
    import struct

    before = asset_server.get("/api/assets?limit=1").json()["total"]
    cases = {
        "dotdot": zip_bytes({"ok.txt": b"fine", "../escape.txt": b"x"}),
        "absolute": zip_bytes({"/etc/cron.d/x": b"x"}),
        "windows": zip_bytes({"C:\\x.txt": b"x"}),
        "bomb": zip_bytes({"zeros.bin": b"\0" * (20 * 1024 * 1024)}, compression=zipfile.ZIP_DEFLATED),
        "not a zip": b"this is not a zip",
    }
    for label, data in cases.items():
        r = _import(asset_server, data)
        assert r.status in (400, 413), (label, r.status, r.body)
        assert r.json()["code"] in ("invalid_archive", "payload_too_large"), label
    # a zip that lies about an entry's size (declares 10 bytes, holds a megabyte)
    liar = bytearray(zip_bytes({"lie.bin": b"L" * (1 << 20)}))
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = liar.find(sig)
        offset = 22 if sig == b"PK\x03\x04" else 24
        liar[at + offset: at + offset + 4] = struct.pack("<I", 10)
    r = _import(asset_server, bytes(liar))
    assert r.status == 400 and r.json()["code"] == "invalid_archive"
    assert asset_server.get("/api/assets?limit=1").json()["total"] == before  # nothing half-written


def test_import_published_unknown(asset_server):
    r = send_json(asset_server, "POST", "/api/assets/import", {"published_asset_ids": [str(uuid.uuid4())]})
    assert r.status == 400 and r.json()["code"] == "CodeInvalidAssets"
    r = send_json(asset_server, "POST", "/api/assets/import", {"published_asset_ids": [], "share_id": "s"})
    assert r.status == 400
    assert send_json(asset_server, "POST", "/api/assets/import", {"published_asset_ids": "x"}).status == 400


def test_from_workflow(asset_server):
    img = upload(asset_server, unique_bytes("wf"), name=f"wf-{uuid.uuid4().hex[:6]}.png").json()
    model_name = f"m-{uuid.uuid4().hex[:6]}.safetensors"
    model = upload(asset_server, safetensors_bytes(unique_bytes()), name=model_name, tags="models,checkpoints").json()
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": f"{img['name']} [input]"}},
                "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": model_name}},
                "3": {"class_type": "KSampler", "inputs": {"seed": 5, "model": ["2", 0]}}}
    r = send_json(asset_server, "POST", "/api/assets/from-workflow", {"workflow_api_json": workflow})
    assert r.status == 200, r.body
    by_id = {a["id"]: a for a in r.json()["assets"]}
    assert by_id[img["id"]]["model"] is False and by_id[model["id"]]["model"] is True
    assert by_id[model["id"]]["storage_url"] == f"/api/assets/{model['id']}/content"
    assert send_json(asset_server, "POST", "/api/assets/from-workflow", {"workflow_api_json": 3}).status == 400
    assert send_json(asset_server, "POST", "/api/assets/from-workflow", {}).status == 400


def test_seed_and_prune(asset_server):
    base = asset_server.base_dir
    ckpt_dir = base / "models" / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    model = ckpt_dir / f"seed-{uuid.uuid4().hex[:6]}.safetensors"
    model.write_bytes(safetensors_bytes(unique_bytes()))
    (base / "input").mkdir(exist_ok=True)
    picture = base / "input" / f"seed-{uuid.uuid4().hex[:6]}.png"
    picture.write_bytes(unique_bytes("pic"))
    r = send_json(asset_server, "POST", "/api/assets/seed", {"roots": ["models", "input"]})
    assert r.status == 200 and r.json()["status"] in ("started", "already_running")
    task = wait_task(asset_server, r.json()["task_id"])
    assert task["status"] == "completed", task
    status = asset_server.get("/api/assets/seed/status").json()
    assert status["status"] == "completed" and status["added"] >= 2
    found = asset_server.get(f"/api/assets?name_contains={model.stem}").json()["assets"]
    assert len(found) == 1 and found[0]["tags"] == ["checkpoints", "models"]
    assert found[0]["name"] == f"checkpoints/{model.name}"
    assert asset_server.get(f"/api/assets/{found[0]['id']}/content").body == model.read_bytes()
    # a second scan registers nothing new
    r = send_json(asset_server, "POST", "/api/assets/seed", {"roots": ["models", "input"]})
    task = wait_task(asset_server, r.json()["task_id"])
    assert task["result"]["added"] == 0 and task["result"]["skipped"] >= 2
    assert send_json(asset_server, "POST", "/api/assets/seed", {"roots": ["etc"]}).status == 400
    assert asset_server.post("/api/assets/seed/cancel").json()["status"] in ("idle", "cancelling")
    # prune: the picture goes away on disk
    pic = asset_server.get(f"/api/assets?name_contains={picture.stem}").json()["assets"][0]
    picture.unlink()
    r = asset_server.post("/api/assets/prune")
    assert r.status == 200 and r.json()["marked"] >= 1
    assert "missing" in asset_server.get(f"/api/assets/{pic['id']}").json()["tags"]
    assert asset_server.post("/api/assets/prune").json()["marked"] == 0


def test_tasks_list_filters(asset_server, source):
    r = _download(asset_server, f"{source}/model.safetensors?{uuid.uuid4()}")
    task_id = r.json()["task_id"]
    wait_task(asset_server, task_id)
    listed = asset_server.get("/api/tasks?task_name=asset_download&status=completed,failed&limit=100").json()
    assert any(t["id"] == task_id for t in listed["tasks"])
    assert listed["pagination"]["limit"] == 100 and listed["pagination"]["total"] >= 1
    assert all(t["task_name"] == "asset_download" for t in listed["tasks"])
    times = [t["create_time"] for t in listed["tasks"]]
    assert times == sorted(times, reverse=True)
    asc = asset_server.get("/api/tasks?sort_order=asc&limit=100").json()["tasks"]
    assert [t["create_time"] for t in asc] == sorted(t["create_time"] for t in asc)
    assert asset_server.get("/api/tasks?created_after=2999-01-01T00:00:00Z").json()["tasks"] == []
    detail = asset_server.get(f"/api/tasks/{task_id}").json()
    assert detail["idempotency_key"].startswith("download:") and detail["payload"]["source_url"]
    for bad in ("status=done", "limit=0", "limit=101", "offset=-1", "created_after=yesterday",
                "sort_order=sideways", "limit=x"):
        r = asset_server.get(f"/api/tasks?{bad}")
        assert r.status == 422, bad
    assert asset_server.get(f"/api/tasks/{uuid.uuid4()}").status == 404
    assert asset_server.get("/api/tasks/not-a-uuid").status == 404


def test_seed_cancel(asset_server):
    folder = asset_server.base_dir / "output" / f"many-{uuid.uuid4().hex[:6]}"
    folder.mkdir(parents=True)
    for i in range(400):
        (folder / f"{i}.txt").write_bytes(f"{i}-{uuid.uuid4()}".encode())
    r = send_json(asset_server, "POST", "/api/assets/seed", {"roots": ["output"]})
    cancel = asset_server.post("/api/assets/seed/cancel").json()
    task = wait_task(asset_server, r.json()["task_id"])
    status = asset_server.get("/api/assets/seed/status").json()
    if cancel["status"] == "cancelling":
        assert task["status"] == "failed" and task["error_message"] == "cancelled"
        assert status["status"] == "cancelled" and status.get("scanned", 0) < 400
    else:  # the scan was already over
        assert task["status"] == "completed"
    # a later scan picks up where the cancelled one stopped
    r = send_json(asset_server, "POST", "/api/assets/seed", {"roots": ["output"]})
    assert wait_task(asset_server, r.json()["task_id"])["status"] == "completed"
    assert asset_server.get(f"/api/assets?name_contains={folder.name}/&limit=1").json()["total"] == 400
