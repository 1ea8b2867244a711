"""Latent resizing, rotation, flipping and cropping (ComfyUI ``nodes.py``)."""

from __future__ import annotations

import torch

from opencomfy.nodes.image_scaling import common_upscale
from opencomfy.nodes.mask import MAX_RESOLUTION

UPSCALE_METHODS = ["nearest-exact", "bilinear", "area", "bicubic", "bislerp"]
CROP_METHODS = ["disabled", "center"]


def upscale_latent(samples: torch.Tensor, width: int, height: int, method: str,
                   crop: str) -> torch.Tensor:
    """Resize channels-first latent samples to ``width`` x ``height`` latent pixels."""
    return common_upscale(samples, width, height, method, crop)


class LatentUpscale:
    """Resize to a pixel size (multiple of 8); 0 on one side keeps the aspect ratio."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT",),
            "upscale_method": (list(UPSCALE_METHODS),),
            "width": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "height": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "crop": (list(CROP_METHODS),),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"

    def upscale(self, samples, upscale_method, width, height, crop):
        if width == 0 and height == 0:
            return (samples,)
        source = samples["samples"]
        if width == 0:
            height = max(64, height)
            width = max(64, round(source.shape[-1] * height / source.shape[-2]))
        elif height == 0:
            width = max(64, width)
            height = max(64, round(source.shape[-2] * width / source.shape[-1]))
        else:
            width, height = max(64, width), max(64, height)
        latent = samples.copy()
        latent["samples"] = upscale_latent(source, width // 8, height // 8, upscale_method, crop)
        return (latent,)


class LatentUpscaleBy:
    """Resize by a factor; each side is rounded to whole latent pixels."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT",),
            "upscale_method": (list(UPSCALE_METHODS),),
            "scale_by": ("FLOAT", {"default": 1.5, "min": 0.01, "max": 8.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "upscale"
    CATEGORY = "latent"

    def upscale(self, samples, upscale_method, scale_by):
        source = samples["samples"]
        width = round(source.shape[-1] * scale_by)
        height = round(source.shape[-2] * scale_by)
        latent = samples.copy()
        latent["samples"] = upscale_latent(source, width, height, upscale_method, "disabled")
        return (latent,)


class LatentRotate:
    """Rotate clockwise by a quarter turn, a half or three quarters."""

    ROTATIONS = ["none", "90 degrees", "180 degrees", "270 degrees"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "rotation": (list(cls.ROTATIONS),)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "rotate"
    CATEGORY = "latent/transform"

    def rotate(self, samples, rotation):
        quarter_turns = {"90": 1, "180": 2, "270": 3}.get(rotation.split(" ")[0], 0)
        latent = samples.copy()
        # dims (W, H): rot90 turns from the width axis towards the height axis = clockwise.
        latent["samples"] = torch.rot90(samples["samples"], k=quarter_turns, dims=[3, 2])
        return (latent,)


class LatentFlip:
    """Mirror top-to-bottom ("x-axis") or left-to-right ("y-axis")."""

    METHODS = ["x-axis: vertically", "y-axis: horizontally"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "flip_method": (list(cls.METHODS),)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "flip"
    CATEGORY = "latent/transform"

    def flip(self, samples, flip_method):
        latent = samples.copy()
        if flip_method.startswith("x"):
            latent["samples"] = torch.flip(samples["samples"], dims=[2])
        elif flip_method.startswith("y"):
            latent["samples"] = torch.flip(samples["samples"], dims=[3])
        return (latent,)


class LatentCrop:
    """Cut a window given in pixels; the origin is kept at least 8 latent pixels from the end."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT",),
            "width": ("INT", {"default": 512, "min": 64, "max": MAX_RESOLUTION, "step": 8}),
            "height": ("INT", {"default": 512, "min": 64, "max": MAX_RESOLUTION, "step": 8}),
            "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "crop"
    CATEGORY = "latent/transform"

    def crop(self, samples, width, height, x, y):
        source = samples["samples"]
        x = min(x // 8, source.shape[3] - 8)
        y = min(y // 8, source.shape[2] - 8)
        latent = samples.copy()
        latent["samples"] = source[:, :, y:y + height // 8, x:x + width // 8]
        return (latent,)


NODES = [
    ("LatentUpscale", LatentUpscale, "Upscale Latent", "nodes"),
    ("LatentUpscaleBy", LatentUpscaleBy, "Upscale Latent By", "nodes"),
    ("LatentRotate", LatentRotate, "Rotate Latent", "nodes"),
    ("LatentFlip", LatentFlip, "Flip Latent", "nodes"),
    ("LatentCrop", LatentCrop, "Crop Latent", "nodes"),
]
