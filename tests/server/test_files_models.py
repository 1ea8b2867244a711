"""Model listings over HTTP: /models, /embeddings, /experiment/models and previews."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from tests.files.factories import decode, png_bytes
from tests.files.routes_server import files_server  # noqa: F401  (fixture)


def _safetensors_with_thumbnail(thumbnail_png: bytes) -> bytes:
    meta = {"modelspec.thumbnail": "data:image/png;base64," + base64.b64encode(thumbnail_png).decode(),
            "modelspec.title": "Thumb"}
    header = json.dumps({"__metadata__": meta}).encode()
    return struct.pack("<Q", len(header)) + header


@pytest.fixture(scope="module")
def srv(files_server):  # noqa: F811
    models = files_server.base_dir / "models"
    (models / "checkpoints" / "sd").mkdir(parents=True, exist_ok=True)
    (models / "checkpoints" / "a.safetensors").write_bytes(b"12345")
    (models / "checkpoints" / "sd" / "b.ckpt").write_bytes(b"1")
    (models / "checkpoints" / "notes.txt").write_text("not a model")
    (models / "checkpoints" / "a.png").write_bytes(png_bytes(8, 8, color=(255, 0, 0, 255)))
    (models / "loras").mkdir(parents=True, exist_ok=True)
    (models / "loras" / "thumb.safetensors").write_bytes(
        _safetensors_with_thumbnail(png_bytes(4, 4, color=(0, 255, 0, 255))))
    (models / "embeddings").mkdir(parents=True, exist_ok=True)
    (models / "embeddings" / "easyneg.pt").write_bytes(b"e")
    (models / "embeddings" / "sub").mkdir(exist_ok=True)
    (models / "embeddings" / "sub" / "other.safetensors").write_bytes(b"e")
    return files_server


def test_models_kinds_and_files(srv):
    kinds = srv.get("/api/models").json()
    assert {"checkpoints", "loras", "vae", "embeddings"} <= set(kinds)
    assert "custom_nodes" not in kinds and "configs" not in kinds
    assert srv.get("/models/checkpoints").json() == ["a.safetensors", "sd/b.ckpt"]
    r = srv.get("/api/models/not_a_folder")
    assert r.status == 404 and set(r.json()) >= {"code", "message"}


def test_embeddings(srv):
    assert sorted(srv.get("/api/embeddings").json()) == ["easyneg", "sub/other"]


def test_experiment_models(srv):
    folders = srv.get("/api/experiment/models").json()
    by_name = {f["name"]: f["folders"] for f in folders}
    assert by_name["checkpoints"] == [str(srv.base_dir.resolve() / "models" / "checkpoints")]
    files = srv.get("/api/experiment/models/checkpoints").json()
    assert [(f["name"], f["pathIndex"]) for f in files] == [("a.safetensors", 0), ("sd/b.ckpt", 0)]
    assert files[0]["size"] == 5 and files[0]["modified"] > 1e9
    r = srv.get("/api/experiment/models/nope")
    assert r.status == 404 and set(r.json()) >= {"code", "message"}


def test_model_previews(srv):
    r = srv.get("/api/experiment/models/preview/checkpoints/0/a.safetensors")
    assert r.status == 200
    img = decode(r.body)
    assert img.format == "WEBP" and img.size == (8, 8)
    assert img.convert("RGB").getpixel((4, 4))[0] > 240
    # The frontend asks for "<stem>.webp" whatever the model's extension.
    assert decode(srv.get("/api/experiment/models/preview/checkpoints/0/a.webp").body).size == (8, 8)
    for name in ("thumb.safetensors", "thumb.webp"):
        embedded = decode(srv.get(f"/api/experiment/models/preview/loras/0/{name}").body)
        assert embedded.convert("RGB").getpixel((2, 2))[1] > 240
    for bad in ["checkpoints/0/sd/b.ckpt", "checkpoints/5/a.safetensors", "checkpoints/x/a.safetensors",
                "nope/0/a.safetensors", "checkpoints/0/..%2F..%2Fsecret.safetensors",
                "checkpoints/0/%2Fetc%2Fpasswd"]:
        assert srv.get(f"/api/experiment/models/preview/{bad}").status == 404, bad


def test_view_metadata(srv):
    meta = srv.get("/api/view_metadata/loras?filename=thumb.safetensors").json()
    assert meta["modelspec.title"] == "Thumb"
    assert srv.get("/view_metadata/loras?filename=thumb.safetensors").status == 200
    for folder, name in [("loras", "missing.safetensors"), ("checkpoints", "a.safetensors"),
                         ("checkpoints", "sd/b.ckpt"), ("nope", "thumb.safetensors"),
                         ("loras", "../loras/thumb.safetensors"), ("loras", "/etc/x.safetensors"), ("loras", "")]:
        r = srv.get(f"/api/view_metadata/{folder}?filename={name}")
        assert r.status == 404, (folder, name)
