"""Flux family nodes that need no Flux model: guidance, Kontext references, Flux.2 latents
and schedule (ComfyUI's ``comfy_extras.nodes_flux`` and ``nodes_edit_model``).

Flux is guidance-distilled: the guidance strength is an input of the model, carried on each
conditioning entry as ``guidance``. Edit models (Kontext, Qwen-Image-Edit, Flux.2) read the
images to edit from ``reference_latents``, a list that chained ReferenceLatent nodes extend.
"""

from __future__ import annotations

import math

import torch

from opencomfy.nodes.family_common import (MAX_RESOLUTION, encode_tokens, resize_frames,
                                           set_options, tokenize_towers)
from opencomfy.nodes.v3_dynamic import V3DynamicNode, combo

FLUX = "comfy_extras.nodes_flux"
FLUX_CATEGORY = "advanced/conditioning/flux"
GUIDANCE = ("FLOAT", {"default": 3.5, "min": 0.0, "max": 100.0, "step": 0.1})
PROMPT = ("STRING", {"multiline": True, "dynamicPrompts": True})

# The resolutions Flux Kontext was trained on (width, height): about one megapixel each, aspect
# ratios from 3:7 to 7:3.
KONTEXT_RESOLUTIONS = (
    (672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184),
    (944, 1104), (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752),
    (1456, 720), (1504, 688), (1568, 672),
)


class _FluxNode(V3DynamicNode):
    CATEGORY = FLUX_CATEGORY
    RELATIVE_PYTHON_MODULE = FLUX
    RETURN_TYPES = ("CONDITIONING",)


class CLIPTextEncodeFlux(_FluxNode):
    """Encode a CLIP-L prompt and a T5-XXL prompt with Flux's text encoders, plus guidance."""

    NODE_ID = "CLIPTextEncodeFlux"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "clip_l": PROMPT, "t5xxl": PROMPT,
                             "guidance": GUIDANCE}}

    def execute(self, clip, clip_l, t5xxl, guidance):
        family, node = "Flux (CLIP-L + T5-XXL)", self.NODE_ID
        tokens = tokenize_towers(clip, clip_l, ("l", "t5xxl"), node=node, family=family)
        tokens["t5xxl"] = tokenize_towers(clip, t5xxl, ("t5xxl",), node=node, family=family)["t5xxl"]
        return (encode_tokens(clip, tokens, {"guidance": guidance}),)


class FluxGuidance(_FluxNode):
    """Set the distilled guidance strength that Flux reads from each conditioning entry."""

    NODE_ID = "FluxGuidance"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING", {}), "guidance": GUIDANCE}}

    def execute(self, conditioning, guidance):
        return (set_options(conditioning, {"guidance": guidance}),)


class FluxDisableGuidance(_FluxNode):
    """Remove the guidance input entirely (``guidance`` None), for Flux-like models without it."""

    NODE_ID = "FluxDisableGuidance"
    DESCRIPTION = "Turns off the guidance embedding of Flux and Flux-like models."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING", {})}}

    def execute(self, conditioning):
        return (set_options(conditioning, {"guidance": None}),)


def kontext_resolution(width: int, height: int) -> tuple[int, int]:
    """The Kontext training resolution whose aspect ratio is closest to ``width / height``."""
    aspect = width / height
    return min(KONTEXT_RESOLUTIONS, key=lambda wh: abs(aspect - wh[0] / wh[1]))


class FluxKontextImageScale(_FluxNode):
    """Resize an image (Lanczos, centre crop) to the closest Kontext training resolution."""

    NODE_ID = "FluxKontextImageScale"
    DESCRIPTION = "Resizes the image to the Flux Kontext training size with the nearest aspect ratio."
    RETURN_TYPES = ("IMAGE",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE", {})}}

    def execute(self, image):
        width, height = kontext_resolution(image.shape[2], image.shape[1])
        return (resize_frames(image, width, height, "lanczos", "center"),)


class FluxKontextMultiReferenceLatentMethod(_FluxNode):
    """Choose how several reference latents are placed in the model's position grid."""

    NODE_ID = "FluxKontextMultiReferenceLatentMethod"
    EXPERIMENTAL = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING", {}),
                             "reference_latents_method": combo(["offset", "index", "uxo/uno"])}}

    def execute(self, conditioning, reference_latents_method):
        # The UXO and USO/UNO variants share one placement, stored under one name.
        method = "uxo" if ("uxo" in reference_latents_method or "uso" in reference_latents_method) \
            else reference_latents_method
        return (set_options(conditioning, {"reference_latents_method": method}),)


