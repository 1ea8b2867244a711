"""SaveAnimatedWEBP and SaveAnimatedPNG: one file per batch, frames, timing and metadata."""

from __future__ import annotations

import json
import zlib

import numpy as np
import torch
from PIL import Image, ImageSequence

from opencomfy.compat.comfy import cli_args
from opencomfy.nodes.image_animated import SaveAnimatedPNG, SaveAnimatedWEBP
from tests.nodes.conftest import run_node

FRAMES = torch.stack([torch.full((4, 6, 3), v) for v in (0.0, 0.5, 1.0)])


def _chunks(data: bytes):
    """(type, payload) for every chunk of a PNG file."""
    pos = 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        yield kind, data[pos + 8:pos + 8 + length]
        pos += 12 + length


def test_animated_png_frames_timing_and_comf_chunks(comfy_dirs):
    prompt = {"1": {"class_type": "SaveAnimatedPNG"}}
    out = run_node(SaveAnimatedPNG, images=FRAMES, filename_prefix="anim/clip", fps=4.0,
                   compress_level=4, prompt=prompt, extra_pnginfo={"workflow": {"a": 1}})
    assert out == {"ui": {"images": [{"filename": "clip_00001_.png", "subfolder": "anim",
                                      "type": "output"}], "animated": [True]}}
    path = comfy_dirs / "output" / "anim" / "clip_00001_.png"
    with Image.open(path) as img:
        assert img.n_frames == 3
        values = [np.array(frame.convert("RGB"))[0, 0, 0] for frame in ImageSequence.Iterator(img)]
        assert values == [0, 127, 255]
        assert img.info["duration"] == 250
    chunks = list(_chunks(path.read_bytes()))
    comf = [payload for kind, payload in chunks if kind == b"comf"]
    assert comf == [b"prompt\0" + json.dumps(prompt).encode(), b'workflow\0{"a": 1}']
    kinds = [kind for kind, _ in chunks]
    assert kinds.index(b"comf") > kinds.index(b"IDAT")  # after the image data, as ComfyUI


def test_animated_png_single_frame_is_not_marked_animated(comfy_dirs):
    cli_args.args.disable_metadata = True
    out = run_node(SaveAnimatedPNG, images=FRAMES[:1], filename_prefix="one", fps=6.0,
                   compress_level=0, prompt={"1": {}})
    assert out == {"ui": {"images": [{"filename": "one_00001_.png", "subfolder": "",
                                      "type": "output"}]}}
    data = (comfy_dirs / "output" / "one_00001_.png").read_bytes()
    assert b"comf" not in data
    idat = b"".join(p for kind, p in _chunks(data) if kind == b"IDAT")
    assert zlib.decompress(idat)  # stored with compress_level 0 but still a valid stream


def test_animated_webp_frames_and_exif_metadata(comfy_dirs):
    prompt = {"1": {"class_type": "SaveAnimatedWEBP"}}
    out = run_node(SaveAnimatedWEBP, images=FRAMES, filename_prefix="w", fps=2.0, lossless=True,
                   quality=80, method="fastest", prompt=prompt,
                   extra_pnginfo={"workflow": {"b": 2}})
    assert out["ui"] == {"images": [{"filename": "w_00001_.webp", "subfolder": "",
                                     "type": "output"}], "animated": [True]}
    with Image.open(comfy_dirs / "output" / "w_00001_.webp") as img:
        assert img.n_frames == 3
        frames = [np.array(frame.convert("RGB"))[0, 0, 0] for frame in ImageSequence.Iterator(img)]
        assert frames == [0, 127, 255]  # lossless keeps 0.5 -> 127 exactly
        assert img.info["duration"] == 500
        exif = img.getexif()
        assert exif[0x0110] == "prompt:" + json.dumps(prompt)
        assert exif[0x010F] == 'workflow:{"b": 2}'


def test_animated_saves_share_the_counter_with_still_images(comfy_dirs):
    (comfy_dirs / "output" / "mix_00004_.png").write_bytes(b"")
    out = run_node(SaveAnimatedWEBP, images=FRAMES[:2], filename_prefix="mix", fps=6.0,
                   lossless=False, quality=50, method="default")
    assert out["ui"]["images"][0]["filename"] == "mix_00005_.webp"


def test_animated_declarations():
    webp = SaveAnimatedWEBP.INPUT_TYPES()
    assert list(webp["required"]) == ["images", "filename_prefix", "fps", "lossless", "quality",
                                      "method"]
    assert webp["required"]["method"] == (["default", "fastest", "slowest"],)
    assert list(SaveAnimatedPNG.INPUT_TYPES()["required"]) == ["images", "filename_prefix", "fps",
                                                               "compress_level"]
    for cls in (SaveAnimatedWEBP, SaveAnimatedPNG):
        assert cls.OUTPUT_NODE and cls.RETURN_TYPES == () and cls.CATEGORY == "image/animation"
