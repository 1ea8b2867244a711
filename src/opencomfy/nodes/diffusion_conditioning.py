"""Conditioning nodes (ComfyUI's ``nodes.py``): text encoding and edits of CONDITIONING lists.

A CONDITIONING is ``[[tensor [1, tokens, dim], {options}], ...]``; every node returns new lists
and new option dicts, never changing its input (outputs are cached and shared).
"""

from __future__ import annotations

import torch

from opencomfy.nodes.mask import MAX_RESOLUTION


def _with_options(conditioning, **options):
    return [[t, {**opts, **options}] for t, opts in conditioning]


class CLIPTextEncode:
    """Encode a prompt (with ComfyUI's ``(word:1.2)`` weights) into CONDITIONING."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"multiline": True, "dynamicPrompts": True,
                                "tooltip": "The prompt; (word:1.2) raises or lowers a word's weight."}),
            "clip": ("CLIP", {"tooltip": "Text encoder that turns the prompt into embeddings."}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("Prompt embeddings for a sampler's positive or negative input.",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"
    DESCRIPTION = ("Runs a prompt through the text encoder; the resulting conditioning tells a sampler "
                   "what the picture should (or should not) show.")

    def encode(self, clip, text):
        if clip is None:
            raise RuntimeError("No text encoder reached this node (its clip input is None). When it "
                               "comes from a checkpoint loader, that checkpoint has no text encoder "
                               "in it: load one with a CLIP loader instead.")
        out = clip.encode_from_tokens(clip.tokenize(text), return_dict=True)
        cond = out.pop("cond")
        return ([[cond, out]],)


class ConditioningCombine:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning_1": ("CONDITIONING",), "conditioning_2": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "combine"
    CATEGORY = "conditioning"

    def combine(self, conditioning_1, conditioning_2):
        return (conditioning_1 + conditioning_2,)


class ConditioningAverage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning_to": ("CONDITIONING",), "conditioning_from": ("CONDITIONING",),
            "conditioning_to_strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "addWeighted"
    CATEGORY = "conditioning"

    def addWeighted(self, conditioning_to, conditioning_from, conditioning_to_strength):
        if not conditioning_from:
            return (conditioning_to,)
        source, source_opts = conditioning_from[0]
        source_pooled = source_opts.get("pooled_output")
        out = []
        for t, opts in conditioning_to:
            src = source[:, :t.shape[1]]
            if src.shape[1] < t.shape[1]:
                src = torch.cat([src, torch.zeros(1, t.shape[1] - src.shape[1], src.shape[2])], dim=1)
            mixed = t * conditioning_to_strength + src * (1.0 - conditioning_to_strength)
            new_opts = dict(opts)
            pooled = opts.get("pooled_output")
            if pooled is not None and source_pooled is not None:
                new_opts["pooled_output"] = pooled * conditioning_to_strength + \
                    source_pooled * (1.0 - conditioning_to_strength)
            elif source_pooled is not None:
                new_opts["pooled_output"] = source_pooled
            out.append([mixed, new_opts])
        return (out,)


class ConditioningConcat:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning_to": ("CONDITIONING",), "conditioning_from": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "concat"
    CATEGORY = "conditioning"

    def concat(self, conditioning_to, conditioning_from):
        if not conditioning_from:
            return (conditioning_to,)
        source = conditioning_from[0][0]
        return ([[torch.cat([t, source], dim=1), dict(opts)] for t, opts in conditioning_to],)


class ConditioningSetArea:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "width": ("INT", {"default": 64, "min": 64, "max": MAX_RESOLUTION, "step": 8}),
            "height": ("INT", {"default": 64, "min": 64, "max": MAX_RESOLUTION, "step": 8}),
            "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, width, height, x, y, strength):
        return (_with_options(conditioning, area=(height // 8, width // 8, y // 8, x // 8),
                              strength=strength, set_area_to_bounds=False),)


class ConditioningSetAreaPercentage:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "width": ("FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
            "height": ("FLOAT", {"default": 1.0, "min": 0, "max": 1.0, "step": 0.01}),
            "x": ("FLOAT", {"default": 0, "min": 0, "max": 1.0, "step": 0.01}),
            "y": ("FLOAT", {"default": 0, "min": 0, "max": 1.0, "step": 0.01}),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, width, height, x, y, strength):
        return (_with_options(conditioning, area=("percentage", height, width, y, x),
                              strength=strength, set_area_to_bounds=False),)


class ConditioningSetAreaStrength:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, strength):
        return (_with_options(conditioning, strength=strength),)


class ConditioningSetMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "mask": ("MASK",),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            "set_cond_area": (["default", "mask bounds"],),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning"

    def append(self, conditioning, mask, set_cond_area, strength):
        if mask.ndim < 3:
            mask = mask.unsqueeze(0)
        return (_with_options(conditioning, mask=mask, set_area_to_bounds=set_cond_area != "default",
                              mask_strength=strength),)


class ConditioningZeroOut:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": ("CONDITIONING",)}}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "zero_out"
    CATEGORY = "advanced/conditioning"

    def zero_out(self, conditioning):
        out = []
        for t, opts in conditioning:
            new_opts = dict(opts)
            if opts.get("pooled_output") is not None:
                new_opts["pooled_output"] = torch.zeros_like(opts["pooled_output"])
            out.append([torch.zeros_like(t), new_opts])
        return (out,)


class ConditioningSetTimestepRange:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
            "end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "set_range"
    CATEGORY = "advanced/conditioning"

    def set_range(self, conditioning, start, end):
        return (_with_options(conditioning, start_percent=start, end_percent=end),)


class InpaintModelConditioning:
    """Conditioning for inpainting models: the masked image's latent and the mask ride along
    with the conditioning; the returned latent is the original image's."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "vae": ("VAE",),
            "pixels": ("IMAGE",),
            "mask": ("MASK",),
            "noise_mask": ("BOOLEAN", {"default": True, "tooltip": "Also attach the mask to the output latent, so the "
                                       "sampler changes only the masked area. Whether that helps "
                                       "depends on the model; turn it off if results look wrong."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING", "LATENT")
    RETURN_NAMES = ("positive", "negative", "latent")
    FUNCTION = "encode"
    CATEGORY = "conditioning/inpaint"

    def encode(self, positive, negative, pixels, vae, mask, noise_mask=True):
        import torch.nn.functional as F

        r = vae.downscale_ratio
        height, width = (pixels.shape[1] // r) * r, (pixels.shape[2] // r) * r
        mask = F.interpolate(mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float(),
                             size=(pixels.shape[1], pixels.shape[2]), mode="bilinear")
        top, left = (pixels.shape[1] % r) // 2, (pixels.shape[2] % r) // 2
        pixels = pixels[:, top:top + height, left:left + width, :3]
        mask = mask[:, :, top:top + height, left:left + width]
        keep = (1.0 - mask.round()).squeeze(1).unsqueeze(-1)
        masked_pixels = (pixels - 0.5) * keep + 0.5
        concat_latent = vae.encode(masked_pixels)
        latent = {"samples": vae.encode(pixels)}
        if noise_mask:
            latent["noise_mask"] = mask
        extra = {"concat_latent_image": concat_latent, "concat_mask": mask}
        return (_with_options(positive, **extra), _with_options(negative, **extra), latent)


NODES = [
    ("CLIPTextEncode", CLIPTextEncode, "CLIP Text Encode (Prompt)", "nodes"),
    ("ConditioningCombine", ConditioningCombine, "Conditioning (Combine)", "nodes"),
    ("ConditioningAverage", ConditioningAverage, "ConditioningAverage", "nodes"),
    ("ConditioningConcat", ConditioningConcat, "Conditioning (Concat)", "nodes"),
    ("ConditioningSetArea", ConditioningSetArea, "Conditioning (Set Area)", "nodes"),
    ("ConditioningSetAreaPercentage", ConditioningSetAreaPercentage,
     "Conditioning (Set Area with Percentage)", "nodes"),
    ("ConditioningSetAreaStrength", ConditioningSetAreaStrength, "ConditioningSetAreaStrength", "nodes"),
    ("ConditioningSetMask", ConditioningSetMask, "Conditioning (Set Mask)", "nodes"),
    ("ConditioningZeroOut", ConditioningZeroOut, "ConditioningZeroOut", "nodes"),
    ("ConditioningSetTimestepRange", ConditioningSetTimestepRange, "ConditioningSetTimestepRange", "nodes"),
    ("InpaintModelConditioning", InpaintModelConditioning, "InpaintModelConditioning", "nodes"),
]
