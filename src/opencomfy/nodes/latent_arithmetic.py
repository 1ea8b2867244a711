"""Latent arithmetic of ComfyUI's ``comfy_extras/nodes_latent.py``.

ComfyUI declares these with its V3 schema; see :mod:`opencomfy.nodes.v3_schema`.
"""

from __future__ import annotations

import torch

from opencomfy.nodes.image_scaling import repeat_to_batch_size
from opencomfy.nodes.latent_transform import upscale_latent
from opencomfy.nodes.v3_schema import V3SchemaNode, node_entries

PYTHON_MODULE = "comfy_extras.nodes_latent"


def reshape_latent_to(target_shape, latent: torch.Tensor, repeat_batch: bool = True):
    """Resize ``latent`` (bilinear, centre crop) to the target's spatial size, and its batch."""
    if latent.shape[1:] != target_shape[1:]:
        latent = upscale_latent(latent, target_shape[-1], target_shape[-2], "bilinear", "center")
    if repeat_batch:
        return repeat_to_batch_size(latent, target_shape[0])
    return latent


class LatentNode(V3SchemaNode):
    """A nodes_latent node: returns one LATENT."""

    RETURN_TYPES = ("LATENT",)
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE


def _two_latents():
    return {"required": {"samples1": ("LATENT", {}), "samples2": ("LATENT", {})}}


class LatentAdd(LatentNode):
    """``samples1 + samples2`` (the second resized and batch-matched to the first)."""

    CATEGORY = "latent/advanced"
    NODE_ID = "LatentAdd"

    @classmethod
    def INPUT_TYPES(cls):
        return _two_latents()

    def execute(self, samples1, samples2):
        first = samples1["samples"]
        latent = samples1.copy()
        latent["samples"] = first + reshape_latent_to(first.shape, samples2["samples"])
        return (latent,)


class LatentSubtract(LatentNode):
    """``samples1 - samples2`` (the second resized and batch-matched to the first)."""

    CATEGORY = "latent/advanced"
    NODE_ID = "LatentSubtract"

    @classmethod
    def INPUT_TYPES(cls):
        return _two_latents()

    def execute(self, samples1, samples2):
        first = samples1["samples"]
        latent = samples1.copy()
        latent["samples"] = first - reshape_latent_to(first.shape, samples2["samples"])
        return (latent,)


class LatentMultiply(LatentNode):
    """``samples * multiplier``."""

    CATEGORY = "latent/advanced"
    NODE_ID = "LatentMultiply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {}),
            "multiplier": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
        }}

    def execute(self, samples, multiplier):
        latent = samples.copy()
        latent["samples"] = samples["samples"] * multiplier
        return (latent,)


class LatentInterpolate(LatentNode):
    """Interpolate direction and magnitude of the per-pixel channel vectors separately.

    ``ratio`` 1 gives ``samples1``, 0 gives ``samples2``. ComfyUI divides by norms without
    keeping the channel axis, which only broadcasts for batch size 1 (and is wrong or fails
    otherwise); the norms here keep it, giving ComfyUI's numbers for one sample and correct
    ones for a batch.
    """

    CATEGORY = "latent/advanced"
    NODE_ID = "LatentInterpolate"

    @classmethod
    def INPUT_TYPES(cls):
        inputs = _two_latents()
        inputs["required"]["ratio"] = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0,
                                                  "step": 0.01})
        return inputs

    def execute(self, samples1, samples2, ratio):
        first = samples1["samples"]
        second = reshape_latent_to(first.shape, samples2["samples"])
        norm1 = torch.linalg.vector_norm(first, dim=1, keepdim=True)
        norm2 = torch.linalg.vector_norm(second, dim=1, keepdim=True)
        mixed = (torch.nan_to_num(first / norm1) * ratio
                 + torch.nan_to_num(second / norm2) * (1.0 - ratio))
        direction = torch.nan_to_num(mixed / torch.linalg.vector_norm(mixed, dim=1, keepdim=True))
        latent = samples1.copy()
        latent["samples"] = direction * (norm1 * ratio + norm2 * (1.0 - ratio))
        return (latent,)


NODES = node_entries([LatentAdd, LatentSubtract, LatentMultiply, LatentInterpolate],
                     PYTHON_MODULE)
