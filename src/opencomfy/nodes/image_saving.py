"""Writing IMAGE tensors to numbered files, shared by the still and animated save nodes."""

from __future__ import annotations

import json
import os
import random
import string
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from opencomfy.compat import folder_paths
from opencomfy.compat.comfy import cli_args


def save_metadata_enabled() -> bool:
    """False under ``--disable-metadata`` (build_registry copies the flag into compat's args)."""
    return not getattr(cli_args.args, "disable_metadata", False)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """One ``[H, W, C]`` image in 0..1 -> an 8-bit Pillow image (0.5 -> 127, as ComfyUI)."""
    pixels = np.clip(255.0 * image.detach().cpu().float().numpy(), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    return Image.fromarray(pixels)


def png_text_metadata(prompt, extra_pnginfo) -> PngInfo | None:
    """tEXt chunks: ``prompt`` and one per ``extra_pnginfo`` key (normally ``workflow``)."""
    if not save_metadata_enabled():
        return None
    metadata = PngInfo()
    if prompt is not None:
        metadata.add_text("prompt", json.dumps(prompt))
    if extra_pnginfo is not None:
        for key, value in extra_pnginfo.items():
            metadata.add_text(key, json.dumps(value))
    return metadata


def random_temp_suffix() -> str:
    """``_temp_`` + five random letters, so previews of different nodes never collide."""
    return "_temp_" + "".join(random.choice(string.ascii_lowercase) for _ in range(5))


def write_numbered_file(target: folder_paths.SaveTarget, *, stem: str, extension: str,
                        write: Callable[[BinaryIO], None]) -> str:
    """Write ``<stem>_<counter:05>_.<extension>`` into the target folder; return its name.

    The counter comes from folder_paths' in-memory table. Files are created exclusively, so
    a name someone else took in the meantime is skipped rather than overwritten.
    """
    folder = target.full_output_folder
    os.makedirs(folder, exist_ok=True)
    while True:
        counter = folder_paths.claim_save_counter(folder, target.filename)
        name = f"{stem}_{counter:05}_.{extension}"
        path = os.path.join(folder, name)
        try:
            handle = open(path, "xb")
        except FileExistsError:
            continue
        try:
            with handle:
                write(handle)
        except BaseException:
            os.unlink(path)
            raise
        folder_paths.note_saved(folder, target.filename)
        return name


def save_png_batch(images: torch.Tensor, *, filename_prefix: str, output_dir: str,
                   folder_type: str, compress_level: int, prompt=None, extra_pnginfo=None
                   ) -> list[dict]:
    """Save every image of a batch as its own PNG; the UI entries in batch order."""
    height, width = images[0].shape[0], images[0].shape[1]
    target = folder_paths.resolve_save_target(filename_prefix, output_dir, width, height)
    metadata = png_text_metadata(prompt, extra_pnginfo)
    results = []
    for batch_number, image in enumerate(images):
        picture = tensor_to_pil(image)
        stem = target.filename.replace("%batch_num%", str(batch_number))
        name = write_numbered_file(
            target, stem=stem, extension="png",
            write=lambda f, p=picture: p.save(f, format="PNG", pnginfo=metadata,
                                              compress_level=compress_level))
        results.append({"filename": name, "subfolder": target.subfolder, "type": folder_type})
    return results
