"""POST /upload/image and /upload/mask over HTTP."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.files.factories import decode, gradient_alpha_png, multipart, png_bytes
from tests.files.routes_server import files_server, make_files_server  # noqa: F401  (fixtures)


def upload(srv, data: bytes, filename: str = "pic.png", path: str = "/api/upload/image", **fields):
    body, hdrs = multipart(fields, {"image": (filename, data, "image/png")})
    return srv.post(path, data=body, headers=hdrs)


def test_upload_and_collisions(files_server):  # noqa: F811
    srv = files_server
    one, two = png_bytes(3, 3, color=(1, 1, 1, 255)), png_bytes(3, 3, color=(2, 2, 2, 255))
    r = upload(srv, one, "up.png")
    assert r.status == 200 and r.json() == {"name": "up.png", "subfolder": "", "type": "input"}
    assert (srv.base_dir / "input" / "up.png").read_bytes() == one
    assert upload(srv, two, "up.png").json()["name"] == "up (1).png"
    assert upload(srv, one, "up.png").json()["name"] == "up.png"      # identical bytes: reused
    assert upload(srv, two, "up.png").json()["name"] == "up (1).png"
    r = upload(srv, two, "up.png", overwrite="true")
    assert r.json()["name"] == "up.png" and (srv.base_dir / "input" / "up.png").read_bytes() == two
    r = upload(srv, one, "up.png", overwrite="1")
    assert (srv.base_dir / "input" / "up.png").read_bytes() == one
    # Bare path as ComfyUI.
    assert upload(srv, two, "bare.png", path="/upload/image").json()["name"] == "bare.png"


def test_upload_types_and_subfolders(files_server):  # noqa: F811
    srv = files_server
    r = upload(srv, b"anything, e.g. a video", "clip.mp4", type="output", subfolder="vids/2024")
    assert r.json() == {"name": "clip.mp4", "subfolder": "vids/2024", "type": "output"}
    assert (srv.base_dir / "output" / "vids" / "2024" / "clip.mp4").read_bytes() == b"anything, e.g. a video"
    assert upload(srv, b"t", "t.bin", type="temp").json()["type"] == "temp"
    assert (srv.base_dir / "temp" / "t.bin").exists()
    r = upload(srv, b"x", "x.bin", type="models")
    assert r.status == 400 and set(r.json()) >= {"code", "message"}


def test_upload_bad_forms(files_server):  # noqa: F811
    srv = files_server
    body, hdrs = multipart({"subfolder": ""})
    assert srv.post("/api/upload/image", data=body, headers=hdrs).status == 400
    body, hdrs = multipart({"image": "not a file"})
    assert srv.post("/api/upload/image", data=body, headers=hdrs).status == 400
    r = srv.post("/api/upload/image", body={"image": "json"})
    assert r.status == 400 and "message" in r.json()
    r = srv.post("/api/upload/image", data=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert r.status == 400
    assert upload(srv, b"x", "").status == 400


def test_upload_over_pixel_limits_is_refused(files_server, tmp_path):  # noqa: F811
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("1", (16385, 1)).save(path)
    r = upload(files_server, path.read_bytes(), "wide.png")
    assert r.status == 400 and "too large" in r.json()["message"]
    assert not (files_server.base_dir / "input" / "wide.png").exists()


def test_mask_upload_writes_alpha_into_original(files_server):  # noqa: F811
    srv = files_server
    original = png_bytes(16, 4, color=(7, 8, 9, 255), text={"prompt": "{\"1\": {}}"})
    assert upload(srv, original, "orig.png", subfolder="edits").status == 200
    ref = {"filename": "orig.png", "subfolder": "edits", "type": "input"}
    r = upload(srv, gradient_alpha_png(16, 4), "clipspace-mask-1.png", path="/api/upload/mask",
               original_ref=json.dumps(ref), type="input", subfolder="clipspace")
    assert r.status == 200
    assert r.json() == {"name": "clipspace-mask-1.png", "subfolder": "clipspace", "type": "input"}
    saved = decode((srv.base_dir / "input" / "clipspace" / "clipspace-mask-1.png").read_bytes())
    arr = np.asarray(saved)
    assert saved.mode == "RGBA" and arr[0, :, 3].tolist() == [x * 16 for x in range(16)]
    assert arr[..., :3].reshape(-1, 3).tolist() == [[7, 8, 9]] * 64
    assert saved.text == {"prompt": "{\"1\": {}}"}
    # The annotation form of the original's name works too.
    ref2 = {"filename": "orig.png [input]", "subfolder": "edits"}
    assert upload(srv, gradient_alpha_png(16, 4), "m2.png", path="/upload/mask",
                  original_ref=json.dumps(ref2)).status == 200


@pytest.mark.parametrize("ref", [
    "not json", "[]", json.dumps({"subfolder": ""}), json.dumps({"filename": ""}),
    json.dumps({"filename": "missing.png", "type": "input"}),
    json.dumps({"filename": "../orig.png", "type": "input"}),
    json.dumps({"filename": "orig.png", "subfolder": "../..", "type": "input"}),
    json.dumps({"filename": "/etc/passwd", "type": "input"}),
    json.dumps({"filename": "orig.png", "type": "secret"}),
])
def test_mask_upload_bad_refs(files_server, ref):  # noqa: F811
    r = upload(files_server, gradient_alpha_png(), "m.png", path="/api/upload/mask", original_ref=ref)
    assert r.status == 400 and set(r.json()) >= {"code", "message"}


def test_mask_upload_of_non_image(files_server):  # noqa: F811
    srv = files_server
    upload(srv, png_bytes(4, 4), "base.png")
    ref = json.dumps({"filename": "base.png", "type": "input"})
    r = upload(srv, b"not an image", "m.png", path="/api/upload/mask", original_ref=ref)
    assert r.status == 400


def test_oversized_upload_gets_413(make_files_server):  # noqa: F811
    srv = make_files_server("--max-upload-size", "0.25")
    r = upload(srv, b"\0" * (400 * 1024), "huge.bin")
    assert r.status == 413
    assert not (srv.base_dir / "input" / "huge.bin").exists()
    assert upload(srv, b"\0" * 1024, "small.bin").status == 200


def test_concurrent_uploads_of_one_name_never_clobber(files_server):  # noqa: F811
    from concurrent.futures import ThreadPoolExecutor

    payloads = [png_bytes(2, 2, color=(i, i, i, 255)) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda data: upload(files_server, data, "race.png", subfolder="race").json()["name"],
                              payloads))
    assert len(set(names)) == 8
    folder = files_server.base_dir / "input" / "race"
    assert sorted((folder / n).read_bytes() for n in names) == sorted(payloads)
