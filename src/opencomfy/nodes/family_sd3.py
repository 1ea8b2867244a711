"""Text encoding and loader nodes of the SD3, HiDream and SDXL families
(ComfyUI's ``comfy_extras.nodes_sd3``, ``nodes_hidream`` and ``nodes_clip_sdxl``).

The SDXL encoders work with the SDXL CLIP that CheckpointLoaderSimple gives. SD3 and HiDream
prompt encoders need towers opencomfy cannot load yet (T5-XXL, Llama): they check the CLIP they
are given and name what is missing. TripleCLIPLoader and QuadrupleCLIPLoader are placeholders
that validate (so SD3 and HiDream workflows open and queue) and fail when run, saying so.
"""

from __future__ import annotations

from opencomfy.compat import folder_paths
from opencomfy.nodes.diffusion_controlnet import ControlNetApplyAdvanced
from opencomfy.nodes.family_common import (MAX_RESOLUTION, encode_tokens, pad_to_same_length,
                                           tokenize_towers)
from opencomfy.nodes.v3_dynamic import V3DynamicNode, combo

PROMPT = ("STRING", {"multiline": True, "dynamicPrompts": True})
SIZE = ("INT", {"default": 1024, "min": 0, "max": MAX_RESOLUTION})
CROP = ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION})


class _EncodeNode(V3DynamicNode):
    CATEGORY = "advanced/conditioning"
    RETURN_TYPES = ("CONDITIONING",)


class CLIPTextEncodeSDXL(_EncodeNode):
    """SDXL prompt with separate CLIP-G and CLIP-L texts and the size conditioning (original
    size, crop corner, target size) that SDXL's UNet reads."""

    NODE_ID = "CLIPTextEncodeSDXL"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_clip_sdxl"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "width": SIZE, "height": SIZE, "crop_w": CROP,
                             "crop_h": CROP, "target_width": SIZE, "target_height": SIZE,
                             "text_g": PROMPT, "text_l": PROMPT}}

    def execute(self, clip, width, height, crop_w, crop_h, target_width, target_height, text_g,
                text_l):
        family = "SDXL (CLIP-L + CLIP-G)"
        tokens = tokenize_towers(clip, text_g, ("l", "g"), node=self.NODE_ID, family=family)
        tokens["l"] = clip.tokenize(text_l)["l"]
        pad_to_same_length(clip, tokens, "l", "g")
        return (encode_tokens(clip, tokens, {
            "width": width, "height": height, "crop_w": crop_w, "crop_h": crop_h,
            "target_width": target_width, "target_height": target_height}),)


class CLIPTextEncodeSDXLRefiner(_EncodeNode):
    """SDXL refiner prompt (CLIP-G) with its aesthetic score and size conditioning."""

    NODE_ID = "CLIPTextEncodeSDXLRefiner"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_clip_sdxl"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ascore": ("FLOAT", {"default": 6.0, "min": 0.0, "max": 1000.0,
                                                  "step": 0.01}),
                             "width": SIZE, "height": SIZE, "text": PROMPT, "clip": ("CLIP", {})}}

    def execute(self, ascore, width, height, text, clip):
        tokens = tokenize_towers(clip, text, ("g",), node=self.NODE_ID,
                                 family="SDXL refiner (CLIP-G)")
        return (encode_tokens(clip, tokens, {"aesthetic_score": ascore, "width": width,
                                             "height": height}),)


class CLIPTextEncodeSD3(_EncodeNode):
    """SD3 prompt: separate CLIP-L, CLIP-G and T5-XXL texts; an empty text either encodes as
    the empty prompt or (``none``) leaves that tower out."""

    NODE_ID = "CLIPTextEncodeSD3"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_sd3"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "clip_l": PROMPT, "clip_g": PROMPT,
                             "t5xxl": PROMPT, "empty_padding": combo(["none", "empty_prompt"])}}

    def execute(self, clip, clip_l, clip_g, t5xxl, empty_padding):
        drop_empty = empty_padding == "none"
        family = "SD3 (CLIP-L + CLIP-G + T5-XXL)"
        tokens = tokenize_towers(clip, clip_g, ("l", "g", "t5xxl"), node=self.NODE_ID, family=family)
        if drop_empty and not clip_g:
            tokens["g"] = []
        tokens["l"] = [] if drop_empty and not clip_l else clip.tokenize(clip_l)["l"]
        tokens["t5xxl"] = [] if drop_empty and not t5xxl else clip.tokenize(t5xxl)["t5xxl"]
        pad_to_same_length(clip, tokens, "l", "g")
        return (encode_tokens(clip, tokens),)


