"""MODEL and CLIP patches on attention and transformer blocks: Self-Attention Guidance, Skip
Layer Guidance, attention weight scaling (CLIP and temporal UNet), HyperTile and token merging.

The methods live in :mod:`opencomfy.diffusion` (``sag``, ``skip_layer``, ``attention_scaling``,
``hypertile``, ``tome``); these classes are their nodes, with ComfyUI's inputs.
"""

from __future__ import annotations

from opencomfy.diffusion import available

_FACTOR = ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01})


class SelfAttentionGuidance:
    """Guide away from a prediction of the negative whose attended regions are blurred."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "scale": ("FLOAT", {"default": 0.5, "min": -2.0, "max": 5.0, "step": 0.01}),
            "blur_sigma": ("FLOAT", {"default": 2.0, "min": 0.0, "max": 10.0, "step": 0.1}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "_for_testing"
    EXPERIMENTAL = True

    def patch(self, model, scale, blur_sigma):
        from opencomfy.diffusion.sag import self_attention_guidance

        return (self_attention_guidance(model, float(scale), float(blur_sigma)),)


def _layers_input():
    return ("STRING", {"default": "7, 8, 9", "multiline": False})


def _percent(default: float):
    return ("FLOAT", {"default": default, "min": 0.0, "max": 1.0, "step": 0.001})


class SkipLayerGuidanceDiT:
    """Add guidance away from the positive predicted with some transformer blocks skipped
    (on SD UNets: its transformer blocks in running order are the double layers)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "double_layers": _layers_input(),
            "single_layers": _layers_input(),
            "scale": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 10.0, "step": 0.1}),
            "start_percent": _percent(0.01),
            "end_percent": _percent(0.15),
            "rescaling_scale": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "skip_guidance"
    CATEGORY = "advanced/guidance"
    EXPERIMENTAL = True

    def skip_guidance(self, model, scale, start_percent, end_percent, double_layers="", single_layers="",
                      rescaling_scale=0.0):
        from opencomfy.diffusion.skip_layer import skip_layer_guidance

        return (skip_layer_guidance(model, float(scale), float(start_percent), float(end_percent),
                                    double_layers, single_layers, float(rescaling_scale)),)


class SkipLayerGuidanceSD3(SkipLayerGuidanceDiT):
    """Skip Layer Guidance with SD3's one list of (joint) layers."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "layers": _layers_input(),
            "scale": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 10.0, "step": 0.1}),
            "start_percent": _percent(0.01),
            "end_percent": _percent(0.15),
        }}

    FUNCTION = "skip_guidance_sd3"

    def skip_guidance_sd3(self, model, layers, scale, start_percent, end_percent):
        return self.skip_guidance(model, scale, start_percent, end_percent, double_layers=layers)


class SkipLayerGuidanceDiTSimple:
    """Predict the negative with some transformer blocks skipped, inside a window of steps."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "double_layers": _layers_input(),
            "single_layers": _layers_input(),
            "start_percent": _percent(0.0),
            "end_percent": _percent(1.0),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "skip_guidance"
    CATEGORY = "advanced/guidance"
    EXPERIMENTAL = True

    def skip_guidance(self, model, start_percent, end_percent, double_layers="", single_layers=""):
        from opencomfy.diffusion.skip_layer import skip_layer_guidance_simple

        return (skip_layer_guidance_simple(model, float(start_percent), float(end_percent),
                                           double_layers, single_layers),)


class CLIPAttentionMultiply:
    """Scale the text encoder's self-attention query, key, value and output projections."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "q": _FACTOR, "k": _FACTOR, "v": _FACTOR, "out": _FACTOR}}

    RETURN_TYPES = ("CLIP",)
    FUNCTION = "patch"
    CATEGORY = "_for_testing/attention_experiments"
    EXPERIMENTAL = True

    def patch(self, clip, q, k, v, out):
        from opencomfy.diffusion.attention_scaling import clip_attention_multiply

        return (clip_attention_multiply(clip, float(q), float(k), float(v), float(out)),)


class UNetTemporalAttentionMultiply:
    """Scale the output of the UNet's attentions, spatial ("structural") and temporal apart;
    image UNets have no temporal layers, so only the structural factors change them."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}), "self_structural": _FACTOR, "self_temporal": _FACTOR,
                             "cross_structural": _FACTOR, "cross_temporal": _FACTOR}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "_for_testing/attention_experiments"
    EXPERIMENTAL = True

    def patch(self, model, self_structural, self_temporal, cross_structural, cross_temporal):
        from opencomfy.diffusion.attention_scaling import unet_attention_output_multiply

        return (unet_attention_output_multiply(model, float(self_structural), float(self_temporal),
                                               float(cross_structural), float(cross_temporal)),)


class HyperTile:
    """Run the outer self-attentions within tiles of the latent (faster at high resolutions)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {}),
            "tile_size": ("INT", {"default": 256, "min": 1, "max": 2048}),
            "swap_size": ("INT", {"default": 2, "min": 1, "max": 128}),
            "max_depth": ("INT", {"default": 0, "min": 0, "max": 10}),
            "scale_depth": ("BOOLEAN", {"default": False}),
        }}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_patches/unet"

    def patch(self, model, tile_size, swap_size, max_depth, scale_depth):
        from opencomfy.diffusion.hypertile import hypertile_patch

        return (hypertile_patch(model, int(tile_size), int(swap_size), int(max_depth), bool(scale_depth)),)


class TomePatchModel:
    """Token merging: merge a ``ratio`` of the full-resolution self-attention queries."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {}),
                             "ratio": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.01})}}

    RETURN_TYPES = ("MODEL",)
    FUNCTION = "patch"
    CATEGORY = "model_patches/unet"

    def patch(self, model, ratio):
        from opencomfy.diffusion.tome import tome_patch

        return (tome_patch(model, float(ratio)),)


# Empty without the optional diffusion extra (the methods need torch and diffusers).
NODES = [] if not available() else [
    ("SelfAttentionGuidance", SelfAttentionGuidance, "Self-Attention Guidance", "comfy_extras.nodes_sag"),
    ("SkipLayerGuidanceSD3", SkipLayerGuidanceSD3, None, "comfy_extras.nodes_sd3"),
    ("SkipLayerGuidanceDiT", SkipLayerGuidanceDiT, None, "comfy_extras.nodes_slg"),
    ("SkipLayerGuidanceDiTSimple", SkipLayerGuidanceDiTSimple, None, "comfy_extras.nodes_slg"),
    ("CLIPAttentionMultiply", CLIPAttentionMultiply, None, "comfy_extras.nodes_attention_multiply"),
    ("UNetTemporalAttentionMultiply", UNetTemporalAttentionMultiply, None,
     "comfy_extras.nodes_attention_multiply"),
    ("HyperTile", HyperTile, None, "comfy_extras.nodes_hypertile"),
    ("TomePatchModel", TomePatchModel, None, "comfy_extras.nodes_tomesd"),
]
