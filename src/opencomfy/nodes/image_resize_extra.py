"""Resizing and batching nodes of newer ComfyUI versions (not in the reference catalogue):
Resize Image/Mask (a dropdown whose choice shows its own inputs), Crop Image to Mask and
Batch Images (a growing list of image sockets). Their inputs were inferred from the stock
workflow templates and the embedded node docs.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from opencomfy.nodes.image_batch import ImageBatch
from opencomfy.nodes.image_compositing import match_alpha
from opencomfy.nodes.image_scaling import UPSCALE_METHODS, common_upscale
from opencomfy.nodes.logic import parse_hex_color
from opencomfy.nodes.v3_dynamic import V3DynamicNode, autogrow_prefix, combo
from opencomfy.nodes.v3_schema import node_entries

log = logging.getLogger(__name__)

_SIZE = ("INT", {"default": 512, "min": 0, "max": 8192, "step": 1})
_CROP = combo(["disabled", "center"], default="center")

#: resize_type -> the inputs that choice shows (prompt keys ``resize_type.<name>``).
RESIZE_OPTIONS: dict[str, dict[str, tuple]] = {
    "scale by": {"multiplier": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0,
                                          "step": 0.01})},
    "scale dimensions": {"width": _SIZE, "height": _SIZE, "crop": _CROP},
    "scale longer dimension": {"longer_size": _SIZE},
    "scale shorter dimension": {"shorter_size": _SIZE},
    "scale width": {"width": _SIZE},
    "scale height": {"height": _SIZE},
    "scale total pixels": {"megapixels": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 16.0,
                                                    "step": 0.01})},
    "match size": {"match": ("IMAGE,MASK", {}), "crop": _CROP},
    "scale to multiple": {"multiple": ("INT", {"default": 8, "min": 1, "max": 8192, "step": 1})},
}


def _target_size(resize_type: str, width: int, height: int, opts: dict) -> tuple[int, int, str]:
    """(new width, new height, crop) for a ``width`` x ``height`` input."""
    aspect = width / height
    crop = "disabled"
    if resize_type == "scale by":
        factor = opts["multiplier"]
        return round(width * factor), round(height * factor), crop
    if resize_type == "scale dimensions":
        w, h, crop = opts["width"], opts["height"], opts.get("crop", "center")
        if w == 0 and h == 0:
            return width, height, "disabled"
        return (w or round(h * aspect)), (h or round(w / aspect)), crop
    if resize_type in ("scale longer dimension", "scale shorter dimension"):
        size = opts["longer_size" if "longer" in resize_type else "shorter_size"]
        scale_width = (width >= height) == ("longer" in resize_type)
        if scale_width:
            return size, round(size / aspect), crop
        return round(size * aspect), size, crop
    if resize_type == "scale width":
        return opts["width"], round(opts["width"] / aspect), crop
    if resize_type == "scale height":
        return round(opts["height"] * aspect), opts["height"], crop
    if resize_type == "scale total pixels":
        scale = math.sqrt(opts["megapixels"] * 1024 * 1024 / (width * height))
        return round(width * scale), round(height * scale), crop
    if resize_type == "match size":
        match = opts.get("match")
        if match is None:
            raise ValueError("Resize Image/Mask: 'match size' needs the match input connected")
        # [B, H, W] masks and [B, H, W, C] images alike: height then width.
        return match.shape[2], match.shape[1], opts.get("crop", "center")
    if resize_type == "scale to multiple":
        multiple = opts["multiple"]
        return (max(multiple, width // multiple * multiple),
                max(multiple, height // multiple * multiple), crop)
    raise ValueError(f"Resize Image/Mask: unknown resize_type '{resize_type}'")


class ResizeImageMaskNode(V3DynamicNode):
    """Resizes an IMAGE or a MASK (the output has the input's type) in one of nine ways."""

    NODE_ID = "ResizeImageMaskNode"
    DISPLAY_NAME = "Resize Image/Mask"
    CATEGORY = "transform"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_post_processing"
    RETURN_TYPES = ("IMAGE,MASK",)
    RETURN_NAMES = ("resized",)
    OBJECT_INFO_OUTPUTS = ("COMFY_MATCHTYPE_V3",)
    OUTPUT_MATCHTYPES = ["input_type"]

    @classmethod
    def INPUT_TYPES(cls):
        nested = {f"resize_type.{name}": spec for option in RESIZE_OPTIONS.values()
                  for name, spec in option.items()}
        return {"required": {"input": ("IMAGE,MASK", {}),
                             "resize_type": combo(list(RESIZE_OPTIONS)),
                             "scale_method": combo(list(UPSCALE_METHODS), default="area")},
                "optional": nested}

    @classmethod
    def object_info_inputs(cls):
        options = [{"key": key, "inputs": {"required": dict(inputs)}}
                   for key, inputs in RESIZE_OPTIONS.items()]
        template = {"template_id": "input_type", "allowed_types": "IMAGE,MASK"}
        return {"required": {
            "input": ("COMFY_MATCHTYPE_V3", {"template": template}),
            "resize_type": ("COMFY_DYNAMICCOMBO_V3", {"options": options}),
            "scale_method": combo(list(UPSCALE_METHODS), default="area"),
        }}

    def execute(self, input, resize_type, scale_method="area", **nested):  # noqa: A002
        if resize_type not in RESIZE_OPTIONS:
            raise ValueError(f"Resize Image/Mask: unknown resize_type '{resize_type}'")
        opts = {name: nested.get(f"resize_type.{name}", spec[1].get("default"))
                for name, spec in RESIZE_OPTIONS[resize_type].items()}
        is_mask = input.ndim == 3
        planar = input.unsqueeze(1) if is_mask else input.movedim(-1, 1)
        height, width = planar.shape[-2], planar.shape[-1]
        new_width, new_height, crop = _target_size(resize_type, width, height, opts)
        if new_width < 1 or new_height < 1:
            raise ValueError(f"Resize Image/Mask: the result would be {new_width}x{new_height}")
        if (new_width, new_height) != (width, height):
            planar = common_upscale(planar, new_width, new_height, scale_method, crop)
        return (planar.squeeze(1) if is_mask else planar.movedim(1, -1),)


def _grow(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """A ``[B, H, W]`` binary mask grown (positive) or shrunk (negative) by ``pixels``."""
    if pixels == 0:
        return mask
    size = abs(pixels) * 2 + 1
    planar = mask.unsqueeze(1)
    if pixels > 0:
        return F.max_pool2d(planar, size, 1, abs(pixels)).squeeze(1)
    return -F.max_pool2d(-planar, size, 1, abs(pixels)).squeeze(1)


def _looks_inverted(mask: torch.Tensor) -> bool:
    """Foreground along the border and background in the middle: the mask marks the rest."""
    height, width = mask.shape
    border = torch.cat([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    middle = mask[height // 4: height - height // 4, width // 4: width - width // 4]
    return bool(border.mean() > 0.5) and middle.numel() > 0 and bool(middle.mean() < 0.5)


class ImageCropToMask(V3DynamicNode):
    """Crops each image around its mask's subject over a plain background, at a fixed size.

    The crop is centred on the mask's bounding box (times ``pad_factor``) with the output's
    aspect ratio; the part outside the image is background. An inverted mask is detected and
    flipped; an empty one keeps the whole image.
    """

    NODE_ID = "ImageCropToMask"
    DISPLAY_NAME = "Crop Image to Mask"
    CATEGORY = "image/transform"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_images"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
        size = ("INT", {"default": 1024, "min": 64, "max": 4096, "step": 8})
        return {"required": {
            "images": ("IMAGE", {}), "masks": ("MASK", {}), "width": size, "height": size,
            "pad_factor": ("FLOAT", {"default": 1.0, "min": 1.0, "max": 2.0, "step": 0.01}),
            "grow_mask": ("INT", {"default": 0, "min": -32, "max": 32, "step": 1}),
            "background": ("COLOR", {"default": "#000000"}),
        }}

    def execute(self, images, masks, width, height, pad_factor, grow_mask, background):
        red, green, blue, _ = parse_hex_color(background)
        colour = torch.tensor([red, green, blue], dtype=images.dtype) / 255.0
        masks = masks.reshape((-1, *masks.shape[-2:]))
        if len(masks) not in (1, len(images)):
            raise ValueError(f"ImageCropToMask: {len(masks)} masks for {len(images)} images")
        if masks.shape[-2:] != images.shape[1:3]:
            masks = F.interpolate(masks.unsqueeze(1), size=images.shape[1:3],
                                  mode="bilinear").squeeze(1)
        masks = _grow((masks > 0.5).to(images.dtype), grow_mask)
        out = [self._crop_one(images[i, ..., :3], masks[min(i, len(masks) - 1)], colour,
                              width, height, pad_factor) for i in range(len(images))]
        return (torch.stack(out),)

    @staticmethod
    def _crop_one(image, mask, colour, width, height, pad_factor):
        if _looks_inverted(mask) or not mask.any():
            mask = 1.0 - mask
        img_h, img_w = mask.shape
        if mask.any():
            rows = torch.nonzero(mask.any(dim=1)).flatten()
            cols = torch.nonzero(mask.any(dim=0)).flatten()
            top, bottom = int(rows[0]), int(rows[-1]) + 1
            left, right = int(cols[0]), int(cols[-1]) + 1
        else:
            log.warning("ImageCropToMask: the mask is empty; keeping the whole image")
            mask = torch.ones_like(mask)
            top, bottom, left, right = 0, img_h, 0, img_w
        subject = image * mask.unsqueeze(-1) + colour * (1.0 - mask.unsqueeze(-1))
        box_w, box_h = (right - left) * pad_factor, (bottom - top) * pad_factor
        aspect = width / height
        if box_w / box_h < aspect:
            box_w = box_h * aspect
        else:
            box_h = box_w / aspect
        centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
        x0, y0 = round(centre_x - box_w / 2), round(centre_y - box_h / 2)
        x1, y1 = x0 + max(1, round(box_w)), y0 + max(1, round(box_h))
        canvas = colour.view(1, 1, 3).expand(y1 - y0, x1 - x0, 3).clone()
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, img_w), min(y1, img_h)
        if sx1 > sx0 and sy1 > sy0:
            canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = subject[sy0:sy1, sx0:sx1]
        resized = common_upscale(canvas.movedim(-1, 0).unsqueeze(0), width, height, "bilinear",
                                 "disabled")
        return resized.squeeze(0).movedim(0, -1).clamp(0, 1)


class BatchImagesNode(V3DynamicNode):
    """Joins the connected images (``images.image0``, ``image1`` ...) into one batch.

    Later images are fitted to the first one's size; the channel count follows the first.
    """

    NODE_ID = "BatchImagesNode"
    DISPLAY_NAME = "Batch Images"
    CATEGORY = "image"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_images"
    RETURN_TYPES = ("IMAGE",)
    MAX_IMAGES = 50

    @classmethod
    def INPUT_TYPES(cls):
        slots = {f"images.image{i}": ("IMAGE", {}) for i in range(cls.MAX_IMAGES)}
        return {"required": {}, "optional": slots}

    @classmethod
    def object_info_inputs(cls):
        return {"required": {"images": autogrow_prefix("image", "IMAGE", "image", min_count=2,
                                                       max_count=cls.MAX_IMAGES)}}

    def execute(self, **slots):
        ordered = sorted((int(key.rsplit("image", 1)[1]), value) for key, value in slots.items()
                         if key.startswith("images.image") and value is not None)
        if not ordered:
            raise ValueError("Batch Images: connect at least one image")
        batch = ordered[0][1]
        for _, image in ordered[1:]:
            _, image = match_alpha(batch, image)
            (batch,) = ImageBatch().batch(batch, image)
        return (batch,)


_CLASSES = [ResizeImageMaskNode, ImageCropToMask, BatchImagesNode]
NODES = [entry for cls in _CLASSES for entry in node_entries([cls], cls.RELATIVE_PYTHON_MODULE)]