class CLIPTextEncodeHiDream(_EncodeNode):
    """HiDream prompt: CLIP-L, CLIP-G, T5-XXL and Llama texts, each to its own tower."""

    NODE_ID = "CLIPTextEncodeHiDream"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_hidream"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP", {}), "clip_l": PROMPT, "clip_g": PROMPT,
                             "t5xxl": PROMPT, "llama": PROMPT}}

    def execute(self, clip, clip_l, clip_g, t5xxl, llama):
        towers = ("l", "g", "t5xxl", "llama")
        family = "HiDream (CLIP-L + CLIP-G + T5-XXL + Llama 3.1)"
        tokens = tokenize_towers(clip, clip_g, towers, node=self.NODE_ID, family=family)
        for key, text in (("l", clip_l), ("t5xxl", t5xxl), ("llama", llama)):
            tokens[key] = clip.tokenize(text)[key]
        return (encode_tokens(clip, tokens),)


class _MultiClipLoader(V3DynamicNode):
    """Several text encoder files into one CLIP (a placeholder: see the module doc)."""

    CATEGORY = "advanced/loaders"
    RETURN_TYPES = ("CLIP",)
    COUNT = 3
    FAMILY = ""

    @classmethod
    def INPUT_TYPES(cls):
        files = folder_paths.get_filename_list("text_encoders")
        return {"required": {f"clip_name{i}": combo(files) for i in range(1, cls.COUNT + 1)}}

    def execute(self, **names):
        # Name a missing file first: that is the more useful error when both apply.
        for name in names.values():
            folder_paths.get_full_path_or_raise("text_encoders", name)
        raise NotImplementedError(
            f"{self.NODE_ID}: {self.FAMILY} text encoders are not supported yet (opencomfy loads "
            f"only the SD 1.x/2.x and SDXL CLIP towers); the files {', '.join(names.values())} "
            f"were found but cannot be loaded")


class TripleCLIPLoader(_MultiClipLoader):
    NODE_ID = "TripleCLIPLoader"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_sd3"
    DESCRIPTION = "Loads CLIP-L, CLIP-G and T5-XXL for SD3 (not supported yet)."
    FAMILY = "SD3 (CLIP-L + CLIP-G + T5-XXL)"


class QuadrupleCLIPLoader(_MultiClipLoader):
    NODE_ID = "QuadrupleCLIPLoader"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_hidream"
    DESCRIPTION = "Loads CLIP-L, CLIP-G, T5-XXL and Llama 3.1 for HiDream (not supported yet)."
    COUNT = 4
    FAMILY = "HiDream (CLIP-L + CLIP-G + T5-XXL + Llama 3.1)"


class ControlNetApplySD3(ControlNetApplyAdvanced):
    """Apply a ControlNet with the VAE given explicitly (the older form of Apply ControlNet)."""

    DEPRECATED = True

    @classmethod
    def INPUT_TYPES(cls):
        base = super().INPUT_TYPES()["required"]
        required = {k: base[k] for k in ("positive", "negative", "control_net")}
        required["vae"] = ("VAE",)
        required.update({k: base[k] for k in ("image", "strength", "start_percent", "end_percent")})
        return {"required": required}


_V3 = [CLIPTextEncodeSDXL, CLIPTextEncodeSDXLRefiner, CLIPTextEncodeSD3, CLIPTextEncodeHiDream,
       TripleCLIPLoader, QuadrupleCLIPLoader]

NODES = [(cls.NODE_ID, cls, cls.DISPLAY_NAME, cls.RELATIVE_PYTHON_MODULE) for cls in _V3] + [
    ("ControlNetApplySD3", ControlNetApplySD3, "Apply Controlnet with VAE", "comfy_extras.nodes_sd3"),
]
