"""SaveImage, PreviewImage and the image loaders: files, names, metadata and exact pixels."""

from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy import cli_args
from opencomfy.nodes import image_io
from opencomfy.nodes.image_io import (LoadImage, LoadImageMask, LoadImageOutput, PreviewImage,
                                      SaveImage)
from tests.nodes.conftest import run_node


def _pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.array(img)


# --- SaveImage ----------------------------------------------------------------------------

def test_save_image_names_counts_and_converts_pixels_like_comfyui(comfy_dirs):
    images = torch.tensor([[[[0.5, 1.2, -0.1]]], [[[0.999, 0.0, 1.0]]]])  # 2 images of 1x1
    out = run_node(SaveImage, images=images, filename_prefix="ComfyUI")
    assert out == {"ui": {"images": [
        {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"},
        {"filename": "ComfyUI_00002_.png", "subfolder": "", "type": "output"},
    ]}}
    # clip(255 * x, 0, 255).astype(uint8): 0.5 -> 127 (not 128), 0.999 -> 254
    assert _pixels(comfy_dirs / "output" / "ComfyUI_00001_.png").tolist() == [[[127, 255, 0]]]
    assert _pixels(comfy_dirs / "output" / "ComfyUI_00002_.png").tolist() == [[[254, 0, 255]]]


def test_save_image_writes_prompt_and_workflow_text_chunks(comfy_dirs):
    prompt = {"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "é"}}}
    extra = {"workflow": {"nodes": [1, 2]}, "other": "x"}
    run_node(SaveImage, images=torch.zeros(1, 2, 2, 3), filename_prefix="meta",
             prompt=prompt, extra_pnginfo=extra)
    with Image.open(comfy_dirs / "output" / "meta_00001_.png") as img:
        assert img.text == {"prompt": json.dumps(prompt), "workflow": json.dumps(extra["workflow"]),
                            "other": json.dumps("x")}


def test_save_image_without_metadata_when_disabled(comfy_dirs):
    cli_args.args.disable_metadata = True
    run_node(SaveImage, images=torch.zeros(1, 2, 2, 3), filename_prefix="plain",
             prompt={"1": {}}, extra_pnginfo={"workflow": {}})
    with Image.open(comfy_dirs / "output" / "plain_00001_.png") as img:
        assert img.text == {}


def test_save_image_uses_compress_level_4_and_preview_level_1(comfy_dirs, monkeypatch):
    seen = []
    original = Image.Image.save

    def spy(self, fp, format=None, **params):
        seen.append(params.get("compress_level"))
        return original(self, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", spy)
    run_node(SaveImage, images=torch.zeros(1, 2, 2, 3))
    run_node(PreviewImage, images=torch.zeros(1, 2, 2, 3))
    assert seen == [4, 1]


def test_save_image_prefix_subfolders_and_size_tokens(comfy_dirs):
    out = run_node(SaveImage, images=torch.zeros(1, 3, 5, 3), filename_prefix="a/b/img_%width%x%height%")
    assert out["ui"]["images"] == [{"filename": "img_5x3_00001_.png", "subfolder": "a/b", "type": "output"}]
    assert (comfy_dirs / "output" / "a" / "b" / "img_5x3_00001_.png").is_file()


def test_save_image_batch_num_token(comfy_dirs):
    out = run_node(SaveImage, images=torch.zeros(2, 1, 1, 3), filename_prefix="f_%batch_num%")
    assert [i["filename"] for i in out["ui"]["images"]] == ["f_0_00001_.png", "f_1_00002_.png"]


@pytest.mark.parametrize("prefix", ["../escape", "a/../../escape", "/etc/owned"])
def test_save_image_refuses_paths_outside_the_output_folder(comfy_dirs, prefix):
    with pytest.raises(ValueError, match="outside the output folder"):
        run_node(SaveImage, images=torch.zeros(1, 1, 1, 3), filename_prefix=prefix)
    assert not (comfy_dirs / "escape_00001_.png").exists()


def test_save_counter_continues_after_a_restart_and_after_foreign_files(comfy_dirs):
    run_node(SaveImage, images=torch.zeros(2, 1, 1, 3), filename_prefix="run")
    folder_paths.forget_save_counters()  # what a restart does to the in-memory table
    out = run_node(SaveImage, images=torch.zeros(1, 1, 1, 3), filename_prefix="run")
    assert out["ui"]["images"][0]["filename"] == "run_00003_.png"
    # Someone else put a higher number there: it is found, never overwritten.
    (comfy_dirs / "output" / "run_00010_.webp").write_bytes(b"x")
    folder_paths.forget_save_counters()
    out = run_node(SaveImage, images=torch.zeros(1, 1, 1, 3), filename_prefix="run")
    assert out["ui"]["images"][0]["filename"] == "run_00011_.png"


def test_save_does_not_list_the_folder_on_every_save(comfy_dirs, monkeypatch):
    run_node(SaveImage, images=torch.zeros(1, 1, 1, 3), filename_prefix="fast")
    listings = []
    original = os.listdir
    monkeypatch.setattr(folder_paths.os, "listdir",
                        lambda path=".": listings.append(path) or original(path))
    for _ in range(5):
        run_node(SaveImage, images=torch.zeros(2, 1, 1, 3), filename_prefix="fast")
    assert listings == []
    assert sorted(os.listdir(comfy_dirs / "output")) == [f"fast_{n:05}_.png" for n in range(1, 12)]


def test_save_skips_a_name_taken_behind_its_back(comfy_dirs):
    run_node(SaveImage, images=torch.zeros(1, 1, 1, 3), filename_prefix="race")
    # Written without touching the counter table, e.g. by another process.
    taken = comfy_dirs / "output" / "race_00002_.png"
    taken.write_bytes(b"not mine")
    out = run_node(SaveImage, images=torch.zeros(1, 1, 1, 3), filename_prefix="race")
    assert out["ui"]["images"][0]["filename"] == "race_00003_.png"
    assert taken.read_bytes() == b"not mine"


# --- PreviewImage -------------------------------------------------------------------------

def test_preview_image_goes_to_temp_with_a_random_prefix(comfy_dirs):
    out = run_node(PreviewImage, images=torch.full((2, 2, 2, 3), 0.25))
    entries = out["ui"]["images"]
    assert [e["type"] for e in entries] == ["temp", "temp"]
    assert re.fullmatch(r"ComfyUI_temp_[a-z]{5}_00001_\.png", entries[0]["filename"])
    assert entries[1]["filename"] == entries[0]["filename"].replace("00001", "00002")
    assert _pixels(comfy_dirs / "temp" / entries[0]["filename"])[0, 0].tolist() == [63, 63, 63]
    assert PreviewImage.INPUT_TYPES()["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


# --- LoadImage ----------------------------------------------------------------------------

def _write_rgba(path, alpha_values):
    rgba = np.zeros((1, len(alpha_values), 4), dtype=np.uint8)
    rgba[0, :, 0] = 200
    rgba[0, :, 3] = alpha_values
    Image.fromarray(rgba, "RGBA").save(path)


def test_load_image_mask_is_one_minus_alpha(comfy_dirs):
    _write_rgba(comfy_dirs / "input" / "a.png", [0, 51, 255])
    image, mask = run_node(LoadImage, image="a.png")
    assert image.shape == (1, 1, 3, 3) and image.dtype == torch.float32
    assert torch.allclose(image[0, 0, :, 0], torch.full((3,), 200 / 255))
    assert mask.shape == (1, 1, 3)
    assert torch.allclose(mask[0, 0], torch.tensor([1.0, 0.8, 0.0]))


def test_load_image_without_alpha_gives_comfyuis_64x64_empty_mask(comfy_dirs):
    Image.new("RGB", (3, 2), (255, 0, 51)).save(comfy_dirs / "input" / "rgb.png")
    image, mask = run_node(LoadImage, image="rgb.png")
    assert image.shape == (1, 2, 3, 3)
    assert image[0, 0, 0].tolist() == [1.0, 0.0, pytest.approx(0.2)]
    assert mask.shape == (1, 64, 64) and not mask.any()


def test_load_image_palette_transparency(comfy_dirs):
    picture = Image.new("P", (2, 1))
    picture.putpalette([0, 0, 0, 255, 255, 255])
    picture.putpixel((1, 0), 1)
    picture.info["transparency"] = 0
    picture.save(comfy_dirs / "input" / "p.png", transparency=0)
    _, mask = run_node(LoadImage, image="p.png")
    assert mask.tolist() == [[[1.0, 0.0]]]


def test_load_image_16_bit_grayscale_is_scaled_to_8_bits(comfy_dirs):
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(comfy_dirs / "input" / "g16.png")
    image, _ = run_node(LoadImage, image="g16.png")
    assert (image[0, 0, :, 1] * 255).tolist() == [0.0, 128.0, 255.0]


def test_load_image_reads_every_frame_of_an_animation(comfy_dirs):
    frames = [Image.new("RGB", (2, 2), (v, v, v)) for v in (0, 255, 51)]
    frames[0].save(comfy_dirs / "input" / "anim.gif", save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    image, mask = run_node(LoadImage, image="anim.gif")
    assert image.shape == (3, 2, 2, 3)
    assert [round(float(image[i].mean()), 3) for i in range(3)] == [0.0, 1.0, 0.2]
    assert mask.shape[0] == 3


def test_load_image_combo_lists_image_files_sorted_and_sees_new_files(comfy_dirs):
    inputs = comfy_dirs / "input"
    Image.new("RGB", (1, 1)).save(inputs / "b.png")
    Image.new("RGB", (1, 1)).save(inputs / "a.webp")
    (inputs / "notes.txt").write_text("x")
    (inputs / "sub").mkdir()
    spec = LoadImage.INPUT_TYPES()["required"]["image"]
    assert spec == (["a.webp", "b.png"], {"image_upload": True})
    Image.new("RGB", (1, 1)).save(inputs / "c.jpg")
    assert LoadImage.INPUT_TYPES()["required"]["image"][0] == ["a.webp", "b.png", "c.jpg"]
    # LoadImageMask lists every file, as ComfyUI does.
    assert LoadImageMask.INPUT_TYPES()["required"]["image"][0] == ["a.webp", "b.png", "c.jpg", "notes.txt"]


def test_load_image_is_changed_is_the_sha256_of_the_file(comfy_dirs):
    path = comfy_dirs / "input" / "h.png"
    Image.new("RGB", (1, 1), (1, 2, 3)).save(path)
    first = LoadImage.IS_CHANGED("h.png")
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    assert LoadImage.IS_CHANGED("h.png") == first
    Image.new("RGB", (1, 1), (9, 9, 9)).save(path)
    assert LoadImage.IS_CHANGED("h.png") != first
    assert LoadImageMask.IS_CHANGED("h.png", "red") == LoadImage.IS_CHANGED("h.png")


def test_load_image_validation_uses_the_annotated_path(comfy_dirs):
    Image.new("RGB", (1, 1)).save(comfy_dirs / "output" / "made.png")
    assert LoadImage.VALIDATE_INPUTS("missing.png") == "Invalid image file: missing.png"
    assert LoadImage.VALIDATE_INPUTS("made.png") == "Invalid image file: made.png"
    assert LoadImage.VALIDATE_INPUTS("made.png [output]") is True
    assert LoadImage.VALIDATE_INPUTS("../output/made.png") == "Invalid image file: ../output/made.png"


def test_load_image_output_reads_from_the_output_folder(comfy_dirs):
    Image.new("RGB", (2, 1), (0, 255, 0)).save(comfy_dirs / "output" / "gen.png")
    image, _ = run_node(LoadImageOutput, image="gen.png [output]")
    assert image[0, 0, 0].tolist() == [0.0, 1.0, 0.0]
    spec = LoadImageOutput.INPUT_TYPES()["required"]["image"]
    assert spec[0] == "COMBO" and spec[1]["image_folder"] == "output"
    assert spec[1]["remote"]["route"] == "/internal/files/output"
    assert LoadImageOutput.EXPERIMENTAL is True


@pytest.mark.parametrize("channel,expected", [("alpha", [1.0, 0.8, 0.0]), ("red", [200 / 255] * 3),
                                              ("green", [0.0] * 3)])
def test_load_image_mask_channels(comfy_dirs, channel, expected):
    _write_rgba(comfy_dirs / "input" / "m.png", [0, 51, 255])
    (mask,) = run_node(LoadImageMask, image="m.png", channel=channel)
    assert mask.shape == (1, 1, 3)
    assert torch.allclose(mask[0, 0], torch.tensor(expected))


def test_load_image_mask_alpha_of_an_opaque_image_is_zero(comfy_dirs):
    Image.new("RGB", (2, 2), (5, 5, 5)).save(comfy_dirs / "input" / "o.png")
    (mask,) = run_node(LoadImageMask, image="o.png", channel="alpha")
    assert mask.shape == (1, 2, 2) and not mask.any()


def test_saved_image_loads_back_to_the_same_pixels(comfy_dirs):
    images = torch.tensor([[[[0.0, 0.2, 1.0], [0.6, 0.4, 0.8]]]])
    out = run_node(SaveImage, images=images, filename_prefix="round")
    name = out["ui"]["images"][0]["filename"] + " [output]"
    loaded, _ = run_node(LoadImage, image=name)
    assert torch.equal(loaded, torch.floor(images * 255) / 255)


def test_io_nodes_declare_comfyuis_interface():
    assert [n[:4:3] for n in image_io.NODES] == [(c, "nodes") for c in
                                                 ("SaveImage", "PreviewImage", "LoadImage",
                                                  "LoadImageMask", "LoadImageOutput")]
    assert SaveImage.OUTPUT_NODE and SaveImage.RETURN_TYPES == () and SaveImage.CATEGORY == "image"
    assert SaveImage.INPUT_TYPES()["required"]["filename_prefix"][1]["default"] == "ComfyUI"
    assert PreviewImage.DESCRIPTION == SaveImage.DESCRIPTION  # inherited in ComfyUI too
    assert LoadImage.RETURN_TYPES == ("IMAGE", "MASK") and LoadImageMask.CATEGORY == "mask"
    assert LoadImageMask.INPUT_TYPES()["required"]["channel"] == (["alpha", "red", "green", "blue"],)
