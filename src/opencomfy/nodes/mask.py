"""Mask nodes of ComfyUI's ``comfy_extras/nodes_mask.py`` (V1 classes, ComfyUI's numbers).

A MASK is float32 ``[B, H, W]`` in 0..1 (some producers hand over ``[H, W]``; every node here
accepts both, as ComfyUI does). LatentCompositeMasked, also from nodes_mask, lives with the
latent nodes.
"""

from __future__ import annotations

import torch

MAX_RESOLUTION = 16384
"""ComfyUI's ``nodes.MAX_RESOLUTION``: the bound of every size and offset widget."""

_PYTHON_MODULE = "comfy_extras.nodes_mask"


def as_mask_batch(mask: torch.Tensor) -> torch.Tensor:
    """View a ``[H, W]`` or ``[B, H, W]`` (or ``[B, 1, H, W]``) mask as ``[B, H, W]``."""
    return mask.reshape((-1, mask.shape[-2], mask.shape[-1]))


def _int(default: int, minimum: int, maximum: int = MAX_RESOLUTION, step: int = 1):
    return ("INT", {"default": default, "min": minimum, "max": maximum, "step": step})


class MaskToImage:
    """Grey IMAGE whose three channels repeat the mask."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    CATEGORY = "mask"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "mask_to_image"

    def mask_to_image(self, mask):
        image = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1)
        return (image.expand(-1, -1, -1, 3),)


class ImageToMask:
    """One channel of an IMAGE as a MASK."""

    CHANNELS = ["red", "green", "blue", "alpha"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "channel": (list(cls.CHANNELS),)}}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"

    def image_to_mask(self, image, channel):
        return (image[:, :, :, self.CHANNELS.index(channel)],)


class ImageColorToMask:
    """1 where a pixel's 8-bit RGB equals ``color`` (0xRRGGBB), else 0."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1,
                              "display": "color"}),
        }}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"

    def image_to_mask(self, image, color):
        rgb = (torch.clamp(image, 0, 1.0) * 255.0).round().to(torch.int)
        packed = (torch.bitwise_left_shift(rgb[:, :, :, 0], 16)
                  + torch.bitwise_left_shift(rgb[:, :, :, 1], 8) + rgb[:, :, :, 2])
        return (torch.where(packed == color, 1.0, 0).float(),)


class SolidMask:
    """A ``[1, height, width]`` mask filled with ``value``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "value": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
            "width": _int(512, 1),
            "height": _int(512, 1),
        }}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "solid"

    def solid(self, value, width, height):
        return (torch.full((1, height, width), value, dtype=torch.float32, device="cpu"),)


class InvertMask:
    """``1 - mask``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)}}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "invert"

    def invert(self, mask):
        return (1.0 - mask,)


class CropMask:
    """The ``width`` x ``height`` window at (``x``, ``y``), clipped to the mask."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mask": ("MASK",),
            "x": _int(0, 0),
            "y": _int(0, 0),
            "width": _int(512, 1),
            "height": _int(512, 1),
        }}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "crop"

    def crop(self, mask, x, y, width, height):
        return (as_mask_batch(mask)[:, y:y + height, x:x + width],)


class MaskComposite:
    """Combine ``source`` into ``destination`` at (``x``, ``y``); the result is clamped to 0..1.

    The logical operations round both sides to 0/1 first.
    """

    OPERATIONS = ["multiply", "add", "subtract", "and", "or", "xor"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "destination": ("MASK",),
            "source": ("MASK",),
            "x": _int(0, 0),
            "y": _int(0, 0),
            "operation": (list(cls.OPERATIONS),),
        }}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "combine"

    def combine(self, destination, source, x, y, operation):
        output = as_mask_batch(destination).clone()
        source = as_mask_batch(source)
        right = min(x + source.shape[-1], destination.shape[-1])
        bottom = min(y + source.shape[-2], destination.shape[-2])
        # Beyond ComfyUI (which raises on a shape mismatch): a source placed wholly outside
        # the destination changes nothing.
        if right > x and bottom > y:
            src = source[:, :bottom - y, :right - x]
            dst = output[:, y:bottom, x:right]
            output[:, y:bottom, x:right] = _combine(dst, src, operation)
        return (torch.clamp(output, 0.0, 1.0),)


def _combine(dst: torch.Tensor, src: torch.Tensor, operation: str) -> torch.Tensor:
    if operation == "multiply":
        return dst * src
    if operation == "add":
        return dst + src
    if operation == "subtract":
        return dst - src
    logical = {"and": torch.bitwise_and, "or": torch.bitwise_or, "xor": torch.bitwise_xor}
    if operation in logical:
        return logical[operation](dst.round().bool(), src.round().bool()).float()
    return dst  # ComfyUI leaves the region untouched for an unknown operation


class FeatherMask:
    """Fade each edge linearly over the given number of pixels.

    Reproduces ComfyUI exactly, including its off-by-one on the right and bottom edges: the
    ramp there indexes ``-i``, so step 0 lands on the first column/row and the last one is
    scaled by ``2/n`` rather than ``1/n``.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mask": ("MASK",),
            "left": _int(0, 0),
            "top": _int(0, 0),
            "right": _int(0, 0),
            "bottom": _int(0, 0),
        }}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "feather"

    def feather(self, mask, left, top, right, bottom):
        output = as_mask_batch(mask).clone()
        height, width = output.shape[-2], output.shape[-1]
        left, right = min(left, width), min(right, width)
        top, bottom = min(top, height), min(bottom, height)
        for i in range(left):
            output[:, :, i] *= (i + 1.0) / left
        for i in range(right):
            output[:, :, -i] *= (i + 1) / right
        for i in range(top):
            output[:, i, :] *= (i + 1) / top
        for i in range(bottom):
            output[:, -i, :] *= (i + 1) / bottom
        return (output,)


