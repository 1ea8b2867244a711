"""ComfyUI's ``comfy.clip_vision``: loading a CLIP vision model, the image preprocessing and
the output object, over :mod:`opencomfy.diffusion.clip_vision`. ``load`` returns what the
CLIPVisionLoader node outputs (the same cached object for the same file); every CLIP_VISION
of ours is a :class:`ClipVisionModel`."""

from __future__ import annotations

import os

from opencomfy.compat.model_placeholders import ModelBackendUnavailable
from opencomfy.diffusion.clip_vision import CLIP_MEAN, CLIP_STD, ClipVision, clip_preprocess
from opencomfy.diffusion.clip_vision import ClipVisionOutput as Output

__all__ = ["ClipVisionModel", "Output", "clip_preprocess", "load", "load_clipvision_from_sd",
           "convert_to_transformers", "CLIP_MEAN", "CLIP_STD"]


class _IncludesOurs(type):
    def __instancecheck__(cls, obj) -> bool:
        if "_accepts_ours" in cls.__dict__ and isinstance(obj, ClipVision):
            return True
        return super().__instancecheck__(obj)


class ClipVisionModel(ClipVision, metaclass=_IncludesOurs):
    """CLIP_VISION (``encode_image(image, crop=True)``, ``get_sd()``). Built by :func:`load` or
    :func:`load_clipvision_from_sd`, not from a JSON config."""

    _accepts_ours = True

    def __init__(self, json_config=None, model_options=None):
        raise ModelBackendUnavailable("comfy.clip_vision.ClipVisionModel(json_config) is not available: "
                                      "opencomfy reads the model's shape from its weights "
                                      "(comfy.clip_vision.load / load_clipvision_from_sd)")


def convert_to_transformers(sd: dict, prefix: str) -> dict:
    """open_clip's ``<prefix>`` image tower keys -> transformers' names."""
    from opencomfy.diffusion.clip_vision import open_clip_visual_to_transformers

    return open_clip_visual_to_transformers(sd, prefix)


def load_clipvision_from_sd(sd: dict, prefix: str = "", convert_keys: bool = False):
    """A CLIP_VISION from weights in memory (under ``prefix``; open_clip keys with ``convert_keys``)."""
    from opencomfy.diffusion.clip_vision import build_clip_vision

    if convert_keys:
        sd = convert_to_transformers(sd, prefix)
    elif prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    return build_clip_vision(sd)


def load(ckpt_path):
    """A CLIP_VISION from a ``models/clip_vision`` file."""
    from opencomfy.diffusion import cache
    from opencomfy.diffusion.clip_vision import load_clip_vision_file

    path = os.fspath(ckpt_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CLIP vision file not found: {path}")
    return cache.get_or_load(cache.file_key(path, "clip_vision"), lambda: load_clip_vision_file(path))
