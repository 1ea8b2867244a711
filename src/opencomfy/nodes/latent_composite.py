"""Pasting and blending latents: LatentComposite, LatentCompositeMasked, LatentBlend."""

from __future__ import annotations

import torch

from opencomfy.nodes.image_compositing import composite
from opencomfy.nodes.latent_transform import upscale_latent
from opencomfy.nodes.mask import MAX_RESOLUTION


def _offset(default: int = 0):
    return ("INT", {"default": default, "min": 0, "max": MAX_RESOLUTION, "step": 8})


class LatentComposite:
    """Paste ``samples_from`` at (x, y) pixels, optionally fading its inner edges over ``feather``.

    Edges that touch the border of ``samples_to`` are not feathered.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples_to": ("LATENT",),
            "samples_from": ("LATENT",),
            "x": _offset(),
            "y": _offset(),
            "feather": _offset(),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "composite"
    CATEGORY = "latent"

    def composite(self, samples_to, samples_from, x, y, composite_method="normal", feather=0):
        x, y, feather = x // 8, y // 8, feather // 8
        latent = samples_to.copy()
        target = samples_to["samples"]
        result = target.clone()
        source = samples_from["samples"][:, :, :target.shape[2] - y, :target.shape[3] - x]
        window = (slice(None), slice(None), slice(y, y + source.shape[2]),
                  slice(x, x + source.shape[3]))
        if feather == 0:
            result[window] = source
        else:
            weight = _feather_weight(source, x, y, feather, target.shape)
            result[window] = source * weight + result[window] * (1.0 - weight)
        latent["samples"] = result
        return (latent,)


def _feather_weight(source: torch.Tensor, x: int, y: int, feather: int,
                    target_shape) -> torch.Tensor:
    """Linear ramps (1/feather ... 1) on the source edges that lie inside the target."""
    weight = torch.ones_like(source)
    height, width = weight.shape[2], weight.shape[3]
    for t in range(feather):
        rate = (1.0 / feather) * (t + 1)
        if y != 0:
            weight[:, :, t:t + 1, :] *= rate
        if y + height < target_shape[2]:
            weight[:, :, height - 1 - t:height - t, :] *= rate
        if x != 0:
            weight[:, :, :, t:t + 1] *= rate
        if x + width < target_shape[3]:
            weight[:, :, :, width - 1 - t:width - t] *= rate
    return weight


class LatentCompositeMasked:
    """Paste ``source`` at (x, y) pixels, weighted by an optional mask resized to the source."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "destination": ("LATENT",),
                "source": ("LATENT",),
                "x": _offset(),
                "y": _offset(),
                "resize_source": ("BOOLEAN", {"default": False}),
            },
            "optional": {"mask": ("MASK",)},
        }

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "composite"
    CATEGORY = "latent"

    def composite(self, destination, source, x, y, resize_source, mask=None):
        latent = destination.copy()
        latent["samples"] = composite(destination["samples"].clone(), source["samples"],
                                      x, y, mask, 8, resize_source)
        return (latent,)


class LatentBlend:
    """``samples1 * blend_factor + samples2 * (1 - blend_factor)``.

    A ``samples2`` of another shape is first resized (bicubic, centre crop) to ``samples1``.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples1": ("LATENT",),
            "samples2": ("LATENT",),
            "blend_factor": ("FLOAT", {"default": 0.5, "min": 0, "max": 1, "step": 0.01}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "blend"
    CATEGORY = "_for_testing"

    def blend(self, samples1, samples2, blend_factor: float, blend_mode: str = "normal"):
        if blend_mode != "normal":
            raise ValueError(f"Unsupported blend mode: {blend_mode}")
        latent = samples1.copy()
        first, second = samples1["samples"], samples2["samples"]
        if first.shape != second.shape:
            second = upscale_latent(second, first.shape[3], first.shape[2], "bicubic", "center")
        latent["samples"] = first * blend_factor + second * (1 - blend_factor)
        return (latent,)


NODES = [
    ("LatentComposite", LatentComposite, "Latent Composite", "nodes"),
    ("LatentCompositeMasked", LatentCompositeMasked, "LatentCompositeMasked",
     "comfy_extras.nodes_mask"),
    ("LatentBlend", LatentBlend, "Latent Blend", "nodes"),
]
