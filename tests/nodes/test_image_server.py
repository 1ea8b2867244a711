"""The image nodes behind the real server: upload, run, view, metadata and counters over HTTP."""

from __future__ import annotations

import io
import json
import time

import pytest
from PIL import Image

from tests.harness import Server, multipart


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (3, 2), color).save(buf, format="PNG")
    return buf.getvalue()


def _eventually_listed(srv, name: str, timeout: float = 5.0) -> bool:
    """The catalogue re-checks the input folder at most once a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = srv.get("/api/object_info/LoadImage").json()["LoadImage"]
        if name in info["input"]["required"]["image"][0]:
            return True
        time.sleep(0.2)
    return False


def _prompt(image: str) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "srv/inv"}},
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """One SQLite-backed server for this module (the node behaviour does not depend on the db)."""
    server = Server(base_dir=tmp_path_factory.mktemp("image-server")).start()
    yield server
    server.stop()


def test_upload_invert_save_and_view(srv):
    body, content_type = multipart({}, {"image": ("up.png", _png((255, 0, 51, 128)))})
    r = srv.request("POST", "/api/upload/image", data=body, headers={"Content-Type": content_type})
    assert r.status == 200, r.body
    name = r.json()["name"]
    assert _eventually_listed(srv, name)

    r = srv.post("/api/prompt", {"prompt": _prompt(name), "extra_data": {"extra_pnginfo": {"workflow": {"id": 7}}}})
    assert r.status == 200, r.body
    entry = srv.wait_for_job(r.json()["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry
    saved = entry["outputs"]["3"]["images"]
    assert saved == [{"filename": "inv_00001_.png", "subfolder": "srv", "type": "output"}]

    r = srv.get("/api/view?filename=inv_00001_.png&subfolder=srv&type=output")
    assert r.status == 200
    with Image.open(io.BytesIO(r.body)) as img:
        assert img.getpixel((0, 0)) == (0, 255, 204)  # inverted, 0.8 * 255 = 204
        assert json.loads(img.text["workflow"]) == {"id": 7}
        assert json.loads(img.text["prompt"])["3"]["class_type"] == "SaveImage"

    # a different image into the same prefix continues the counter
    prompt = _prompt(name)
    prompt["2"] = {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0}}
    r = srv.post("/api/prompt", {"prompt": prompt})
    entry = srv.wait_for_job(r.json()["prompt_id"])
    assert entry["outputs"]["3"]["images"][0]["filename"] == "inv_00002_.png"


def test_missing_image_is_a_validation_error(srv):
    r = srv.post("/api/prompt", {"prompt": _prompt("nope.png")})
    assert r.status == 400
    errors = r.json()["node_errors"]["1"]["errors"]
    assert errors[0]["type"] == "custom_validation_failed"