class GrowMask:
    """Grey dilation (``expand`` > 0) or erosion (< 0), one 3x3 step per pixel of growth.

    With ``tapered_corners`` the step's footprint is a cross (corners grow diagonally by
    staircase), otherwise the full 3x3 square. Same numbers as ComfyUI's scipy
    ``grey_dilation``/``grey_erosion`` with their default 'reflect' border, which for a 3x3
    footprint equals taking the max/min over the in-bounds neighbours.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mask": ("MASK",),
            "expand": _int(0, -MAX_RESOLUTION),
            "tapered_corners": ("BOOLEAN", {"default": True}),
        }}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "expand_mask"

    def expand_mask(self, mask, expand, tapered_corners):
        output = as_mask_batch(mask).clone()
        reduce = torch.maximum if expand > 0 else torch.minimum
        offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
        if not tapered_corners:
            offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
        for _ in range(abs(expand)):
            output = _neighbourhood_reduce(output, offsets, reduce)
        return (output,)


def _neighbourhood_reduce(masks: torch.Tensor, offsets, reduce) -> torch.Tensor:
    """Combine every pixel with its shifted neighbours; edge pixels stand in for outside ones."""
    height, width = masks.shape[-2], masks.shape[-1]
    padded = torch.nn.functional.pad(masks.unsqueeze(1), (1, 1, 1, 1), mode="replicate")[:, 0]
    result = masks
    for dy, dx in offsets:
        result = reduce(result, padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width])
    return result


class ThresholdMask:
    """1 where the mask is strictly above ``value``, else 0."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mask": ("MASK",),
            "value": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.01}),
        }}

    CATEGORY = "mask"
    RETURN_TYPES = ("MASK",)
    FUNCTION = "image_to_mask"

    def image_to_mask(self, mask, value):
        return ((mask > value).float(),)


NODES = [
    ("MaskToImage", MaskToImage, "Convert Mask to Image", _PYTHON_MODULE),
    ("ImageToMask", ImageToMask, "Convert Image to Mask", _PYTHON_MODULE),
    ("ImageColorToMask", ImageColorToMask, "ImageColorToMask", _PYTHON_MODULE),
    ("SolidMask", SolidMask, "SolidMask", _PYTHON_MODULE),
    ("InvertMask", InvertMask, "InvertMask", _PYTHON_MODULE),
    ("CropMask", CropMask, "CropMask", _PYTHON_MODULE),
    ("MaskComposite", MaskComposite, "MaskComposite", _PYTHON_MODULE),
    ("FeatherMask", FeatherMask, "FeatherMask", _PYTHON_MODULE),
    ("GrowMask", GrowMask, "GrowMask", _PYTHON_MODULE),
    ("ThresholdMask", ThresholdMask, "ThresholdMask", _PYTHON_MODULE),
]
