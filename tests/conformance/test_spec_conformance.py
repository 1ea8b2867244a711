"""Every operation of the local-server issue answers with a status the spec lists for it,
and its JSON body validates against the spec's schema for that status.

The list of covered operations is explicit: a route missing from the server shows up here as
a 404/405 that the spec does not list.
"""

from __future__ import annotations

import io
import json
import urllib.parse
import uuid

import pytest

from tests.conformance.spec import listed_statuses, load_spec, response_validator
from tests.harness import Server, multipart

# (method, spec path) of every operation issue 3 covers.
COVERED = [
    ("GET", "/api/prompt"),
    ("POST", "/api/prompt"),
    ("GET", "/api/queue"),
    ("POST", "/api/queue"),
    ("POST", "/api/interrupt"),
    ("POST", "/api/free"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/{job_id}"),
    ("POST", "/api/jobs/{job_id}/cancel"),
    ("GET", "/api/job/{job_id}/status"),
    ("POST", "/api/history"),
    ("GET", "/api/history_v2"),
    ("GET", "/api/history_v2/{prompt_id}"),
    ("GET", "/api/view"),
    ("POST", "/api/upload/image"),
    ("POST", "/api/upload/mask"),
    ("GET", "/api/embeddings"),
    ("GET", "/api/experiment/models"),
    ("GET", "/api/experiment/models/{folder}"),
    ("GET", "/api/files/mask-layers"),
    ("GET", "/api/vhs/queryvideo"),
    ("GET", "/api/object_info"),
    ("GET", "/api/system_stats"),
    ("GET", "/api/features"),
    ("GET", "/api/extensions"),
    ("GET", "/api/i18n"),
    ("GET", "/api/node_replacements"),
    ("GET", "/api/global_subgraphs"),
    ("GET", "/api/global_subgraphs/{id}"),
    ("GET", "/api/workflow_templates"),
    ("GET", "/api/users"),
    ("GET", "/api/settings"),
    ("POST", "/api/settings"),
    ("GET", "/api/settings/{id}"),
    ("POST", "/api/settings/{id}"),
    ("GET", "/api/userdata"),
    ("GET", "/api/userdata/{file}"),
    ("POST", "/api/userdata/{file}"),
    ("DELETE", "/api/userdata/{file}"),
    ("POST", "/api/userdata/{file}/move/{dest}"),
    ("GET", "/internal/folder_paths"),
    ("GET", "/internal/logs"),
    ("GET", "/internal/logs/raw"),
    ("PATCH", "/internal/logs/subscribe"),
    ("GET", "/health"),
]

RUNNING_GRAPH = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0xFF8000}},
    "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "conformance"}},
}


def _png(size=(8, 8), alpha=False) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", size, (10, 20, 30, 128) if alpha else (10, 20, 30)).save(buf, "PNG")
    return buf.getvalue()


def _video(path) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32, 3), i * 20, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def state(server: Server) -> dict:
    """A server with one finished job, one uploaded image and a video in its input folder."""
    r = server.post("/api/prompt", {"prompt": RUNNING_GRAPH, "client_id": "conformance"})
    assert r.status == 200, r.body
    prompt_id = r.json()["prompt_id"]
    entry = server.wait_for_job(prompt_id)
    image = entry["outputs"]["3"]["images"][0]
    body, ctype = multipart({"type": "input", "overwrite": "true"}, {"image": ("conf.png", _png(alpha=True))})
    r = server.post("/api/upload/image", data=body, headers={"Content-Type": ctype})
    assert r.status == 200, r.body
    _video(server.base_dir / "input" / "clip.mp4")
    r = server.post("/api/userdata/conformance%2Fa.json", data=b'{"a": 1}')
    assert r.status == 200, r.body
    return {"prompt_id": prompt_id, "image": image, "uploaded": r.json()}


