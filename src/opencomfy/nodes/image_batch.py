"""Batch nodes for IMAGEs: making, joining, repeating, slicing, re-batching and measuring."""

from __future__ import annotations

import torch

from opencomfy.nodes.image_scaling import common_upscale

MAX_RESOLUTION = 16384


class EmptyImage:
    def __init__(self, device="cpu"):
        self.device = device

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            "height": ("INT", {"default": 512, "min": 1, "max": MAX_RESOLUTION, "step": 1}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096}),
            "color": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFF, "step": 1,
                              "display": "color"}),
        }}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "generate"
    CATEGORY = "image"

    def generate(self, width, height, batch_size=1, color=0):
        # color is 0xRRGGBB; each channel is its byte / 255.
        channels = [((color >> shift) & 0xFF) / 0xFF for shift in (16, 8, 0)]
        planes = [torch.full([batch_size, height, width, 1], value) for value in channels]
        return (torch.cat(planes, dim=-1),)


class ImageBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image1": ("IMAGE",), "image2": ("IMAGE",)}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "batch"
    CATEGORY = "image"

    def batch(self, image1, image2):
        if image1.shape[1:] != image2.shape[1:]:
            # Fit image2 to image1's size (bilinear, centre-cropped to its aspect ratio).
            image2 = common_upscale(image2.movedim(-1, 1), image1.shape[2], image1.shape[1],
                                    "bilinear", "center").movedim(1, -1)
        return (torch.cat((image1, image2), dim=0),)


class RepeatImageBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "amount": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/batch"

    def execute(self, image, amount):
        return (image.repeat((amount, 1, 1, 1)),)


class ImageFromBatch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",),
                             "batch_index": ("INT", {"default": 0, "min": 0, "max": 4095}),
                             "length": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "execute"
    CATEGORY = "image/batch"

    def execute(self, image, batch_index, length):
        # Out-of-range requests shrink to what the batch has rather than failing.
        batch_index = min(image.shape[0] - 1, batch_index)
        length = min(image.shape[0] - batch_index, length)
        return (image[batch_index:batch_index + length].clone(),)


class RebatchImages:
    """Regroups a list of image batches into batches of ``batch_size`` images."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    RETURN_TYPES = ("IMAGE",)
    INPUT_IS_LIST = True
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "rebatch"
    CATEGORY = "image/batch"

    def rebatch(self, images, batch_size):
        batch_size = batch_size[0]
        singles = [img[i:i + 1] for img in images for i in range(img.shape[0])]
        batches = [torch.cat(singles[i:i + batch_size], dim=0)
                   for i in range(0, len(singles), batch_size)]
        return (batches,)


class GetImageSize:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",)}, "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("INT", "INT", "INT")
    RETURN_NAMES = ("width", "height", "batch_size")
    FUNCTION = "execute"
    CATEGORY = "image"
    DESCRIPTION = "Reports the width, height and number of images of an image batch."

    def execute(self, image, unique_id=None):
        batch_size, height, width = image.shape[0], image.shape[1], image.shape[2]
        if unique_id:
            _show_text_on_node(f"width: {width}, height: {height}\n batch size: {batch_size}",
                               unique_id)
        return (width, height, batch_size)


def _show_text_on_node(text: str, node_id: str) -> None:
    """The size appears on the node in the UI (a ``progress_text`` message)."""
    try:
        from opencomfy.engine.progress import send_progress_text
    except ImportError:  # the engine is optional for direct calls
        return
    send_progress_text(text, node_id)


NODES = [
    ("ImageBatch", ImageBatch, "Batch Images", "nodes"),
    ("EmptyImage", EmptyImage, "EmptyImage", "nodes"),
    ("RepeatImageBatch", RepeatImageBatch, "RepeatImageBatch", "comfy_extras.nodes_images"),
    ("ImageFromBatch", ImageFromBatch, "ImageFromBatch", "comfy_extras.nodes_images"),
    ("GetImageSize", GetImageSize, "Get Image Size", "comfy_extras.nodes_images"),
    ("RebatchImages", RebatchImages, "Rebatch Images", "comfy_extras.nodes_rebatch"),
]
