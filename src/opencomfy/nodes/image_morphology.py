"""ComfyUI's ``comfy_extras/nodes_morphology.py``: grey-level morphology with a square,
flat structuring element, and splitting an image into Y/U/V planes and back.

ComfyUI runs these through kornia; here they are plain torch with the same conventions: the
window's origin is its centre (``k // 2``), pixels past the border do not take part, and the
colour transform is kornia's YCbCr (chroma centred on 0.5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from opencomfy.nodes.v3_dynamic import V3DynamicNode, combo
from opencomfy.nodes.v3_schema import node_entries

PYTHON_MODULE = "comfy_extras.nodes_morphology"


def dilate(planar: torch.Tensor, size: int) -> torch.Tensor:
    """The maximum over a ``size`` x ``size`` window of every ``[B, C, H, W]`` pixel."""
    origin = size // 2
    pad = (origin, size - origin - 1, origin, size - origin - 1)
    padded = F.pad(planar, pad, value=float("-inf"))  # the border never wins
    return F.max_pool2d(padded, size, stride=1)


def erode(planar: torch.Tensor, size: int) -> torch.Tensor:
    return -dilate(-planar, size)


OPERATIONS = {
    "erode": erode,
    "dilate": dilate,
    "open": lambda x, k: dilate(erode(x, k), k),
    "close": lambda x, k: erode(dilate(x, k), k),
    "gradient": lambda x, k: dilate(x, k) - erode(x, k),
    "bottom_hat": lambda x, k: erode(dilate(x, k), k) - x,
    "top_hat": lambda x, k: x - dilate(erode(x, k), k),
}


class Morphology(V3DynamicNode):
    """Erode, dilate, open, close, gradient, top hat or bottom hat, channel by channel."""

    NODE_ID = "Morphology"
    DISPLAY_NAME = "ImageMorphology"
    CATEGORY = "image/postprocessing"
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {}),
            "operation": combo(list(OPERATIONS)),
            "kernel_size": ("INT", {"default": 3, "min": 3, "max": 999, "step": 1}),
        }}

    def execute(self, image, operation, kernel_size):
        planar = image.movedim(-1, 1).float()
        return (OPERATIONS[operation](planar, kernel_size).movedim(1, -1).to(image.dtype),)


class ImageRGBToYUV(V3DynamicNode):
    """Y, U (Cb) and V (Cr) planes, each shown as a grey RGB image."""

    NODE_ID = "ImageRGBToYUV"
    CATEGORY = "image/batch"
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE
    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE")
    RETURN_NAMES = ("Y", "U", "V")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE", {})}}

    def execute(self, image):
        rgb = image[..., :3]
        r, g, b = rgb[..., 0:1], rgb[..., 1:2], rgb[..., 2:3]
        y = 0.299 * r + 0.587 * g + 0.114 * b
        u = (b - y) * 0.564 + 0.5
        v = (r - y) * 0.713 + 0.5
        return (y.expand_as(rgb), u.expand_as(rgb), v.expand_as(rgb))


class ImageYUVToRGB(V3DynamicNode):
    """Joins Y, U and V planes (each averaged over its channels) back into RGB."""

    NODE_ID = "ImageYUVToRGB"
    CATEGORY = "image/batch"
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"Y": ("IMAGE", {}), "U": ("IMAGE", {}), "V": ("IMAGE", {})}}

    def execute(self, Y, U, V):  # noqa: N803 (ComfyUI's input names)
        y = Y.mean(dim=-1, keepdim=True)
        cb = U.mean(dim=-1, keepdim=True) - 0.5
        cr = V.mean(dim=-1, keepdim=True) - 0.5
        r = y + 1.403 * cr
        g = y - 0.714 * cr - 0.344 * cb
        b = y + 1.773 * cb
        return (torch.cat([r, g, b], dim=-1),)


NODES = node_entries([Morphology, ImageRGBToYUV, ImageYUVToRGB], PYTHON_MODULE)