def _request(server: Server, state: dict, method: str, path: str):
    """A valid request for one operation. Where an option switches the response shape and the
    spec describes only one of them (userdata's full_info), the request asks for that one."""
    pid = state["prompt_id"]
    img = state["image"]
    q = urllib.parse.urlencode
    if path == "/api/prompt" and method == "POST":
        return server.post(path, {"prompt": RUNNING_GRAPH, "client_id": "conformance"})
    if path == "/api/queue" and method == "POST":
        return server.post(path, {"delete": [str(uuid.uuid4())]})
    if path == "/api/interrupt":
        return server.post(path, {"prompt_id": str(uuid.uuid4())})
    if path == "/api/free":
        return server.post(path, {"unload_models": False, "free_memory": False})
    if path == "/api/history" and method == "POST":
        return server.post(path, {"delete": [str(uuid.uuid4())]})
    if path == "/api/jobs":
        return server.get(path + "?" + q({"status": "completed,failed", "limit": 10, "offset": 0}))
    if "{job_id}" in path or "{prompt_id}" in path:
        concrete = path.replace("{job_id}", pid).replace("{prompt_id}", pid)
        return server.request(method, concrete, {} if method == "POST" else None)
    if path == "/api/view":
        return server.get(path + "?" + q({"filename": img["filename"], "subfolder": img["subfolder"],
                                         "type": img["type"]}))
    if path in ("/api/upload/image", "/api/upload/mask"):
        fields = {"type": "input", "subfolder": "conf"}
        if path.endswith("mask"):
            fields["original_ref"] = json.dumps({"filename": "conf.png", "subfolder": "", "type": "input"})
        body, ctype = multipart(fields, {"image": ("m.png", _png(alpha=True))})
        return server.post(path, data=body, headers={"Content-Type": ctype})
    if path == "/api/experiment/models/{folder}":
        return server.get("/api/experiment/models/checkpoints")
    if path == "/api/files/mask-layers":
        return server.get(path + "?" + q({"filename": "conf.png"}))
    if path == "/api/vhs/queryvideo":
        return server.get(path + "?" + q({"filename": "clip.mp4", "type": "input"}))
    if path == "/api/global_subgraphs/{id}":
        return server.get("/api/global_subgraphs/does-not-exist")
    if path == "/api/settings" and method == "POST":
        return server.post(path, {"Comfy.Conformance": 1})
    if path == "/api/settings/{id}":
        concrete = "/api/settings/Comfy.Conformance"
        return server.post(concrete, 2) if method == "POST" else server.get(concrete)
    if path == "/api/userdata":
        return server.get(path + "?" + q({"dir": "conformance", "recurse": "true", "full_info": "true"}))
    if path == "/api/userdata/{file}":
        concrete = "/api/userdata/conformance%2Fb.json"
        if method == "POST":
            return server.post(concrete + "?full_info=true", data=b'{"b": 2}')
        if method == "DELETE":
            server.post("/api/userdata/conformance%2Fgone.json", data=b"{}")
            return server.request("DELETE", "/api/userdata/conformance%2Fgone.json")
        return server.get("/api/userdata/conformance%2Fa.json")
    if path == "/api/userdata/{file}/move/{dest}":
        server.post("/api/userdata/conformance%2Fc.json", data=b"{}")
        return server.post("/api/userdata/conformance%2Fc.json/move/conformance%2Fd.json?full_info=true")
    if path == "/internal/logs/subscribe":
        return server.request("PATCH", path, {"clientId": "conformance", "enabled": True})
    return server.request(method, path)


def test_covered_operations_exist_in_the_spec():
    paths = load_spec()["paths"]
    for method, path in COVERED:
        assert method.lower() in paths[path], (method, path)


@pytest.mark.parametrize(("method", "path"), COVERED, ids=[f"{m} {p}" for m, p in COVERED])
def test_operation_conforms(server: Server, state: dict, method: str, path: str):
    r = _request(server, state, method, path)
    allowed = listed_statuses(method, path)
    assert r.status not in (404, 405, 501) or r.status in allowed, f"{method} {path}: route missing ({r.status})"
    assert r.status in allowed, f"{method} {path} answered {r.status}, spec lists {sorted(allowed)}: {r.body[:300]!r}"
    validator = response_validator(method, path, r.status)
    if validator is not None and r.headers.get("Content-Type", "").startswith("application/json"):
        errors = sorted(validator.iter_errors(r.json()), key=lambda e: list(e.path))
        assert not errors, f"{method} {path}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


def test_bare_paths_alias_api_paths(server: Server, state: dict):
    """ComfyUI answers every API route at the bare path too (not /internal)."""
    for path in ("/prompt", "/queue", "/object_info", "/system_stats", "/features", "/embeddings",
                 f"/history_v2/{state['prompt_id']}", "/jobs", "/users", "/settings"):
        assert server.get(path).status == 200, path
