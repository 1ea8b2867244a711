"""Latent nodes: ComfyUI's LATENT nodes from ``nodes.py``, ``nodes_latent``, ``nodes_mask`` and
``nodes_rebatch``, as V1 classes with ComfyUI's numbers.

A LATENT is a dict ``{"samples": float tensor [B, C, H/8, W/8]}`` with optional ``noise_mask``
(``[B, 1, H, W]``) and ``batch_index`` (list of ints, the seed offsets of each sample). Nodes
copy the dict and replace what they change, so keys they do not know travel on.

This module holds the basic nodes and gathers every latent module's ``NODES``.
"""

from __future__ import annotations

import torch

from opencomfy.nodes import (latent_arithmetic, latent_batch, latent_composite, latent_files,
                             latent_rebatch, latent_transform)
from opencomfy.nodes.mask import MAX_RESOLUTION


class EmptyLatentImage:
    """A zero latent batch ``[batch_size, 4, height // 8, width // 8]``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8,
                              "tooltip": "Image width this latent will decode to, in pixels."}),
            "height": ("INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8,
                               "tooltip": "Image height this latent will decode to, in pixels."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096,
                                   "tooltip": "How many latents to make at once."}),
        }}

    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("A batch of all-zero latents.",)
    FUNCTION = "generate"
    CATEGORY = "latent"
    DESCRIPTION = "Makes blank latents of a given size, the starting point for text-to-image sampling."

    def generate(self, width, height, batch_size=1):
        return ({"samples": torch.zeros([batch_size, 4, height // 8, width // 8])},)


class SetLatentNoiseMask:
    """Attach a mask (``[B, 1, H, W]``) that limits where sampling adds noise."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "mask": ("MASK",)}}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "set_mask"
    CATEGORY = "latent/inpaint"

    def set_mask(self, samples, mask):
        latent = samples.copy()
        latent["noise_mask"] = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        return (latent,)


NODES = [
    ("EmptyLatentImage", EmptyLatentImage, "Empty Latent Image", "nodes"),
    ("SetLatentNoiseMask", SetLatentNoiseMask, "Set Latent Noise Mask", "nodes"),
    *latent_transform.NODES,
    *latent_composite.NODES,
    *latent_batch.NODES,
    *latent_rebatch.NODES,
    *latent_arithmetic.NODES,
    *latent_files.NODES,
]
