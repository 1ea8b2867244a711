"""WebcamCapture (LoadImage over the browser's upload) and the image-set folder loaders: count,
order, sizes per resize method, captions, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from opencomfy.compat import folder_paths
from opencomfy.nodes.dataset_loaders import (
    LoadImageSetFromFolderNode, LoadImageTextSetFromFolderNode,
)
from opencomfy.nodes.image_io import LoadImage
from opencomfy.nodes.webcam import WebcamCapture
from tests.nodes.conftest import run_node


@pytest.fixture(autouse=True)
def _leave_the_input_folder_as_found():
    """The folder nodes list the input folder's sub-folders; point it back where it was, so
    that later tests (the catalogue against ComfyUI's) do not see this test's folders."""
    before = folder_paths.get_root_directory("input")
    yield
    folder_paths.set_input_directory(before)


def _png(path, width: int, height: int, colour=(255, 0, 0)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), colour).save(path)


# --- WebcamCapture ------------------------------------------------------------------------

def test_webcam_capture_is_the_load_image_result(comfy_dirs):
    path = comfy_dirs / "temp" / "webcam" / "shot.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(path)
    (image,) = run_node(WebcamCapture, image="webcam/shot.png [temp]", width=4, height=4,
                        capture_on_queue=True)
    expected, _ = LoadImage().load_image("webcam/shot.png [temp]")
    assert torch.equal(image, expected) and image.shape == (1, 4, 4, 3)
    assert issubclass(WebcamCapture, LoadImage)
    assert WebcamCapture.VALIDATE_INPUTS("webcam/shot.png [temp]") is True
    assert WebcamCapture.VALIDATE_INPUTS("webcam/none.png [temp]") != True  # noqa: E712


def test_webcam_capture_runs_again_at_every_queue_unless_told_not_to(comfy_dirs):
    _png(comfy_dirs / "input" / "still.png", 2, 2)
    assert math.isnan(WebcamCapture.IS_CHANGED("still.png", 0, 0, True))
    assert WebcamCapture.IS_CHANGED("still.png", 0, 0, False) == LoadImage.IS_CHANGED("still.png")


@pytest.mark.parametrize("name, message", [
    ("../../etc/passwd", "Invalid webcam capture path"),
    ("", "No webcam capture was sent"),
    ("missing.png", "not found"),
    ("broken.png", "not a readable image"),
])
def test_webcam_capture_bad_input(comfy_dirs, name, message):
    (comfy_dirs / "input" / "broken.png").write_bytes(b"\x89PNG nope")
    with pytest.raises(ValueError, match=message):
        run_node(WebcamCapture, image=name, width=0, height=0, capture_on_queue=True)


# --- LoadImageSetFromFolderNode -----------------------------------------------------------

@pytest.fixture
def dataset(comfy_dirs):
    folder = comfy_dirs / "input" / "faces"
    _png(folder / "b.png", 4, 2, (0, 255, 0))
    _png(folder / "a.jpg", 4, 2, (255, 0, 0))
    _png(folder / "c.webp", 2, 4, (0, 0, 255))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_list_offers_the_input_subfolders(dataset, comfy_dirs):
    (comfy_dirs / "input" / "faces" / "deeper").mkdir()
    folders, _ = LoadImageSetFromFolderNode.INPUT_TYPES()["required"]["folder"]
    assert folders == ["3d", "faces", "faces/deeper"]


def test_image_set_in_name_order_refuses_mixed_sizes_without_a_method(dataset):
    with pytest.raises(ValueError, match="c.webp is 2x4, not 4x2"):
        run_node(LoadImageSetFromFolderNode, folder="faces", resize_method="None")
    (dataset / "c.webp").unlink()
    (images,) = run_node(LoadImageSetFromFolderNode, folder="faces")
    assert images.shape == (2, 2, 4, 3)
    assert images[0, 0, 0, 0] > 0.9 and images[1, 0, 0, 1] > 0.9  # a.jpg (red), then b.png


def test_image_set_resize_methods(dataset):
    (stretch,) = run_node(LoadImageSetFromFolderNode, folder="faces", resize_method="Stretch")
    assert stretch.shape == (3, 2, 4, 3) and stretch[2, :, :, 2].min() > 0.9
    (crop,) = run_node(LoadImageSetFromFolderNode, folder="faces", resize_method="Crop")
    # The top-left 4x2 of a 2x4 image: blue where it has pixels, black beyond its width.
    assert crop[2, :, :2, 2].min() > 0.9 and crop[2, :, 2:].max() == 0
    (pad,) = run_node(LoadImageSetFromFolderNode, folder="faces", resize_method="Pad")
    # Scaled to 1x2 to fit the 4x2 frame, at x = (4 - 1) // 2: black bars around it.
    assert pad[2, :, :, 2].tolist() == [[0.0, 1.0, 0.0, 0.0]] * 2


@pytest.mark.parametrize("folder, message", [
    ("../output", "Invalid folder"), ("", "Invalid folder"), ("3d", "Input folder not found"),
    ("empty", "No images"),
])
def test_image_set_bad_folders(comfy_dirs, folder, message):
    (comfy_dirs / "input" / "empty").mkdir()
    with pytest.raises(ValueError, match=message):
        run_node(LoadImageSetFromFolderNode, folder=folder, resize_method="None")


def test_image_set_refuses_a_broken_image(dataset):
    (dataset / "d.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="Not a readable image: d.png"):
        run_node(LoadImageSetFromFolderNode, folder="faces", resize_method="Stretch")


# --- LoadImageTextSetFromFolderNode -------------------------------------------------------

class CountingClip:
    """The two CLIP methods the loader uses; the 'embedding' is the caption's length."""

    def __init__(self):
        self.encoded: list[str] = []

    def tokenize(self, text):
        return text

    def encode_from_tokens_scheduled(self, tokens):
        self.encoded.append(tokens)
        return [[torch.full((1, 1, 1), float(len(tokens))), {"pooled_output": None}]]


def test_text_set_pairs_each_image_with_its_caption(dataset):
    (dataset / "a.txt").write_text("a red square\n")
    (dataset / "b.txt").write_text("a red square")
    _png(dataset / "3_extra" / "e.png", 3, 3)
    (dataset / "3_extra" / "e.txt").write_text("xyz")
    clip = CountingClip()
    images, conditioning = run_node(LoadImageTextSetFromFolderNode, folder="faces", clip=clip,
                                    resize_method="Stretch", width=8, height=-1)
    # a, b, c, then e three times (kohya "3_" repeats); all 8 wide, as tall as the first.
    assert images.shape == (6, 2, 8, 3)
    assert [float(c[0]) for c in conditioning] == [12.0, 12.0, 0.0, 3.0, 3.0, 3.0]
    assert sorted(clip.encoded) == ["", "a red square", "xyz"]  # each caption encoded once


def test_text_set_needs_a_clip(dataset):
    with pytest.raises(ValueError, match="No text encoder"):
        run_node(LoadImageTextSetFromFolderNode, folder="faces", clip=None)
