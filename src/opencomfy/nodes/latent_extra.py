"""Latent nodes that need no model: the empty latents of the model families, latent
operations (sharpen, Reinhard tone map) and cutting a latent into a batch of slices.

An empty latent is zeros in the shape the family's VAE produces: its channel count, its
spatial downscale and, for video, its temporal compression (``(frames - 1) // k + 1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from opencomfy.nodes.image_filters import gaussian_kernel
from opencomfy.nodes.v3_dynamic import V3DynamicNode, combo
from opencomfy.nodes.v3_schema import node_entries

MAX_RESOLUTION = 16384


def _size(default: int, minimum: int, step: int) -> tuple:
    return ("INT", {"default": default, "min": minimum, "max": MAX_RESOLUTION, "step": step})


BATCH = ("INT", {"default": 1, "min": 1, "max": 4096})


class _EmptyLatent(V3DynamicNode):
    """Zeros of shape ``[batch, CHANNELS, (frames,) height // DOWN, width // DOWN]``."""

    RETURN_TYPES = ("LATENT",)
    CHANNELS = 16
    DOWN = 8
    FRAME_STEP = 0  # frames per latent frame after the first; 0 for still images
    WIDTH = HEIGHT = (1024, 16, 16)
    LENGTH = (25, 1, 4)

    @classmethod
    def INPUT_TYPES(cls):
        inputs = {"width": _size(*cls.WIDTH), "height": _size(*cls.HEIGHT)}
        if cls.FRAME_STEP:
            inputs["length"] = _size(*cls.LENGTH)
        inputs["batch_size"] = BATCH
        return {"required": inputs}

    def execute(self, width, height, batch_size=1, length=1):
        shape = [batch_size, self.CHANNELS]
        if self.FRAME_STEP:
            shape.append((length - 1) // self.FRAME_STEP + 1)
        shape += [height // self.DOWN, width // self.DOWN]
        return ({"samples": torch.zeros(shape)},)


class EmptySD3LatentImage(_EmptyLatent):
    NODE_ID = "EmptySD3LatentImage"
    CATEGORY = "latent/sd3"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_sd3"


class EmptyChromaRadianceLatentImage(_EmptyLatent):
    """Chroma Radiance works in pixel space: the "latent" is the RGB image itself."""

    NODE_ID = "EmptyChromaRadianceLatentImage"
    CATEGORY = "latent/chroma_radiance"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_chroma_radiance"
    CHANNELS = 3
    DOWN = 1


class EmptyHunyuanLatentVideo(_EmptyLatent):
    NODE_ID = DISPLAY_NAME = "EmptyHunyuanLatentVideo"  # a V1 node in ComfyUI
    CATEGORY = "latent/video"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_hunyuan"
    FRAME_STEP = 4
    WIDTH, HEIGHT, LENGTH = (848, 16, 16), (480, 16, 16), (25, 1, 4)


class EmptyHunyuanImageLatent(_EmptyLatent):
    NODE_ID = DISPLAY_NAME = "EmptyHunyuanImageLatent"  # a V1 node in ComfyUI
    CATEGORY = "latent"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_hunyuan"
    CHANNELS, DOWN = 64, 32
    WIDTH = HEIGHT = (2048, 64, 32)


class EmptyMochiLatentVideo(_EmptyLatent):
    NODE_ID = "EmptyMochiLatentVideo"
    CATEGORY = "latent/video"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_mochi"
    CHANNELS, FRAME_STEP = 12, 6
    WIDTH, HEIGHT, LENGTH = (848, 16, 16), (480, 16, 16), (25, 7, 6)


class EmptyCosmosLatentVideo(_EmptyLatent):
    NODE_ID = "EmptyCosmosLatentVideo"
    CATEGORY = "latent/video"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_cosmos"
    FRAME_STEP = 8
    WIDTH, HEIGHT, LENGTH = (1280, 16, 16), (704, 16, 16), (121, 1, 8)


class EmptyLTXVLatentVideo(_EmptyLatent):
    NODE_ID = "EmptyLTXVLatentVideo"
    CATEGORY = "latent/video/ltxv"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_lt"
    CHANNELS, DOWN, FRAME_STEP = 128, 32, 8
    WIDTH, HEIGHT, LENGTH = (768, 64, 32), (512, 64, 32), (97, 1, 8)


class StableCascade_EmptyLatentImage(V3DynamicNode):  # noqa: N801 (ComfyUI's class name)
    """Stage C's latent (``compression`` times smaller) and stage B's (4 times smaller)."""

    NODE_ID = "StableCascade_EmptyLatentImage"
    CATEGORY = "latent/stable_cascade"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_stable_cascade"
    RETURN_TYPES = ("LATENT", "LATENT")
    RETURN_NAMES = ("stage_c", "stage_b")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": _size(1024, 256, 8),
            "height": _size(1024, 256, 8),
            "compression": ("INT", {"default": 42, "min": 4, "max": 128, "step": 1}),
            "batch_size": BATCH,
        }}

    def execute(self, width, height, compression, batch_size=1):
        stage_c = torch.zeros([batch_size, 16, height // compression, width // compression])
        stage_b = torch.zeros([batch_size, 4, height // 4, width // 4])
        return ({"samples": stage_c}, {"samples": stage_b})


# -- latent operations ----------------------------------------------------------------------

class _LatentOperation(V3DynamicNode):
    """Makes a LATENT_OPERATION: a callable ``op(latent=tensor) -> tensor``."""

    CATEGORY = "latent/advanced/operations"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_latent"
    EXPERIMENTAL = True
    RETURN_TYPES = ("LATENT_OPERATION",)


def _channel_magnitude(latent: torch.Tensor, eps: float) -> torch.Tensor:
    """The length of each position's channel vector, kept as a channel axis of size 1."""
    return (torch.linalg.vector_norm(latent, dim=1) + eps)[:, None]


class LatentOperationTonemapReinhard(_LatentOperation):
    """Compresses large channel-vector magnitudes with Reinhard's ``x / (1 + x)`` curve."""

    NODE_ID = "LatentOperationTonemapReinhard"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"multiplier": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0,
                                                      "step": 0.01})}}

    def execute(self, multiplier):
        def tonemap(latent, **_kwargs):
            magnitude = _channel_magnitude(latent, 1e-10)
            direction = latent / magnitude
            mean = magnitude.mean(dim=(1, 2, 3), keepdim=True)
            std = magnitude.std(dim=(1, 2, 3), keepdim=True)
            # The white point: five deviations above the mean magnitude, scaled by the user.
            white = (std * 5 + mean) * multiplier
            scaled = magnitude / white
            return direction * (scaled / (scaled + 1.0)) * white

        return (tonemap,)


class LatentOperationSharpen(_LatentOperation):
    """Unsharp-masks the direction of each channel vector, keeping its magnitude."""

    NODE_ID = "LatentOperationSharpen"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "sharpen_radius": ("INT", {"default": 9, "min": 1, "max": 31, "step": 1}),
            "sigma": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 10.0, "step": 0.1}),
            "alpha": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 5.0, "step": 0.01}),
        }}

    def execute(self, sharpen_radius, sigma, alpha):
        def sharpen(latent, **_kwargs):
            magnitude = _channel_magnitude(latent, 1e-6)
            direction = latent / magnitude
            channels = latent.shape[1]
            size = sharpen_radius * 2 + 1
            kernel = gaussian_kernel(size, sigma, device=latent.device) * (alpha * -10)
            kernel = kernel.to(latent.dtype)
            # Raise the centre so the kernel sums to 1: flat regions stay as they are.
            kernel[size // 2, size // 2] += 1.0 - kernel.sum()
            weights = kernel.repeat(channels, 1, 1).unsqueeze(1)
            r = sharpen_radius
            padded = F.pad(direction, (r, r, r, r), "reflect")
            return magnitude * F.conv2d(padded, weights, groups=channels)

        return (sharpen,)


class LatentApplyOperation(_LatentOperation):
    """Runs a LATENT_OPERATION on a latent's samples."""

    NODE_ID = "LatentApplyOperation"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT", {}), "operation": ("LATENT_OPERATION", {})}}

    def execute(self, samples, operation):
        out = samples.copy()
        out["samples"] = operation(latent=samples["samples"])
        return (out,)


# -- cutting into a batch -------------------------------------------------------------------

class LatentCutToBatch(V3DynamicNode):
    """Cuts a latent along time, width or height into equal slices that become batch items.

    Slices of one sample stay together, in order. A remainder shorter than ``slice_size`` is
    dropped; an axis shorter than ``slice_size`` is one slice. Cutting along ``t`` of an image
    latent (no time axis) leaves it unchanged.
    """

    NODE_ID = "LatentCutToBatch"
    CATEGORY = "latent/advanced"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_latent"
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "samples": ("LATENT", {}),
            "dim": combo(["t", "x", "y"]),
            "slice_size": ("INT", {"default": 1, "min": 1, "max": MAX_RESOLUTION}),
        }}

    def execute(self, samples, dim, slice_size):
        tensor = samples["samples"]
        axis = tensor.ndim + {"x": -1, "y": -2, "t": -3}[dim]
        if axis < 2:  # the batch or channel axis: nothing to cut along
            return (samples,)
        moved = tensor.movedim(axis, 1)
        length = moved.shape[1]
        size = min(slice_size, length)
        moved = moved[:, :length - length % size]
        cut = moved.reshape([-1, size, *moved.shape[2:]]).movedim(1, axis)
        out = {k: v for k, v in samples.items() if k not in ("noise_mask", "batch_index")}
        out["samples"] = cut
        return (out,)


_EMPTY = [EmptySD3LatentImage, EmptyChromaRadianceLatentImage, EmptyHunyuanLatentVideo,
          EmptyHunyuanImageLatent, EmptyMochiLatentVideo, EmptyCosmosLatentVideo,
          EmptyLTXVLatentVideo, StableCascade_EmptyLatentImage]
_OPERATIONS = [LatentOperationTonemapReinhard, LatentOperationSharpen, LatentApplyOperation,
               LatentCutToBatch]

NODES = [entry for cls in _EMPTY + _OPERATIONS
         for entry in node_entries([cls], cls.RELATIVE_PYTHON_MODULE)]
