"""More mask and compositing nodes: MaskPreview (``nodes_mask``), the Porter-Duff image
composite (``nodes_compositing``) and the Painter canvas (``nodes_painter``).

ComfyUI's ``comfy_extras.nodes_mask`` also exports the ``composite`` helper custom nodes
import; ours is :func:`opencomfy.nodes.image_compositing.composite`, re-exported here as
:data:`COMFY_EXTRAS_HELPERS` for the compat module.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

from opencomfy.compat import folder_paths
from opencomfy.nodes.image_compositing import composite
from opencomfy.nodes.image_saving import random_temp_suffix, save_png_batch
from opencomfy.nodes.image_scaling import common_upscale
from opencomfy.nodes.logic import parse_hex_color
from opencomfy.nodes.v3_dynamic import V3DynamicNode, combo
from opencomfy.nodes.v3_schema import node_entries

#: Module-level helpers of ComfyUI's comfy_extras modules (besides the node classes).
COMFY_EXTRAS_HELPERS = {"comfy_extras.nodes_mask": {"composite": composite}}


class MaskPreview:
    """Shows a mask as a grey image (saved to the temp folder)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"mask": ("MASK",)},
                "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    RETURN_TYPES = ()
    FUNCTION = "execute"
    OUTPUT_NODE = True
    CATEGORY = "mask"

    def execute(self, mask, prompt=None, extra_pnginfo=None):
        grey = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])).movedim(1, -1)
        results = save_png_batch(
            grey.expand(-1, -1, -1, 3), filename_prefix="ComfyUI" + random_temp_suffix(),
            output_dir=folder_paths.get_temp_directory(), folder_type="temp", compress_level=1,
            prompt=prompt, extra_pnginfo=extra_pnginfo)
        return {"ui": {"images": results}}


# Each mode: (colour, alpha) from source colour s, source alpha sa, destination d, alpha da.
def _union(sa, da):
    return sa + da - sa * da


PORTER_DUFF = {
    "ADD": lambda s, sa, d, da: (torch.clamp(s + d, 0, 1), torch.clamp(sa + da, 0, 1)),
    "CLEAR": lambda s, sa, d, da: (torch.zeros_like(d), torch.zeros_like(da)),
    "DARKEN": lambda s, sa, d, da: ((1 - da) * s + (1 - sa) * d + torch.min(s, d), _union(sa, da)),
    "DST": lambda s, sa, d, da: (d, da),
    "DST_ATOP": lambda s, sa, d, da: (sa * d + (1 - da) * s, sa),
    "DST_IN": lambda s, sa, d, da: (d * sa, sa * da),
    "DST_OUT": lambda s, sa, d, da: ((1 - sa) * d, (1 - sa) * da),
    "DST_OVER": lambda s, sa, d, da: (d + (1 - da) * s, da + (1 - da) * sa),
    "LIGHTEN": lambda s, sa, d, da: ((1 - da) * s + (1 - sa) * d + torch.max(s, d), _union(sa, da)),
    "MULTIPLY": lambda s, sa, d, da: (s * d, sa * da),
    "OVERLAY": lambda s, sa, d, da: (torch.where(2 * d < da, 2 * s * d,
                                                 sa * da - 2 * (da - s) * (sa - d)), _union(sa, da)),
    "SCREEN": lambda s, sa, d, da: (s + d - s * d, _union(sa, da)),
    "SRC": lambda s, sa, d, da: (s, sa),
    "SRC_ATOP": lambda s, sa, d, da: (da * s + (1 - sa) * d, da),
    "SRC_IN": lambda s, sa, d, da: (s * da, sa * da),
    "SRC_OUT": lambda s, sa, d, da: ((1 - da) * s, (1 - da) * sa),
    "SRC_OVER": lambda s, sa, d, da: (s + (1 - sa) * d, sa + (1 - sa) * da),
    "XOR": lambda s, sa, d, da: ((1 - da) * s + (1 - sa) * d, (1 - da) * sa + (1 - sa) * da),
}


