"""Files the server writes become assets: /api/upload/image uploads and jobs' saved outputs."""

from __future__ import annotations

import io
import time
import uuid

from PIL import Image

from tests.harness import multipart


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), colour).save(buf, format="PNG")
    return buf.getvalue()


def _eventually(fn, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError


def _status_without_redirect(srv, path: str) -> tuple[int, str | None]:
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(srv.url + path) as resp:
            return resp.status, None
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location")


def test_upload_route_records_an_input_asset(asset_server):
    name = f"up-{uuid.uuid4().hex[:8]}.png"
    data = _png((1, 2, 3, 255))
    body, ctype = multipart({"subfolder": "pics"}, {"image": (name, data)})
    r = asset_server.post("/api/upload/image", data=body, headers={"Content-Type": ctype})
    assert r.status == 200 and r.json()["name"] == name
    found = asset_server.get(f"/api/assets?name_contains={name}").json()["assets"]
    assert len(found) == 1
    assert found[0]["name"] == f"pics/{name}" and found[0]["tags"] == ["input"]
    assert found[0]["mime_type"] == "image/png" and found[0]["size"] == len(data)
    assert asset_server.get(f"/api/assets/{found[0]['id']}/content").body == data
    # uploading the same bytes again reuses the file and the record
    r = asset_server.post("/api/upload/image", data=body, headers={"Content-Type": ctype})
    assert r.json()["name"] == name
    assert asset_server.get(f"/api/assets?name_contains={name}").json()["total"] == 1


def test_saved_outputs_are_assets_with_their_job(asset_server):
    prefix = f"asset-{uuid.uuid4().hex[:6]}"
    prompt = {"1": {"class_type": "EmptyImage",
                    "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 255}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}
    r = asset_server.post("/api/prompt", {"prompt": prompt})
    assert r.status == 200, r.body
    job_id = r.json()["prompt_id"]
    entry = asset_server.wait_for_job(job_id)
    assert entry["status"]["status_str"] == "success", entry
    images = entry["outputs"]["2"]["images"]
    assert len(images) == 2
    found = _eventually(lambda: (lambda a: a if len(a) == 2 else None)(
        asset_server.get(f"/api/assets?name_contains={prefix}&include_tags=output").json()["assets"]))
    assert {a["job_id"] for a in found} == {job_id}
    assert sorted(a["name"] for a in found) == sorted(i["filename"] for i in images)
    view = asset_server.get(f"/api/view?filename={images[0]['filename']}&type=output")
    content = asset_server.get(f"/api/assets/{next(a['id'] for a in found if a['name'] == images[0]['filename'])}/content")
    assert content.body == view.body
    # /api/view: the file itself locally, a redirect to a signed URL on an S3 store
    status, location = _status_without_redirect(
        asset_server, f"/api/view?filename={images[0]['filename']}&type=output")
    if asset_server.store == "s3":
        assert status == 302 and "X-Amz-Signature=" in location
    else:
        assert status == 200
    # an export by job id takes exactly these files
    r = asset_server.post("/api/assets/export", {"job_ids": [job_id], "naming_strategy": "group_by_job_id"})
    from tests.assets.factories import wait_task

    task = wait_task(asset_server, r.json()["task_id"])
    assert task["status"] == "completed" and task["result"]["asset_count"] == 2


def test_an_overwritten_upload_moves_its_record_to_the_new_content(asset_server):
    name = f"over-{uuid.uuid4().hex[:8]}.png"
    first, second = _png((9, 9, 9, 255)), _png((200, 100, 50, 255))
    for data in (first, second):
        body, ctype = multipart({"overwrite": "true"}, {"image": (name, data)})
        assert asset_server.post("/api/upload/image", data=body, headers={"Content-Type": ctype}).status == 200
        time.sleep(0.01)  # a distinct mtime
    found = asset_server.get(f"/api/assets?name_contains={name}").json()["assets"]
    assert len(found) == 1 and found[0]["size"] == len(second)
    assert asset_server.get(f"/api/assets/{found[0]['id']}/content").body == second
    import blake3

    old = "blake3:" + blake3.blake3(first).hexdigest()
    assert asset_server.request("HEAD", f"/api/assets/hash/{old}").status == 404
