"""Geometry nodes: scaling, cropping, flipping, rotating, padding and stitching IMAGEs."""

from __future__ import annotations

import math

import torch

from opencomfy.nodes.image_scaling import UPSCALE_METHODS, common_upscale
from opencomfy.nodes.v3_schema import V3SchemaNode

MAX_RESOLUTION = 16384


def _resize(image: torch.Tensor, width: int, height: int, method: str, crop: str) -> torch.Tensor:
    """common_upscale for channels-last IMAGE tensors."""
    return common_upscale(image.movedim(-1, 1), width, height, method, crop).movedim(1, -1)


class ImageScale:
    upscale_methods = list(UPSCALE_METHODS)
    crop_methods = ["disabled", "center"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "upscale_method": (cls.upscale_methods,),
            "width": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            "height": ("INT", {"default": 512, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            "crop": (cls.crop_methods,),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    def upscale(self, image, upscale_method, width, height, crop):
        if width == 0 and height == 0:
            return (image,)
        # A zero side follows the other one, keeping the aspect ratio.
        if width == 0:
            width = max(1, round(image.shape[2] * height / image.shape[1]))
        elif height == 0:
            height = max(1, round(image.shape[1] * width / image.shape[2]))
        return (_resize(image, width, height, upscale_method, crop),)


class ImageScaleBy:
    upscale_methods = list(UPSCALE_METHODS)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "upscale_method": (cls.upscale_methods,),
            "scale_by": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 8.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "upscale"
    CATEGORY = "image/upscaling"

    def upscale(self, image, upscale_method, scale_by):
        width = round(image.shape[2] * scale_by)
        height = round(image.shape[1] * scale_by)
        return (_resize(image, width, height, upscale_method, "disabled"),)


class ImageScaleToTotalPixels(V3SchemaNode):
    """Scales to about ``megapixels`` x 2^20 pixels, keeping the aspect ratio (V3 in ComfyUI)."""

    NODE_ID = "ImageScaleToTotalPixels"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_post_processing"
    upscale_methods = list(UPSCALE_METHODS)
    crop_methods = ["disabled", "center"]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE", {}),
            "upscale_method": ("COMBO", {"multiselect": False, "options": cls.upscale_methods}),
            "megapixels": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 16.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/upscaling"

    def execute(self, image, upscale_method, megapixels):
        total = int(megapixels * 1024 * 1024)  # ComfyUI's "megapixel" is 2^20 pixels
        scale_by = math.sqrt(total / (image.shape[2] * image.shape[1]))
        return ImageScaleBy().upscale(image, upscale_method, scale_by)


class ImageCrop:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
            "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/transform"

    def execute(self, image, width, height, x, y):
        # The origin stays inside the image, so the crop is never empty.
        x = min(x, image.shape[2] - 1)
        y = min(y, image.shape[1] - 1)
        return (image[:, y:y + height, x:x + width, :],)


class ImageFlip:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "flip_method": (["x-axis: vertically", "y-axis: horizontally"],),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/transform"

    def execute(self, image, flip_method):
        if flip_method.startswith("x"):
            image = torch.flip(image, dims=[1])
        elif flip_method.startswith("y"):
            image = torch.flip(image, dims=[2])
        return (image,)


class ImageRotate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "rotation": (["none", "90 degrees", "180 degrees", "270 degrees"],),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/transform"

    def execute(self, image, rotation):
        quarter_turns = {"90": 1, "180": 2, "270": 3}.get(rotation.split(" ")[0], 0)
        # dims (W, H): a positive quarter turn is clockwise on screen.
        return (torch.rot90(image, k=quarter_turns, dims=[2, 1]),)


class ImagePadForOutpaint:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image": ("IMAGE",),
            "left": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "top": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "right": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "bottom": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "feathering": ("INT", {"default": 40, "min": 0, "max": MAX_RESOLUTION, "step": 1}),
        }}

    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "expand_image"
    CATEGORY = "image"

    def expand_image(self, image, left, top, right, bottom, feathering):
        batch, height, width, channels = image.shape
        new_image = torch.ones((batch, height + top + bottom, width + left + right, channels),
                               dtype=torch.float32) * 0.5
        new_image[:, top:top + height, left:left + width, :] = image

        mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32)
        inner = torch.zeros((height, width), dtype=torch.float32)
        if feathering > 0 and feathering * 2 < height and feathering * 2 < width:
            inner = _feather(height, width, feathering, top=top != 0, bottom=bottom != 0,
                             left=left != 0, right=right != 0)
        mask[top:top + height, left:left + width] = inner
        return (new_image, mask.unsqueeze(0))


def _feather(height: int, width: int, feathering: int, *, top: bool, bottom: bool,
             left: bool, right: bool) -> torch.Tensor:
    """Mask inside the original image: ((f - d) / f)^2 within f pixels of a padded side."""
    rows = torch.arange(height, dtype=torch.float64)[:, None]
    cols = torch.arange(width, dtype=torch.float64)[None, :]
    # A side without padding does not feather: its distance counts as the full size.
    d_top = rows if top else torch.full_like(rows, height)
    d_bottom = height - rows if bottom else torch.full_like(rows, height)
    d_left = cols if left else torch.full_like(cols, width)
    d_right = width - cols if right else torch.full_like(cols, width)
    distance = torch.minimum(torch.minimum(d_top, d_bottom), torch.minimum(d_left, d_right))
    weight = ((feathering - distance) / feathering) ** 2
    return torch.where(distance < feathering, weight, torch.zeros_like(weight)).float()


