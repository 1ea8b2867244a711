"""Image-prompt nodes of ComfyUI's ``nodes.py``: CLIP vision, unCLIP, style models, GLIGEN.

CLIPVisionLoader/CLIPVisionEncode, unCLIPConditioning, StyleModelLoader/StyleModelApply and
GLIGENLoader/GLIGENTextBoxApply work. unCLIP models are not there yet: their loader is listed as
ComfyUI lists it (so workflows validate) and fails when run, saying what is missing. Part of
the optional ``diffusion`` extra: without it ``NODES`` is empty.
"""

from __future__ import annotations

import torch

from opencomfy.compat import folder_paths
from opencomfy.diffusion import available
from opencomfy.nodes.mask import MAX_RESOLUTION


def _cached(kind: str, folder: str, name: str, load):
    from opencomfy.diffusion import cache

    path = folder_paths.get_full_path_or_raise(folder, name)
    return cache.get_or_load(cache.file_key(path, kind), lambda: load(path))


class CLIPVisionLoader:
    """A ``models/clip_vision`` file -> CLIP_VISION (CLIP ViT-L/H/bigG or SigLIP image tower)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip_name": (folder_paths.get_filename_list("clip_vision"),)}}

    RETURN_TYPES = ("CLIP_VISION",)
    FUNCTION = "load_clip"
    CATEGORY = "loaders"

    def load_clip(self, clip_name):
        from opencomfy.diffusion.clip_vision import load_clip_vision_file

        return (_cached("clip_vision", "clip_vision", clip_name, load_clip_vision_file),)


class CLIPVisionEncode:
    """Encode an image with a CLIP vision model (centre-cropped to a square, or squashed)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "clip_vision": ("CLIP_VISION",),
            "image": ("IMAGE",),
            "crop": (["center", "none"],),
        }}

    RETURN_TYPES = ("CLIP_VISION_OUTPUT",)
    FUNCTION = "encode"
    CATEGORY = "conditioning"

    def encode(self, clip_vision, image, crop="center"):
        return (clip_vision.encode_image(image, crop=crop == "center"),)


class unCLIPConditioning:  # noqa: N801  (ComfyUI's class name)
    """Attach an image embedding to each conditioning entry, for unCLIP models."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "clip_vision_output": ("CLIP_VISION_OUTPUT",),
            "strength": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01}),
            "noise_augmentation": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply_adm"
    CATEGORY = "conditioning"

    def apply_adm(self, conditioning, clip_vision_output, strength, noise_augmentation):
        if strength == 0:
            return (conditioning,)
        entry = {"clip_vision_output": clip_vision_output, "strength": strength,
                 "noise_augmentation": noise_augmentation}
        # Several unCLIPConditioning nodes in a row add up: each appends its embedding.
        return ([[t, {**opts, "unclip_conditioning": [*opts.get("unclip_conditioning", []), entry]}]
                 for t, opts in conditioning],)


class unCLIPCheckpointLoader:  # noqa: N801  (ComfyUI's class name)
    """An SD 2.x unCLIP checkpoint -> MODEL, CLIP, VAE, CLIP_VISION (not supported yet)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"ckpt_name": (folder_paths.get_filename_list("checkpoints"),)}}

    RETURN_TYPES = ("MODEL", "CLIP", "VAE", "CLIP_VISION")
    FUNCTION = "load_checkpoint"
    CATEGORY = "loaders"

    def load_checkpoint(self, ckpt_name, output_vae=True, output_clip=True):
        raise NotImplementedError(
            f"{ckpt_name}: unCLIP checkpoints are not supported yet (opencomfy's UNet has no input for "
            "the image embedding and no noise augmentation for it); use CheckpointLoaderSimple for "
            "other checkpoints and CLIPVisionLoader for CLIP vision files")