class ReferenceLatent(_FluxNode):
    """Append a latent to the images an edit model works from (chain for several)."""

    NODE_ID = "ReferenceLatent"
    CATEGORY = "advanced/conditioning/edit_models"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_edit_model"
    DESCRIPTION = ("Attaches an encoded picture to the conditioning as something for an image-editing "
                   "model to work from. Models that accept more than one take each such node in a chain.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING", {})},
                "optional": {"latent": ("LATENT", {})}}

    def execute(self, conditioning, latent=None):
        if latent is None:
            return (conditioning,)
        return (set_options(conditioning, {"reference_latents": [latent["samples"]]}, append=True),)


class EmptyFlux2LatentImage(V3DynamicNode):
    """Zeros in Flux.2's latent shape: 128 channels at 1/16 of the image size."""

    NODE_ID = "EmptyFlux2LatentImage"
    DISPLAY_NAME = "Empty Flux 2 Latent"
    CATEGORY = "latent"
    RELATIVE_PYTHON_MODULE = FLUX
    RETURN_TYPES = ("LATENT",)

    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": 16, "max": MAX_RESOLUTION, "step": 16}
        return {"required": {"width": ("INT", {"default": 1024, **size}),
                             "height": ("INT", {"default": 1024, **size}),
                             "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096})}}

    def execute(self, width, height, batch_size=1):
        return ({"samples": torch.zeros([batch_size, 128, height // 16, width // 16])},)


def flux2_mu(image_seq_len: int, steps: int) -> float:
    """Flux.2's time shift ``mu``: linear in the image token count, fitted between 10 and 200
    steps (below 4300 tokens it also depends on the step count)."""
    slope_200, offset_200 = 0.00016927, 0.45666666
    slope_10, offset_10 = 8.73809524e-05, 1.89833333
    mu_200 = slope_200 * image_seq_len + offset_200
    if image_seq_len > 4300:
        return float(mu_200)
    mu_10 = slope_10 * image_seq_len + offset_10
    per_step = (mu_200 - mu_10) / 190.0
    return float(per_step * (steps - 200.0) + mu_200)


def flux2_sigmas(steps: int, width: int, height: int) -> torch.Tensor:
    """``steps + 1`` sigmas from 1 to 0: ``t`` evenly spaced, shifted by
    ``e^mu / (e^mu + (1/t - 1))`` (sigma = 0 at t = 0)."""
    seq_len = round(width * height / (16 * 16))
    mu = flux2_mu(seq_len, steps)
    t = torch.linspace(1, 0, steps + 1)
    shift = math.exp(mu)
    # 1/t is inf at t = 0, which the formula maps to exactly 0.
    return shift / (shift + (1 / t - 1))


class Flux2Scheduler(V3DynamicNode):
    """The Flux.2 noise schedule for a number of steps and an image size."""

    NODE_ID = "Flux2Scheduler"
    CATEGORY = "sampling/custom_sampling/schedulers"
    RELATIVE_PYTHON_MODULE = FLUX
    RETURN_TYPES = ("SIGMAS",)

    @classmethod
    def INPUT_TYPES(cls):
        size = {"min": 16, "max": MAX_RESOLUTION, "step": 1}
        return {"required": {"steps": ("INT", {"default": 20, "min": 1, "max": 4096}),
                             "width": ("INT", {"default": 1024, **size}),
                             "height": ("INT", {"default": 1024, **size})}}

    def execute(self, steps, width, height):
        return (flux2_sigmas(steps, width, height),)


_CLASSES = [CLIPTextEncodeFlux, FluxGuidance, FluxDisableGuidance, FluxKontextImageScale,
            FluxKontextMultiReferenceLatentMethod, ReferenceLatent, EmptyFlux2LatentImage,
            Flux2Scheduler]

NODES = [(cls.NODE_ID, cls, cls.DISPLAY_NAME, cls.RELATIVE_PYTHON_MODULE) for cls in _CLASSES]