def _fit(planar_hwc: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """One ``[H, W, C]`` tensor resized (bicubic, centre crop) to ``height`` x ``width``."""
    if planar_hwc.shape[:2] == (height, width):
        return planar_hwc
    resized = common_upscale(planar_hwc.unsqueeze(0).movedim(-1, 1), width, height, "bicubic",
                             "center")
    return resized.movedim(1, -1).squeeze(0)


class PorterDuffImageComposite(V3DynamicNode):
    """Composites source over destination with one of the Porter-Duff operators.

    Source and its alpha are resized to the destination's size; the batch is the shortest of
    the four inputs. Both images must have the same number of channels.
    """

    NODE_ID = "PorterDuffImageComposite"
    DISPLAY_NAME = "Porter-Duff Image Composite"
    CATEGORY = "mask/compositing"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_compositing"
    RETURN_TYPES = ("IMAGE", "MASK")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "source": ("IMAGE", {}), "source_alpha": ("MASK", {}),
            "destination": ("IMAGE", {}), "destination_alpha": ("MASK", {}),
            "mode": combo(list(PORTER_DUFF), default="DST"),
        }}

    def execute(self, source, source_alpha, destination, destination_alpha, mode):
        if source.shape[-1] != destination.shape[-1]:
            raise ValueError("PorterDuffImageComposite: source and destination need the same "
                             f"number of channels ({source.shape[-1]} != {destination.shape[-1]})")
        source_alpha = source_alpha.reshape((-1, *source_alpha.shape[-2:]))
        destination_alpha = destination_alpha.reshape((-1, *destination_alpha.shape[-2:]))
        batch = min(len(source), len(source_alpha), len(destination), len(destination_alpha))
        images, alphas = [], []
        for i in range(batch):
            dst = destination[i]
            height, width = dst.shape[0], dst.shape[1]
            dst_alpha = _fit(destination_alpha[i].unsqueeze(-1), height, width)
            src = _fit(source[i], height, width)
            src_alpha = _fit(source_alpha[i].unsqueeze(-1), height, width)
            image, alpha = PORTER_DUFF[mode](src, src_alpha, dst, dst_alpha)
            images.append(image)
            alphas.append(alpha.squeeze(-1))
        return (torch.stack(images), torch.stack(alphas))


class Painter(V3DynamicNode):
    """The painting made on the node's canvas, over the image (or a plain background).

    ``mask`` names the canvas as the frontend uploaded it (``name.png [input]``); its colour is
    blended over the base by its alpha, and the alpha is the MASK output. Without a painting
    the base comes out unchanged with an empty mask.
    """

    NODE_ID = "Painter"
    DISPLAY_NAME = "Painter"
    CATEGORY = "image"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_painter"
    RETURN_TYPES = ("IMAGE", "MASK")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mask": ("STRING", {"default": "", "multiline": False}),
            "width": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 64}),
            "height": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 64}),
            "bg_color": ("COLOR", {"default": "#000000"}),
        }, "optional": {"image": ("IMAGE", {})}}

    def execute(self, mask, width, height, bg_color, image=None):
        if image is not None:
            base = image[:1, ..., :3].float()
            height, width = base.shape[1], base.shape[2]
        else:
            red, green, blue, _ = parse_hex_color(bg_color)
            colour = torch.tensor([red, green, blue], dtype=torch.float32) / 255.0
            base = colour.view(1, 1, 1, 3).expand(1, height, width, 3).clone()
        painting = _load_painting(mask, width, height)
        if painting is None:
            return (base, torch.zeros((1, height, width)))
        rgb, alpha = painting[..., :3], painting[..., 3:4]
        return (rgb * alpha + base * (1.0 - alpha), alpha[..., 0])


def _load_painting(name: str, width: int, height: int) -> torch.Tensor | None:
    """The canvas file as ``[1, H, W, 4]`` RGBA in 0..1 at the base's size, or None."""
    if not name or not name.strip():
        return None
    if not folder_paths.exists_annotated_filepath(name):
        raise ValueError(f"Painter: canvas file not found: {name}")
    with Image.open(folder_paths.get_annotated_filepath(name)) as picture:
        rgba = ImageOps.exif_transpose(picture).convert("RGBA")
        if rgba.size != (width, height):
            rgba = rgba.resize((width, height), Image.Resampling.BILINEAR)
        pixels = np.asarray(rgba).astype(np.float32) / 255.0
    return torch.from_numpy(pixels).unsqueeze(0)


NODES = [
    ("MaskPreview", MaskPreview, "MaskPreview", "comfy_extras.nodes_mask"),
    *[entry for cls in (PorterDuffImageComposite, Painter)
      for entry in node_entries([cls], cls.RELATIVE_PYTHON_MODULE)],
]
