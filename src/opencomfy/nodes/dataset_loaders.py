"""ComfyUI's training-set loaders that need no model: every image of an input sub-folder as
one IMAGE batch, optionally with one caption conditioning per image.

Files are taken in name order (ComfyUI takes the directory's order, which no one can rely
on). Images of another size than the first (or than the asked width/height) are fitted by
``resize_method``: "Stretch" resizes, "Crop" keeps the top-left part (black where the image
is smaller), "Pad" scales to fit and centres on black, "None" refuses the set.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from PIL import Image

from opencomfy.compat import folder_paths
from opencomfy.compat.node_helpers import pillow

log = logging.getLogger(__name__)

PYTHON_MODULE = "comfy_extras.nodes_train"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
RESIZE_METHODS = ["None", "Stretch", "Crop", "Pad"]
# ComfyUI makes input/3d for its 3D loader at start, so its folder list always offers it.
ALWAYS_LISTED = ("3d",)


def input_subfolders() -> list[str]:
    """The input folder's sub-folders (relative, "/"-separated), sorted."""
    return sorted(set(folder_paths.get_input_subfolders()) | set(ALWAYS_LISTED))


def _folder_path(folder: str) -> str:
    root = folder_paths.get_input_directory()
    path = os.path.abspath(os.path.join(root, folder))
    inside = os.path.commonpath((os.path.abspath(root), path)) == os.path.abspath(root)
    if not isinstance(folder, str) or not folder or not inside or path == os.path.abspath(root):
        raise ValueError(f"Invalid folder (must be a sub-folder of the input folder): {folder}")
    if not os.path.isdir(path):
        raise ValueError(f"Input folder not found: {folder}")
    return path


def _image_files(directory: str) -> list[str]:
    return sorted(os.path.join(directory, name) for name in os.listdir(directory)
                  if name.lower().endswith(IMAGE_EXTENSIONS)
                  and os.path.isfile(os.path.join(directory, name)))


def _open_rgb(path: str) -> Image.Image:
    try:
        with pillow(Image.open, path) as picture:
            if picture.mode.startswith("I;16"):
                picture = picture.convert("I")
            if picture.mode == "I":  # 16-bit values: keep the detail when going to 8 bits
                picture = picture.point(lambda v: v * (1 / 255))
            return picture.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's errors for a broken file
        raise ValueError(f"Not a readable image: {os.path.basename(path)} ({exc})") from None


def _fit(picture: Image.Image, size: tuple[int, int], method: str, name: str) -> Image.Image:
    if picture.size == size:
        return picture
    if method == "Stretch":
        return picture.resize(size, Image.Resampling.LANCZOS)
    if method == "Crop":
        return picture.crop((0, 0, *size))
    if method == "Pad":
        scale = min(size[0] / picture.width, size[1] / picture.height)
        inner = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        canvas = Image.new("RGB", size)
        canvas.paste(picture.resize(inner, Image.Resampling.LANCZOS),
                     ((size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2))
        return canvas
    if method == "None":
        raise ValueError(f"{name} is {picture.width}x{picture.height}, not {size[0]}x{size[1]} like "
                         "the first image: choose a resize method or use images of one size.")
    raise ValueError(f"Unknown resize method: {method}")


def load_image_set(paths: list[str], resize_method: str = "None", width: int | None = None,
                   height: int | None = None) -> torch.Tensor:
    """The images as one ``[B, H, W, 3]`` batch, each fitted to (width, height); a missing
    dimension is the first image's."""
    if not paths:
        raise ValueError("No images (.png, .jpg, .jpeg, .webp) found in the folder.")
    frames = []
    size = None
    for path in paths:
        picture = _open_rgb(path)
        if size is None:
            size = (width or picture.width, height or picture.height)
        picture = _fit(picture, size, resize_method, os.path.basename(path))
        frames.append(torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0))
    return torch.stack(frames)


class LoadImageSetFromFolderNode:
    """Every image of an input sub-folder as one batch."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"folder": (input_subfolders(), {"tooltip": "The input sub-folder to load."})},
            "optional": {"resize_method": (RESIZE_METHODS, {"default": "None"})},
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "load_images"
    CATEGORY = "loaders"
    EXPERIMENTAL = True
    DESCRIPTION = "Loads every image of an input sub-folder as one batch (for training)."

    def load_images(self, folder, resize_method="None"):
        return (load_image_set(_image_files(_folder_path(folder)), resize_method),)


def _captioned_images(directory: str) -> list[str]:
    """The folder's images, then those of kohya-style sub-folders ``<repeats>_<name>``,
    each listed ``repeats`` times."""
    paths = _image_files(directory)
    for name in sorted(os.listdir(directory)):
        sub = os.path.join(directory, name)
        if not os.path.isdir(sub):
            continue
        prefix = name.split("_")[0]
        repeats = int(prefix) if prefix.isdigit() else 1
        paths.extend(_image_files(sub) * repeats)
    return paths


def _caption(path: str) -> str:
    text_path = os.path.splitext(path)[0] + ".txt"
    if not os.path.isfile(text_path):
        return ""
    with open(text_path, encoding="utf-8", errors="replace") as f:
        return f.read().strip()


class LoadImageTextSetFromFolderNode:
    """Every image of an input sub-folder as one batch, with its caption (``<image>.txt``)
    encoded by the CLIP: one conditioning entry per image."""

    @classmethod
    def INPUT_TYPES(cls):
        size = {"default": -1, "min": -1, "max": 10000, "step": 1}
        return {
            "required": {
                "folder": (input_subfolders(), {"tooltip": "The input sub-folder to load."}),
                "clip": ("CLIP", {"tooltip": "The text encoder for the captions."}),
            },
            "optional": {
                "resize_method": (RESIZE_METHODS, {"default": "None"}),
                "width": ("INT", {**size, "tooltip": "Width to fit every image to; -1 keeps the first image's."}),
                "height": ("INT", {**size, "tooltip": "Height to fit every image to; -1 keeps the first image's."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "CONDITIONING")
    FUNCTION = "load_images"
    CATEGORY = "loaders"
    EXPERIMENTAL = True
    DESCRIPTION = "Loads the images of an input sub-folder and encodes their captions (for training)."

    def load_images(self, folder, clip, resize_method="None", width=-1, height=-1):
        if clip is None:
            raise ValueError("No text encoder reached the clip input (a checkpoint without a "
                             "CLIP gives none): the captions cannot be encoded.")
        paths = _captioned_images(_folder_path(folder))
        images = load_image_set(paths, resize_method, width if width > 0 else None,
                                height if height > 0 else None)
        encoded: dict[str, list] = {}  # one encoding per distinct caption
        conditioning = []
        for path in paths:
            text = _caption(path)
            if text not in encoded:
                encoded[text] = clip.encode_from_tokens_scheduled(clip.tokenize(text))
            conditioning.extend(encoded[text])
        log.info("Loaded %d images and captions from %s", len(paths), folder)
        return (images, conditioning)


NODES = [
    ("LoadImageSetFromFolderNode", LoadImageSetFromFolderNode, "Load Image Dataset from Folder",
     PYTHON_MODULE),
    ("LoadImageTextSetFromFolderNode", LoadImageTextSetFromFolderNode,
     "Load Image and Text Dataset from Folder", PYTHON_MODULE),
]
