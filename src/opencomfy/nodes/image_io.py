"""ComfyUI's image file nodes: SaveImage, PreviewImage, LoadImage, LoadImageMask, LoadImageOutput."""

from __future__ import annotations

import hashlib
import os
import threading

import numpy as np
import torch
from PIL import Image, ImageOps, ImageSequence

from opencomfy.compat import folder_paths
from opencomfy.compat.node_helpers import pillow
from opencomfy.nodes.image_save_counters import recently_changed
from opencomfy.nodes.image_saving import random_temp_suffix, save_png_batch

# Multi-picture JPEGs (MPO) hold a second, stereo view, not frames of an animation.
_SINGLE_FRAME_FORMATS = {"MPO"}


class SaveImage:
    """Saves the input images to your ComfyUI output directory."""

    def __init__(self):
        self.output_dir = folder_paths.get_output_directory()
        self.type = "output"
        self.prefix_append = ""
        self.compress_level = 4

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Images to write as PNG files."}),
                "filename_prefix": ("STRING", {
                    "default": "ComfyUI",
                    "tooltip": "Start of the file names; a/b/name saves into output/a/b. "
                               "%width%, %height%, %year%, %month%, %day% and the like are filled in; "
                               "the frontend also fills %date:...% and %Node title.widget%."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    CATEGORY = "image"
    DESCRIPTION = "Writes each image as a numbered PNG file (prompt and workflow in its text chunks) into the output folder."

    def save_images(self, images, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        results = save_png_batch(
            images, filename_prefix=filename_prefix + self.prefix_append,
            output_dir=self.output_dir, folder_type=self.type,
            compress_level=self.compress_level, prompt=prompt, extra_pnginfo=extra_pnginfo)
        return {"ui": {"images": results}}


class PreviewImage(SaveImage):
    """Saves the images to the temp folder for the UI to show (wiped at start and exit)."""

    def __init__(self):
        self.output_dir = folder_paths.get_temp_directory()
        self.type = "temp"
        self.prefix_append = random_temp_suffix()
        self.compress_level = 1

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}


class _InputListing:
    """Files at the top of the input folder, listed again only when the folder changed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cache: tuple[str, int, list[str]] | None = None

    def files(self) -> list[str]:
        root = folder_paths.get_input_directory()
        try:
            mtime = os.stat(root).st_mtime_ns
        except FileNotFoundError:
            return []
        with self._lock:
            cached = self._cache
            quiet = not recently_changed(mtime / 1e9)
            if cached and cached[0] == root and cached[1] == mtime and quiet:
                return list(cached[2])
            with os.scandir(root) as entries:
                names = sorted(e.name for e in entries if e.is_file())
            self._cache = (root, mtime, names)
            return list(names)  # callers may change their copy


_input_listing = _InputListing()


def _open_image(path: str) -> Image.Image:
    """Open an image, retrying with truncated-file tolerance (Pillow issues 4472, 2445)."""
    return pillow(Image.open, path)


def _exif_transpose(frame: Image.Image) -> Image.Image:
    return pillow(ImageOps.exif_transpose, frame)


def _to_eight_bit_range(frame: Image.Image) -> Image.Image:
    """32-bit integer frames hold 0..65535; scale them so that convert() keeps the detail."""
    if frame.mode.startswith("I;16"):
        frame = frame.convert("I")
    if frame.mode == "I":
        frame = frame.point(lambda v: v * (1 / 255))
    return frame


def _frame_mask(frame: Image.Image) -> torch.Tensor | None:
    """1 - alpha for a frame with transparency; None when it has none."""
    if "A" in frame.getbands():
        alpha = frame.getchannel("A")
    elif frame.mode == "P" and "transparency" in frame.info:
        alpha = frame.convert("RGBA").getchannel("A")
    else:
        return None
    return 1.0 - torch.from_numpy(np.array(alpha).astype(np.float32) / 255.0)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest().hex()


def load_image_file(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every frame of an image file as IMAGE ``[B,H,W,3]`` and MASK ``[B,H,W]``.

    Frames whose size differs from the first are skipped. Without transparency the mask is
    ComfyUI's ``zeros(64, 64)`` placeholder (full size when frames need stacking).
    """
    images: list[torch.Tensor] = []
    masks: list[torch.Tensor | None] = []
    with _open_image(path) as picture:
        file_format = picture.format
        size = None
        for raw in ImageSequence.Iterator(picture):
            frame = _to_eight_bit_range(_exif_transpose(raw))
            rgb = frame.convert("RGB")
            if size is None:
                size = rgb.size
            if rgb.size != size:
                continue
            images.append(torch.from_numpy(np.array(rgb).astype(np.float32) / 255.0)[None])
            masks.append(_frame_mask(frame))
            if file_format in _SINGLE_FRAME_FORMATS:
                break
    if size is None:
        raise ValueError(f"{os.path.basename(path)}: the image has no frames")
    width, height = size
    if len(images) == 1:
        mask = masks[0] if masks[0] is not None else torch.zeros((64, 64), dtype=torch.float32)
        return images[0], mask.unsqueeze(0)
    # Stacking needs one shape; ComfyUI would fail on a mix of 64x64 placeholders and alphas.
    full = [m if m is not None else torch.zeros((height, width), dtype=torch.float32) for m in masks]
    if all(m is None for m in masks):
        full = [torch.zeros((64, 64), dtype=torch.float32)] * len(masks)
    return torch.cat(images, dim=0), torch.stack(full, dim=0)


class LoadImage:
    """Loads an image (every frame of an animation) from the input folder, with its mask."""

    @classmethod
    def INPUT_TYPES(cls):
        files = folder_paths.filter_files_content_types(_input_listing.files(), ["image"])
        return {"required": {"image": (sorted(files), {"image_upload": True})}}

    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"

    def load_image(self, image):
        return load_image_file(folder_paths.get_annotated_filepath(image))

    @classmethod
    def IS_CHANGED(cls, image):
        return _file_sha256(folder_paths.get_annotated_filepath(image))

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        if not folder_paths.exists_annotated_filepath(image):
            return "Invalid image file: {}".format(image)
        return True


class LoadImageMask:
    """Loads one channel of an image from the input folder as a MASK (alpha is inverted)."""

    _color_channels = ["alpha", "red", "green", "blue"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": (_input_listing.files(), {"image_upload": True}),
                             "channel": (cls._color_channels,)}}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "load_image"

    def load_image(self, image, channel):
        path = folder_paths.get_annotated_filepath(image)
        with _open_image(path) as picture:
            frame = _exif_transpose(picture)
            if frame.getbands() != ("R", "G", "B", "A"):
                frame = _to_eight_bit_range(frame).convert("RGBA")
            band = channel[0].upper()
            if band not in frame.getbands():
                return (torch.zeros((1, 64, 64), dtype=torch.float32),)
            mask = torch.from_numpy(np.array(frame.getchannel(band)).astype(np.float32) / 255.0)
        if band == "A":
            mask = 1.0 - mask
        return (mask.unsqueeze(0),)

    @classmethod
    def IS_CHANGED(cls, image, channel):
        return _file_sha256(folder_paths.get_annotated_filepath(image))

    @classmethod
    def VALIDATE_INPUTS(cls, image):
        if not folder_paths.exists_annotated_filepath(image):
            return "Invalid image file: {}".format(image)
        return True


class LoadImageOutput(LoadImage):
    """LoadImage over the output folder; the frontend fetches the list from a route."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("COMBO", {
                    "image_upload": True,
                    "image_folder": "output",
                    "remote": {
                        "route": "/internal/files/output",
                        "refresh_button": True,
                        "control_after_refresh": "first",
                    },
                }),
            }
        }

    DESCRIPTION = ("Loads an image that an earlier run saved in the output folder. Refreshing the list "
                   "picks its first entry, so newly saved images can be fed back in quickly.")
    EXPERIMENTAL = True
    FUNCTION = "load_image"


NODES = [
    ("SaveImage", SaveImage, "Save Image", "nodes"),
    ("PreviewImage", PreviewImage, "Preview Image", "nodes"),
    ("LoadImage", LoadImage, "Load Image", "nodes"),
    ("LoadImageMask", LoadImageMask, "Load Image (as Mask)", "nodes"),
    ("LoadImageOutput", LoadImageOutput, "Load Image (from Outputs)", "nodes"),
]