class ImageStitch:
    """Upstreamed by ComfyUI from kijai's ComfyUI-KJNodes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image1": ("IMAGE",),
                "direction": (["right", "down", "left", "up"], {"default": "right"}),
                "match_image_size": ("BOOLEAN", {"default": True}),
                "spacing_width": ("INT", {"default": 0, "min": 0, "max": 1024, "step": 2}),
                "spacing_color": (["white", "black", "red", "green", "blue"], {"default": "white"}),
            },
            "optional": {"image2": ("IMAGE",)},
        }

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/transform"
    DESCRIPTION = ("Places image2 beside image1 on the chosen side, with an optional coloured gap "
                   "between them. Without image2, image1 comes out as it went in.")

    _COLORS = {"white": 1.0, "black": 0.0, "red": (1.0, 0.0, 0.0),
               "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}

    def execute(self, image1, direction, match_image_size, spacing_width, spacing_color,
                image2=None):
        if image2 is None:
            return (image1,)
        image1, image2 = _same_batch(image1, image2)
        horizontal = direction in ("left", "right")
        color = self._COLORS[spacing_color]
        if match_image_size:
            image2 = _match_size(image1, image2, horizontal)
        else:
            fill = 0.0 if isinstance(color, tuple) else color
            image1, image2 = _pad_cross_axis(image1, image2, horizontal, fill)
        image1, image2 = _same_channels(image1, image2)
        parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
        if spacing_width > 0:
            spacing_width += spacing_width % 2  # keep it even
            parts.insert(1, _spacer(image1, image2, spacing_width, horizontal, color))
        return (torch.cat(parts, dim=2 if horizontal else 1),)


def _same_batch(image1, image2):
    """Repeat the last image of the shorter batch until both batches are as long."""
    target = max(image1.shape[0], image2.shape[0])

    def extend(img):
        if img.shape[0] == target:
            return img
        return torch.cat([img, img[-1:].repeat(target - img.shape[0], 1, 1, 1)])

    return extend(image1), extend(image2)


def _match_size(image1, image2, horizontal: bool):
    """Scale image2 (Lanczos) to image1's height (side by side) or width (stacked)."""
    h1, w1 = image1.shape[1:3]
    h2, w2 = image2.shape[1:3]
    aspect = w2 / h2
    if horizontal:
        target_h, target_w = h1, int(h1 * aspect)
    else:
        target_w, target_h = w1, int(w1 / aspect)
    return _resize(image2, target_w, target_h, "lanczos", "disabled")


def _pad_cross_axis(image1, image2, horizontal: bool, fill: float):
    """Centre the smaller image across the stitch axis, padding with ``fill``."""
    axis = 1 if horizontal else 2
    target = max(image1.shape[axis], image2.shape[axis])

    def pad(img):
        missing = target - img.shape[axis]
        if missing <= 0:
            return img
        before, after = missing // 2, missing - missing // 2
        spec = (0, 0, 0, 0, before, after) if horizontal else (0, 0, before, after)
        return torch.nn.functional.pad(img, spec, mode="constant", value=fill)

    return pad(image1), pad(image2)


def _same_channels(image1, image2):
    """Give the image with fewer channels extra ones filled with 1 (opaque alpha)."""
    channels = max(image1.shape[-1], image2.shape[-1])

    def widen(img):
        missing = channels - img.shape[-1]
        if missing == 0:
            return img
        return torch.cat([img, torch.ones(*img.shape[:-1], missing, device=img.device)], dim=-1)

    return widen(image1), widen(image2)


def _spacer(image1, image2, spacing_width: int, horizontal: bool, color) -> torch.Tensor:
    channels = image1.shape[-1]
    if horizontal:
        shape = (image1.shape[0], max(image1.shape[1], image2.shape[1]), spacing_width, channels)
    else:
        shape = (image1.shape[0], spacing_width, max(image1.shape[2], image2.shape[2]), channels)
    spacer = torch.zeros(shape, device=image1.device)
    if isinstance(color, tuple):
        for index, value in enumerate(color[:channels]):
            spacer[..., index] = value
    else:
        spacer[..., :min(3, channels)] = color
    if channels == 4:
        spacer[..., 3] = 1.0
    return spacer


NODES = [
    ("ImageScale", ImageScale, "Upscale Image", "nodes"),
    ("ImageScaleBy", ImageScaleBy, "Upscale Image By", "nodes"),
    ("ImagePadForOutpaint", ImagePadForOutpaint, "Pad Image for Outpainting", "nodes"),
    ("ImageScaleToTotalPixels", ImageScaleToTotalPixels, "Scale Image to Total Pixels",
     "comfy_extras.nodes_post_processing"),
    ("ImageCrop", ImageCrop, "Image Crop", "comfy_extras.nodes_images"),
    ("ImageStitch", ImageStitch, "Image Stitch", "comfy_extras.nodes_images"),
    ("ImageRotate", ImageRotate, "ImageRotate", "comfy_extras.nodes_images"),
    ("ImageFlip", ImageFlip, "ImageFlip", "comfy_extras.nodes_images"),
]
