"""/vhs/queryvideo (real video facts) and /files/mask-layers over HTTP."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.files.factories import write_video
from tests.files.routes_server import files_server  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def srv(files_server):  # noqa: F811
    base = files_server.base_dir
    (base / "input" / "clips").mkdir(parents=True, exist_ok=True)
    (base / "output").mkdir(parents=True, exist_ok=True)
    write_video(base / "input" / "clip.mp4", frames=12, fps=8, size=(64, 48))
    write_video(base / "input" / "clips" / "v.webm", frames=10, fps=5, size=(32, 16), codec="libvpx")
    write_video(base / "output" / "out.mp4", frames=6, fps=3, size=(16, 16))
    (base / "input" / "fake.mp4").write_bytes(b"not a video at all" * 10)
    for layer in ("mask", "paint", "painted", "painted-masked"):
        (base / "input" / f"clipspace-{layer}-1700000000000.png").write_bytes(b"png")
    (base / "input" / "clipspace").mkdir(exist_ok=True)
    (base / "input" / "clipspace" / "clipspace-painted-masked-42.png").write_bytes(b"png")
    return files_server


def query(srv, **params):
    return srv.get("/api/vhs/queryvideo?" + urlencode(params))


def test_queryvideo_reads_the_file(srv):
    r = query(srv, filename="clip.mp4", type="input")
    assert r.status == 200
    source = r.json()["source"]
    assert (source["frames"], source["fps"], source["size"]) == (12, 8.0, [64, 48])
    assert source["duration"] == pytest.approx(1.5, abs=0.13)
    webm = query(srv, filename="v.webm", subfolder="clips").json()["source"]  # type defaults to input
    assert (webm["frames"], webm["fps"], webm["size"]) == (10, 5.0, [32, 16])
    out = srv.get("/vhs/queryvideo?" + urlencode({"filename": "out.mp4 [output]"})).json()["source"]
    assert (out["frames"], out["fps"], out["size"]) == (6, 3.0, [16, 16])


def test_queryvideo_loaded_options(srv):
    loaded = query(srv, filename="clip.mp4", skip_first_frames="2", select_every_nth="2",
                   frame_load_cap="4").json()["loaded"]
    assert (loaded["frames"], loaded["fps"], loaded["size"]) == (4, 4.0, [64, 48])
    assert loaded["duration"] == pytest.approx(1.0)


@pytest.mark.parametrize("params", [
    {}, {"filename": ""}, {"filename": "missing.mp4"}, {"filename": "fake.mp4"},
    {"filename": "clip.mp4", "type": "path"}, {"filename": "/etc/passwd", "type": "input"},
    {"filename": "../input/clip.mp4", "type": "output"}, {"filename": "clip.mp4", "subfolder": ".."},
    {"filename": "clip.mp4", "frame_load_cap": "many"}, {"filename": "clip.mp4", "force_rate": "-1"},
])
def test_queryvideo_bad_input(srv, params):
    r = query(srv, **params)
    assert r.status == 400 and isinstance(r.json()["message"], str)


def test_mask_layers(srv):
    expected = {"mask": "clipspace-mask-1700000000000.png", "paint": "clipspace-paint-1700000000000.png",
                "painted": "clipspace-painted-1700000000000.png",
                "painted_masked": "clipspace-painted-masked-1700000000000.png"}
    for name in expected.values():
        r = srv.get("/api/files/mask-layers?" + urlencode({"filename": name}))
        assert r.status == 200 and r.json() == expected
    old = srv.get("/files/mask-layers?" + urlencode({"filename": "clipspace/clipspace-mask-42.png [input]"}))
    assert old.json() == {"mask": None, "paint": None, "painted": None,
                          "painted_masked": "clipspace-painted-masked-42.png"}


@pytest.mark.parametrize("name", ["", "photo.png", "clipspace-mask-99.png",
                                  "../clipspace-mask-1700000000000.png", "clipspace-mask-1\x00.png"])
def test_mask_layers_not_found(srv, name):
    r = srv.get("/api/files/mask-layers?" + urlencode({"filename": name}))
    assert r.status == 404 and set(r.json()) >= {"code", "message"}
