"""ComfyUI's ``node_helpers``: small helpers many packs import."""

from __future__ import annotations

import hashlib

import torch
from PIL import ImageFile, UnidentifiedImageError


def conditioning_set_values(conditioning, values: dict | None = None, append: bool = False) -> list:
    """A copy of ``conditioning`` with ``values`` set on every entry's options dict."""
    values = values or {}
    out = []
    for embedding, options in conditioning:
        options = options.copy()
        for key, value in values.items():
            if append and options.get(key) is not None:
                value = options[key] + value
            options[key] = value
        out.append([embedding, options])
    return out


def pillow(fn, arg):
    """Call a PIL function, retrying with truncated-image loading allowed if it fails."""
    try:
        return fn(arg)
    except (OSError, UnidentifiedImageError, ValueError):
        previous = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = previous


def hasher():
    """The hash constructor chosen by ``--default-hashing-function`` (sha256 by default)."""
    from opencomfy.compat.comfy.cli_args import args

    return {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256,
            "sha512": hashlib.sha512}.get(args.default_hashing_function, hashlib.sha256)


def string_to_torch_dtype(name: str) -> torch.dtype | None:
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(name)


def image_alpha_fix(destination: torch.Tensor, source: torch.Tensor):
    """Match channel counts of two IMAGE tensors (drop or add an alpha channel)."""
    if destination.shape[-1] < source.shape[-1]:
        source = source[..., :destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        destination = torch.nn.functional.pad(destination, (0, 1))
        destination[..., -1] = 1.0
    return destination, source
