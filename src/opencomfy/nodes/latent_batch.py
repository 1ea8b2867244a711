"""Latent batch nodes: slicing, repeating, joining and cutting batches.

LatentFromBatch and RepeatLatentBatch come from ComfyUI's ``nodes.py`` (V1); LatentBatch,
LatentConcat, LatentCut and LatentBatchSeedBehavior from ``comfy_extras/nodes_latent.py`` (V3
schema there; see :mod:`opencomfy.nodes.v3_schema`).
"""

from __future__ import annotations

import math

import torch

from opencomfy.nodes.image_scaling import repeat_to_batch_size
from opencomfy.nodes.latent_arithmetic import PYTHON_MODULE, LatentNode, reshape_latent_to
from opencomfy.nodes.mask import MAX_RESOLUTION
from opencomfy.nodes.v3_schema import node_entries


class LatentFromBatch:
    """Samples ``batch_index .. batch_index + length`` (clamped to the batch) of a latent.

    The noise mask and ``batch_index`` are cut to match; a single mask stays shared.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT",),
            "batch_index": ("INT", {"default": 0, "min": 0, "max": 63}),
            "length": ("INT", {"default": 1, "min": 1, "max": 64}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "frombatch"
    CATEGORY = "latent/batch"

    def frombatch(self, samples, batch_index, length):
        source = samples["samples"]
        start = min(source.shape[0] - 1, batch_index)
        length = min(source.shape[0] - start, length)
        latent = samples.copy()
        latent["samples"] = source[start:start + length].clone()
        if "noise_mask" in samples:
            masks = samples["noise_mask"]
            if masks.shape[0] == 1:
                latent["noise_mask"] = masks.clone()
            else:
                if masks.shape[0] < source.shape[0]:
                    masks = masks.repeat(math.ceil(source.shape[0] / masks.shape[0]),
                                         1, 1, 1)[:source.shape[0]]
                latent["noise_mask"] = masks[start:start + length].clone()
        if "batch_index" in samples:
            latent["batch_index"] = samples["batch_index"][start:start + length]
        else:
            latent["batch_index"] = list(range(start, start + length))
        return (latent,)


class RepeatLatentBatch:
    """The whole batch ``amount`` times; ``batch_index`` continues past the original range."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT",),
            "amount": ("INT", {"default": 1, "min": 1, "max": 64}),
        }}

    RETURN_TYPES = ("LATENT",)
    FUNCTION = "repeat"
    CATEGORY = "latent/batch"

    def repeat(self, samples, amount):
        latent = samples.copy()
        latent["samples"] = samples["samples"].repeat((amount, 1, 1, 1))
        # As ComfyUI: a per-sample mask batch is repeated as is (not first padded to the
        # latent batch); a single shared mask is left alone.
        if "noise_mask" in samples and samples["noise_mask"].shape[0] > 1:
            latent["noise_mask"] = samples["noise_mask"].repeat((amount, 1, 1, 1))
        if "batch_index" in latent:
            indices = latent["batch_index"]
            offset = max(indices) - min(indices) + 1
            latent["batch_index"] = indices + [i + copy * offset
                                               for copy in range(1, amount) for i in indices]
        return (latent,)


class LatentBatch(LatentNode):
    """``samples2`` appended to ``samples1`` (resized to it), ``batch_index`` lists joined."""

    CATEGORY = "latent/batch"
    NODE_ID = "LatentBatch"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples1": ("LATENT", {}), "samples2": ("LATENT", {})}}

    def execute(self, samples1, samples2):
        first = samples1["samples"]
        second = reshape_latent_to(first.shape, samples2["samples"], repeat_batch=False)
        latent = samples1.copy()
        latent["samples"] = torch.cat((first, second), dim=0)
        latent["batch_index"] = (samples1.get("batch_index", list(range(first.shape[0])))
                                 + samples2.get("batch_index", list(range(second.shape[0]))))
        return (latent,)


class LatentConcat(LatentNode):
    """Join two latents along width (x), height (y) or time (t); "-" puts ``samples2`` first."""

    CATEGORY = "latent/advanced"
    NODE_ID = "LatentConcat"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples1": ("LATENT", {}),
            "samples2": ("LATENT", {}),
            "dim": ("COMBO", {"multiselect": False,
                              "options": ["x", "-x", "y", "-y", "t", "-t"]}),
        }}

    def execute(self, samples1, samples2, dim):
        first = samples1["samples"]
        second = repeat_to_batch_size(samples2["samples"], first.shape[0])
        parts = (second, first) if "-" in dim else (first, second)
        axis = {"x": -1, "y": -2, "t": -3}[dim.lstrip("-")]
        latent = samples1.copy()
        latent["samples"] = torch.cat(parts, dim=axis)
        return (latent,)


class LatentCut(LatentNode):
    """``amount`` latent pixels (or frames) from ``index`` (negative counts from the end)."""

    CATEGORY = "latent/advanced"
    NODE_ID = "LatentCut"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {}),
            "dim": ("COMBO", {"multiselect": False, "options": ["x", "y", "t"]}),
            "index": ("INT", {"default": 0, "min": -MAX_RESOLUTION, "max": MAX_RESOLUTION,
                              "step": 1}),
            "amount": ("INT", {"default": 1, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
        }}

    def execute(self, samples, dim, index, amount):
        source = samples["samples"]
        axis = source.ndim - {"x": 1, "y": 2, "t": 3}[dim]
        size = source.shape[axis]
        if index >= 0:
            index = min(index, size - 1)
            amount = min(size - index, amount)
        else:
            index = max(index, -size)
            amount = min(-index, amount)
        latent = samples.copy()
        latent["samples"] = torch.narrow(source, axis, index, amount)
        return (latent,)


class LatentBatchSeedBehavior(LatentNode):
    """"fixed": every sample gets the first sample's seed offset; "random": drop the offsets."""

    CATEGORY = "latent/advanced"
    NODE_ID = "LatentBatchSeedBehavior"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {}),
            "seed_behavior": ("COMBO", {"default": "fixed", "multiselect": False,
                                        "options": ["random", "fixed"]}),
        }}

    def execute(self, samples, seed_behavior):
        latent = samples.copy()
        if seed_behavior == "random":
            latent.pop("batch_index", None)
        elif seed_behavior == "fixed":
            first = latent.get("batch_index", [0])[0]
            latent["batch_index"] = [first] * samples["samples"].shape[0]
        return (latent,)


NODES = [
    ("LatentFromBatch", LatentFromBatch, "Latent From Batch", "nodes"),
    ("RepeatLatentBatch", RepeatLatentBatch, "Repeat Latent Batch", "nodes"),
    *node_entries([LatentBatch, LatentConcat, LatentCut, LatentBatchSeedBehavior],
                  PYTHON_MODULE),
]
