"""GET /view over HTTP: raw files (Range, ETag, safe types), channels, previews, thumbnails."""

from __future__ import annotations

import os
from urllib.parse import urlencode

import numpy as np
import pytest

from tests.files.factories import decode, gradient_alpha_png, headers, png_bytes
from tests.files.routes_server import files_server  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def srv(files_server):  # noqa: F811
    base = files_server.base_dir
    (base / "output" / "sub").mkdir(parents=True, exist_ok=True)
    (base / "input").mkdir(parents=True, exist_ok=True)
    (base / "temp").mkdir(parents=True, exist_ok=True)
    (base / "output" / "g.png").write_bytes(gradient_alpha_png())
    (base / "output" / "sub" / "big.png").write_bytes(png_bytes(300, 150, color=(0, 0, 255, 255)))
    (base / "input" / "in.png").write_bytes(png_bytes(4, 4, color=(9, 9, 9, 255)))
    (base / "temp" / "t.png").write_bytes(png_bytes(2, 2))
    (base / "output" / "data.bin").write_bytes(bytes(range(256)) * 4)
    (base / "output" / "page.html").write_text("<script>alert(1)</script>")
    (base / "output" / "draw.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    (base / "output" / "ünï cødé.png").write_bytes(png_bytes(2, 2))
    return files_server


def view(srv, headers=None, prefix="/api", **params):  # noqa: F811
    return srv.get(f"{prefix}/view?{urlencode(params)}", headers=headers)


def test_raw_file_is_served_with_etag_and_headers(srv):
    r = view(srv, filename="g.png")
    assert r.status == 200 and r.body == (srv.base_dir / "output" / "g.png").read_bytes()
    assert headers(r)["content-type"] == "image/png"
    assert headers(r)["x-content-type-options"] == "nosniff"
    assert headers(r)["content-disposition"] == 'inline; filename="g.png"'
    assert headers(r)["accept-ranges"] == "bytes" and "no-cache" in headers(r)["cache-control"]
    etag = headers(r)["etag"]
    again = view(srv, filename="g.png", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    # Bare path as ComfyUI.
    assert view(srv, prefix="", filename="g.png").body == r.body


def test_types_subfolders_and_annotations(srv):
    assert decode(view(srv, filename="in.png", type="input").body).size == (4, 4)
    assert decode(view(srv, filename="in.png [input]").body).size == (4, 4)
    assert view(srv, filename="t.png", type="temp").status == 200
    assert decode(view(srv, filename="big.png", subfolder="sub").body).size == (300, 150)
    assert view(srv, filename="in.png").status == 404  # default type is output
    assert view(srv, filename="nope.png").status == 404
    assert view(srv, filename="g.png", type="models").status == 400
    non_ascii = view(srv, filename="ünï cødé.png")
    assert non_ascii.status == 200 and "filename*=UTF-8''" in headers(non_ascii)["content-disposition"]


def test_range_requests(srv):
    data = (srv.base_dir / "output" / "data.bin").read_bytes()
    r = view(srv, filename="data.bin", headers={"Range": "bytes=10-19"})
    assert r.status == 206 and r.body == data[10:20]
    assert headers(r)["content-range"] == f"bytes 10-19/{len(data)}"
    tail = view(srv, filename="data.bin", headers={"Range": "bytes=-5"})
    assert tail.status == 206 and tail.body == data[-5:]
    bad = view(srv, filename="data.bin", headers={"Range": f"bytes={len(data) + 10}-"})
    assert bad.status == 416 and headers(bad)["content-range"] == f"bytes */{len(data)}"


def test_active_content_is_never_rendered(srv):
    html = view(srv, filename="page.html")
    assert html.status == 200 and headers(html)["content-type"] == "application/octet-stream"
    assert headers(html)["content-disposition"].startswith("attachment")
    assert headers(html)["x-content-type-options"] == "nosniff"
    svg = view(srv, filename="draw.svg")
    assert headers(svg)["content-type"] == "image/svg+xml"
    assert "sandbox" in headers(svg)["content-security-policy"]


def test_channels(srv):
    rgb = decode(view(srv, filename="g.png", channel="rgb").body)
    assert rgb.mode == "RGB" and np.asarray(rgb)[0, 3].tolist() == [200, 100, 50]
    for name in ("a", "alpha"):
        r = view(srv, filename="g.png", channel=name)
        assert headers(r)["content-type"] == "image/png"
        alpha = np.asarray(decode(r.body))
        assert alpha[0, :, 3].tolist() == [x * 16 for x in range(16)] and alpha[..., :3].max() == 0
    assert view(srv, filename="g.png", channel="bogus").status == 400


def test_preview_formats(srv):
    r = view(srv, filename="g.png", preview="jpeg;80")
    assert headers(r)["content-type"] == "image/jpeg" and decode(r.body).format == "JPEG"
    r = view(srv, filename="g.png", preview="webp;90")
    img = decode(r.body)
    assert img.format == "WEBP" and img.mode == "RGBA"
    # A preview of something that is not an image: the file as it is (ComfyUI's clients ask).
    raw = view(srv, filename="data.bin", preview="webp;50")
    assert raw.status == 200 and raw.body == (srv.base_dir / "output" / "data.bin").read_bytes()


def test_thumbnails(srv):
    r = view(srv, filename="big.png", subfolder="sub", res="64")
    assert r.status == 200 and headers(r)["content-type"] == "image/jpeg"
    img = decode(r.body)
    assert img.format == "JPEG" and img.size == (64, 32)
    r_, g_, b_ = np.asarray(img)[16, 32]
    assert b_ > 240 and r_ < 15 and g_ < 15
    assert decode(view(srv, filename="big.png", subfolder="sub", res="1024").body).size == (300, 150)
    etag = headers(r)["etag"]
    assert view(srv, filename="big.png", subfolder="sub", res="64",
                headers={"If-None-Match": etag}).status == 304
    assert view(srv, filename="big.png", subfolder="sub", res="128").headers["ETag"] != etag
    for bad in ("63", "1025", "abc"):
        r = view(srv, filename="big.png", subfolder="sub", res=bad)
        assert r.status == 400 and set(r.json()) >= {"code", "message"}
    assert view(srv, filename="data.bin", res="64").status == 400


def test_rendition_follows_file_changes(srv):
    path = srv.base_dir / "output" / "changing.png"
    path.write_bytes(png_bytes(100, 100))
    first = view(srv, filename="changing.png", res="64")
    assert decode(first.body).size == (64, 64)
    path.write_bytes(png_bytes(200, 100))
    os.utime(path, ns=(1, 2_000_000_000))
    second = view(srv, filename="changing.png", res="64")
    assert decode(second.body).size == (64, 32) and headers(second)["etag"] != headers(first)["etag"]