class StyleModelLoader:
    """A ``models/style_models`` file -> STYLE_MODEL (T2I-Adapter style model or Flux Redux)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"style_model_name": (folder_paths.get_filename_list("style_models"),)}}

    RETURN_TYPES = ("STYLE_MODEL",)
    FUNCTION = "load_style_model"
    CATEGORY = "loaders"

    def load_style_model(self, style_model_name):
        from opencomfy.diffusion.style_model import load_style_model_file

        return (_cached("style_model", "style_models", style_model_name, load_style_model_file),)


def _extend_attention_mask(txt: torch.Tensor, keys: dict, n: int, bias: float) -> None:
    """Grow an entry's attention mask for ``n`` new tokens placed after the text tokens, giving
    attention to them the bias ``log(bias)`` (the image-reference tokens stay at the end)."""
    ref_h, ref_w = keys.get("attention_mask_img_shape", (1, 1))
    n_ref, n_txt = ref_h * ref_w, txt.shape[1]
    mask = keys.get("attention_mask")
    if mask is None:
        mask = torch.zeros((txt.shape[0], n_txt + n_ref, n_txt + n_ref), dtype=torch.float16)
    if mask.dtype == torch.bool:
        mask = torch.log(mask.to(dtype=torch.float16))
    size = n_txt + n + n_ref
    grown = torch.zeros((txt.shape[0], size, size), dtype=torch.float16)
    grown[:, :n_txt, :n_txt] = mask[:, :n_txt, :n_txt]
    grown[:, :n_txt, n_txt + n:] = mask[:, :n_txt, n_txt:]
    grown[:, n_txt + n:, :n_txt] = mask[:, n_txt:, :n_txt]
    grown[:, n_txt + n:, n_txt + n:] = mask[:, n_txt:, n_txt:]
    log_bias = torch.log(torch.tensor([bias]))   # log(0) = -inf: no attention at all
    grown[:, :n_txt, n_txt:n_txt + n] = log_bias
    grown[:, n_txt + n:, n_txt:n_txt + n] = log_bias
    keys["attention_mask"] = grown.to(txt.device)
    keys["attention_mask_img_shape"] = (ref_h, ref_w)


class StyleModelApply:
    """Append a style model's tokens (from a CLIP vision output) to each conditioning entry."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning": ("CONDITIONING",),
            "style_model": ("STYLE_MODEL",),
            "clip_vision_output": ("CLIP_VISION_OUTPUT",),
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.001}),
            "strength_type": (["multiply", "attn_bias"],),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "apply_stylemodel"
    CATEGORY = "conditioning/style_model"

    def apply_stylemodel(self, conditioning, style_model, clip_vision_output, strength, strength_type):
        tokens = style_model.get_cond(clip_vision_output).flatten(0, 1).unsqueeze(0)
        if strength_type == "multiply":
            tokens = tokens * strength
        out = []
        for txt, opts in conditioning:
            if tokens.shape[-1] != txt.shape[-1]:
                raise ValueError(f"the style model gives {tokens.shape[-1]}-wide tokens but this "
                                 f"conditioning's are {txt.shape[-1]}-wide: they belong to different model families")
            keys = dict(opts)
            if "attention_mask" in keys or (strength_type == "attn_bias" and strength != 1.0):
                _extend_attention_mask(txt, keys, tokens.shape[1],
                                       strength if strength_type == "attn_bias" else 1.0)
            out.append([torch.cat([txt, tokens.to(txt.device, txt.dtype)], dim=1), keys])
        return (out,)


class GLIGENLoader:
    """A ``models/gligen`` file -> GLIGEN (grounding tokenizer + gated attention layers)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"gligen_name": (folder_paths.get_filename_list("gligen"),)}}

    RETURN_TYPES = ("GLIGEN",)
    FUNCTION = "load_gligen"
    CATEGORY = "loaders"

    def load_gligen(self, gligen_name):
        from opencomfy.diffusion.gligen import load_gligen_file

        return (_cached("gligen", "gligen", gligen_name, load_gligen_file),)


class GLIGENTextBoxApply:
    """Ground a phrase in a box (pixels) with GLIGEN: appended to each conditioning entry's boxes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "conditioning_to": ("CONDITIONING",),
            "clip": ("CLIP",),
            "gligen_textbox_model": ("GLIGEN",),
            "text": ("STRING", {"multiline": True, "dynamicPrompts": True}),
            "width": ("INT", {"default": 64, "min": 8, "max": MAX_RESOLUTION, "step": 8}),
            "height": ("INT", {"default": 64, "min": 8, "max": MAX_RESOLUTION, "step": 8}),
            "x": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
            "y": ("INT", {"default": 0, "min": 0, "max": MAX_RESOLUTION, "step": 8}),
        }}

    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "append"
    CATEGORY = "conditioning/gligen"

    def append(self, conditioning_to, clip, gligen_textbox_model, text, width, height, x, y):
        # The phrase is the prompt's pooled (end token) embedding, before any projection.
        _cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        want = gligen_textbox_model.model.key_dim
        if pooled is None or pooled.shape[-1] != want:
            got = "none" if pooled is None else f"{pooled.shape[-1]}-wide ones"
            raise ValueError(f"this GLIGEN model takes {want}-wide phrase embeddings and this CLIP gives {got}: "
                             "use the CLIP of the model family the GLIGEN file was made for (SD 1.x)")
        box = (pooled, height // 8, width // 8, y // 8, x // 8)   # in latent pixels
        out = []
        for t, opts in conditioning_to:
            previous = list(opts["gligen"][2]) if "gligen" in opts else []
            out.append([t, {**opts, "gligen": ("position", gligen_textbox_model, [*previous, box])}])
        return (out,)


NODES: list = [
    ("CLIPVisionLoader", CLIPVisionLoader, "Load CLIP Vision", "nodes"),
    ("CLIPVisionEncode", CLIPVisionEncode, "CLIP Vision Encode", "nodes"),
    ("unCLIPConditioning", unCLIPConditioning, "unCLIPConditioning", "nodes"),
    ("unCLIPCheckpointLoader", unCLIPCheckpointLoader, "unCLIPCheckpointLoader", "nodes"),
    ("StyleModelLoader", StyleModelLoader, "Load Style Model", "nodes"),
    ("StyleModelApply", StyleModelApply, "Apply Style Model", "nodes"),
    ("GLIGENLoader", GLIGENLoader, "GLIGENLoader", "nodes"),
    ("GLIGENTextBoxApply", GLIGENTextBoxApply, "GLIGENTextBoxApply", "nodes"),
] if available() else []
