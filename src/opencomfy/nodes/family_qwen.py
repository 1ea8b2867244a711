"""Qwen-Image nodes that need no Qwen model: the edit prompt encoders' image handling and the
layered empty latent (ComfyUI's ``comfy_extras.nodes_qwen``).

Qwen-Image-Edit's text encoder is Qwen2.5-VL: it reads the images to edit (scaled to about
384x384 pixels for the vision tower, or one megapixel for the single-image node) along with the
prompt, while the VAE's latents of the images (about one megapixel) become
``reference_latents``. opencomfy cannot load Qwen2.5-VL yet: with a CLIP whose tokenizer takes
no images the nodes fail clearly, naming it.
"""

from __future__ import annotations

import math

import torch

from opencomfy.nodes.family_common import (MAX_RESOLUTION, encode_tokens, resize_frames,
                                           set_options, tokenize_with)
from opencomfy.nodes.v3_dynamic import V3DynamicNode

QWEN = "comfy_extras.nodes_qwen"
FAMILY = "Qwen-Image (Qwen2.5-VL)"
PROMPT = ("STRING", {"multiline": True, "dynamicPrompts": True})


def scale_to_pixels(image: torch.Tensor, pixels: int, multiple: int = 1) -> torch.Tensor:
    """``image`` resized (area filter, no crop) to about ``pixels`` pixels at its aspect ratio,
    each side rounded to a multiple of ``multiple``."""
    height, width = image.shape[1], image.shape[2]
    scale = math.sqrt(pixels / (width * height))
    new_w = max(multiple, round(width * scale / multiple) * multiple)
    new_h = max(multiple, round(height * scale / multiple) * multiple)
    return resize_frames(image, new_w, new_h, "area", "disabled")[..., :3]


def _tokenize(clip, text: str, node: str, images: list) -> dict:
    return tokenize_with(clip, text, node=node, family=FAMILY,
                         capability="reads the images to edit along with the prompt", images=images)


class TextEncodeQwenImageEdit(V3DynamicNode):
    """Edit prompt with one image: the encoder sees it at one megapixel; with a VAE its latent
    is added to ``reference_latents``."""

    NODE_ID = "TextEncodeQwenImageEdit"
    CATEGORY = "advanced/conditioning"
    RELATIVE_PYTHON_MODULE = QWEN
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "prompt": PROMPT},
                "optional": {"vae": ("VAE", {}), "image": ("IMAGE", {})}}

    def execute(self, clip, prompt, vae=None, image=None):
        images = [] if image is None else [scale_to_pixels(image, 1024 * 1024)]
        tokens = _tokenize(clip, prompt, self.NODE_ID, images)
        conditioning = encode_tokens(clip, tokens)
        if images and vae is not None:
            reference = vae.encode(images[0])
            conditioning = set_options(conditioning, {"reference_latents": [reference]}, append=True)
        return (conditioning,)


class TextEncodeQwenImageEditPlus(V3DynamicNode):
    """Edit prompt with up to three images, each announced in the prompt as "Picture n" with
    its vision tokens; with a VAE every image's latent goes to ``reference_latents``.

    The encoder's own edit chat template applies (the one Qwen-Image-Edit-2509 was trained
    with belongs to the encoder, which opencomfy will ship with it).
    """

    NODE_ID = "TextEncodeQwenImageEditPlus"
    CATEGORY = "advanced/conditioning"
    RELATIVE_PYTHON_MODULE = QWEN
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "prompt": PROMPT},
                "optional": {"vae": ("VAE", {}), "image1": ("IMAGE", {}), "image2": ("IMAGE", {}),
                             "image3": ("IMAGE", {})}}

    def execute(self, clip, prompt, vae=None, image1=None, image2=None, image3=None):
        vision_images, references, announce = [], [], ""
        for number, image in enumerate((image1, image2, image3), start=1):
            if image is None:
                continue
            vision_images.append(scale_to_pixels(image, 384 * 384))
            # Qwen2.5-VL's markers for where an image's tokens go in the text.
            announce += f"Picture {number}: <|vision_start|><|image_pad|><|vision_end|>"
            if vae is not None:
                references.append(image)
        tokens = _tokenize(clip, announce + prompt, self.NODE_ID, vision_images)
        conditioning = encode_tokens(clip, tokens)
        if vae is not None and references:
            latents = [vae.encode(scale_to_pixels(image, 1024 * 1024, multiple=8))
                       for image in references]
            conditioning = set_options(conditioning, {"reference_latents": latents}, append=True)
        return (conditioning,)


class EmptyQwenImageLayeredLatentImage(V3DynamicNode):
    """Zeros for Qwen-Image-Layered: ``layers + 1`` frames (the whole picture, then each layer)
    of 16 channels at 1/8 size: ``[batch, 16, layers + 1, height // 8, width // 8]``."""

    NODE_ID = "EmptyQwenImageLayeredLatentImage"
    DISPLAY_NAME = "Empty Qwen Image Layered Latent"
    CATEGORY = "latent/qwen"
    RELATIVE_PYTHON_MODULE = QWEN
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": 16, "max": MAX_RESOLUTION, "step": 16}
        return {"required": {"width": ("INT", {"default": 640, **size}),
                             "height": ("INT", {"default": 640, **size}),
                             "layers": ("INT", {"default": 3, "min": 0, "max": MAX_RESOLUTION,
                                                "step": 1}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    def execute(self, width, height, layers, batch_size=1):
        return ({"samples": torch.zeros([batch_size, 16, layers + 1, height // 8, width // 8])},)


_CLASSES = [TextEncodeQwenImageEdit, TextEncodeQwenImageEditPlus, EmptyQwenImageLayeredLatentImage]

NODES = [(cls.NODE_ID, cls, cls.DISPLAY_NAME, cls.RELATIVE_PYTHON_MODULE) for cls in _CLASSES]
