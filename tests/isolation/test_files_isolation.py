"""Input and output files between workspaces: /api/view and /api/upload/* answer B with 404
for A's files, and B's upload of the same name lands in B's own folder; local mode is not
restricted (tests/isolation/test_files_workspace_roots.py covers every other path)."""

from __future__ import annotations

import io
import random
import time
import urllib.parse
import uuid

from PIL import Image

from tests.harness import multipart
from tests.identity.tenants import Tenant, new_tenant
from tests.server.wsutil import image_graph


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buf, format="PNG")
    return buf.getvalue()


def _upload(t: Tenant, name: str, data: bytes, **fields: str):
    body, ctype = multipart(fields, {"image": (name, data)})
    return t.request("POST", "/api/upload/image", data=body, headers={"Content-Type": ctype})


def test_b_cannot_view_or_overwrite_a_upload(auth_server):
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    name = f"private_{uuid.uuid4().hex[:8]}.png"
    mine = _png((200, 10, 10))
    r = _upload(a, name, mine)
    assert r.status == 200 and r.json()["name"] == name
    assert a.get(f"/api/view?filename={name}&type=input").body == mine
    assert b.get(f"/api/view?filename={name}&type=input").status == 404
    assert b.get(f"/api/view?filename={name}&type=input&channel=rgb").status == 404
    assert b.get(f"/api/view?filename={name}%20%5Binput%5D").status == 404
    # B's "overwrite" of A's name writes B's own file (its own folder); A's bytes stay.
    r = _upload(b, name, _png((1, 2, 3)), overwrite="true")
    assert r.status == 200 and r.json()["name"] == name
    assert a.get(f"/api/view?filename={name}&type=input").body == mine
    assert b.get(f"/api/view?filename={urllib.parse.quote(name)}&type=input").body == _png((1, 2, 3))
    # A may overwrite its own file.
    r = _upload(a, name, _png((9, 9, 9)), overwrite="true")
    assert r.status == 200 and r.json()["name"] == name
    # A mask over A's image, by B: the original is not found.
    other = f"private_{uuid.uuid4().hex[:8]}.png"
    assert _upload(a, other, mine).status == 200
    body, ctype = multipart({"original_ref": f'{{"filename": "{other}", "type": "input"}}'},
                            {"image": ("mask.png", _png((0, 0, 0)))})
    r = b.request("POST", "/api/upload/mask", data=body, headers={"Content-Type": ctype})
    assert r.status == 400


def test_b_gets_404_on_a_job_output(auth_server):
    a, b = new_tenant(auth_server), new_tenant(auth_server)
    prefix = f"isoout_{uuid.uuid4().hex[:6]}"
    r = a.post("/api/prompt", {"prompt": image_graph(random.randrange(1 << 24), prefix=prefix)})
    prompt_id = r.json()["prompt_id"]
    deadline = time.monotonic() + 30
    while a.get(f"/api/jobs/{prompt_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (image,) = a.get(f"/api/history/{prompt_id}").json()[prompt_id]["outputs"]["3"]["images"]
    query = f"/api/view?filename={image['filename']}&subfolder={image['subfolder']}&type=output"
    assert a.get(query).status == 200
    assert b.get(query).status == 404
    assert b.get(query + "&res=64").status == 404
    assert auth_server.get(query).status == 401


def _load_image_choices(srv) -> list:
    return srv.get("/api/object_info/LoadImage").json()["LoadImage"]["input"]["required"]["image"][0]


def test_local_mode_serves_every_file(make_server):
    """--auth none keeps ComfyUI's plain layout: input/, output/, temp/ with no sub-folders."""
    srv = make_server()
    body, ctype = multipart({}, {"image": ("open.png", _png((5, 5, 5)))})
    r = srv.request("POST", "/api/upload/image", data=body, headers={"Content-Type": ctype})
    assert r.status == 200
    assert srv.get("/api/view?filename=open.png&type=input").status == 200
    assert (srv.base_dir / "input" / "open.png").is_file()
    assert "open.png" in srv.get("/internal/files/input").json()
    deadline = time.monotonic() + 10  # the catalogue looks at folders at most once a second
    while "open.png" not in _load_image_choices(srv):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    graph = image_graph(7, prefix="plain")
    graph["1"] = {"class_type": "LoadImage", "inputs": {"image": "open.png"}}
    r = srv.post("/api/prompt", {"prompt": graph})
    assert r.status == 200, r.body
    prompt_id = r.json()["prompt_id"]
    deadline = time.monotonic() + 30
    while srv.get(f"/api/jobs/{prompt_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (srv.base_dir / "output" / "plain_00001_.png").is_file()
    assert not [p.name for p in (srv.base_dir / "input").iterdir() if p.is_dir()]
    assert not [p.name for p in (srv.base_dir / "output").iterdir() if p.is_dir()]
