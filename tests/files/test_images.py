"""Renditions, mask merging and upload limits, checked pixel by pixel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from opencomfy.files.images import ImageError, Rendition, check_upload_limits, merge_mask, parse_preview, render
from tests.files.factories import decode, gradient_alpha_png, png_bytes


@pytest.fixture
def gradient(tmp_path):
    p = tmp_path / "g.png"
    p.write_bytes(gradient_alpha_png())
    return p


def test_channel_rgb_drops_alpha(gradient):
    img = decode(render(gradient, Rendition(channel="rgb")))
    assert img.format == "PNG" and img.mode == "RGB"
    assert np.asarray(img)[0, 5].tolist() == [200, 100, 50]


def test_channel_a_keeps_only_alpha(gradient):
    img = decode(render(gradient, Rendition(channel="a")))
    arr = np.asarray(img)
    assert img.mode == "RGBA"
    assert arr[..., :3].max() == 0
    assert arr[0, :, 3].tolist() == [x * 16 for x in range(16)]


def test_channel_a_of_opaque_image_is_opaque(tmp_path):
    p = tmp_path / "rgb.png"
    p.write_bytes(png_bytes(mode="RGB"))
    arr = np.asarray(decode(render(p, Rendition(channel="a"))))
    assert (arr[..., 3] == 255).all()


def test_thumbnail_fits_box_and_keeps_aspect(tmp_path):
    p = tmp_path / "big.png"
    p.write_bytes(png_bytes(400, 100, color=(255, 0, 0, 255)))
    img = decode(render(p, Rendition(thumbnail=64)))
    assert img.format == "JPEG" and img.size == (64, 16)
    r, g, b = np.asarray(img)[8, 32]
    assert r > 240 and g < 15 and b < 15


def test_thumbnail_never_upscales(tmp_path):
    p = tmp_path / "small.png"
    p.write_bytes(png_bytes(30, 20))
    assert decode(render(p, Rendition(thumbnail=256))).size == (30, 20)


def test_preview_formats(gradient):
    webp = decode(render(gradient, Rendition(preview_format="webp", quality=90)))
    assert webp.format == "WEBP" and webp.mode == "RGBA"
    jpeg = decode(render(gradient, Rendition(preview_format="jpeg", quality=50)))
    assert jpeg.format == "JPEG" and jpeg.mode == "RGB"


def test_parse_preview():
    assert parse_preview("webp;50", None) == ("webp", 50)
    assert parse_preview("jpeg;90", None) == ("jpeg", 90)
    assert parse_preview("jpeg", None) == ("jpeg", 90)
    assert parse_preview("gif;10", None) == ("webp", 10)
    assert parse_preview("jpeg;90", "a") == ("webp", 90)  # alpha needs webp


def test_render_of_a_non_image_fails_cleanly(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"not an image")
    with pytest.raises(ImageError):
        render(p, Rendition(channel="rgb"))


def test_merge_mask_puts_alpha_and_keeps_text(tmp_path):
    original = tmp_path / "orig.png"
    original.write_bytes(png_bytes(16, 4, color=(1, 2, 3, 255), text={"workflow": "{\"a\": 1}"}))
    merged = decode(merge_mask(original=original, mask=io.BytesIO(gradient_alpha_png())))
    arr = np.asarray(merged)
    assert merged.mode == "RGBA" and merged.size == (16, 4)
    assert arr[0, :, 3].tolist() == [x * 16 for x in range(16)]
    assert arr[..., :3].reshape(-1, 3).tolist() == [[1, 2, 3]] * 64
    assert merged.text == {"workflow": "{\"a\": 1}"}


def test_merge_mask_scales_a_mask_of_another_size(tmp_path):
    original = tmp_path / "orig.png"
    original.write_bytes(png_bytes(32, 8))
    half = io.BytesIO(png_bytes(16, 4, color=(0, 0, 0, 0)))
    arr = np.asarray(decode(merge_mask(original=original, mask=half)))
    assert arr.shape == (8, 32, 4) and (arr[..., 3] == 0).all()


def test_upload_limits(tmp_path):
    check_upload_limits(io.BytesIO(png_bytes(10, 10)))
    check_upload_limits(io.BytesIO(b"\x00\x01 not an image, e.g. a video"))
    big = io.BytesIO()
    Image.new("1", (16385, 1)).save(big, format="PNG")
    with pytest.raises(ImageError):
        check_upload_limits(big)
    assert big.tell() == 0
    many = io.BytesIO()
    Image.new("1", (9000, 8000)).save(many, format="PNG")  # 72 MP > 64 MP
    with pytest.raises(ImageError):
        check_upload_limits(many)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    p = tmp_path / "deep.png"
    arr = np.full((4, 4), 0x8000, dtype=np.uint16)  # mid grey in 16 bits
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I")
    for rendition in (Rendition(channel="rgb"), Rendition(preview_format="webp"), Rendition(thumbnail=64)):
        out = np.asarray(decode(render(p, rendition)).convert("L"))
        assert 120 <= int(out.mean()) <= 136, rendition
