"""Saving models (CheckpointSave, CLIPSave, VAESave, ModelSave, ImageOnlyCheckpointSave,
LoraSave) into the output folder, in the layouts ComfyUI writes (see
:mod:`opencomfy.diffusion.checkpoint_save`). The files load back with the usual loaders."""

from __future__ import annotations

import contextlib
import os

from opencomfy.compat import folder_paths
from opencomfy.diffusion import available
from opencomfy.nodes.v3_schema import V3SchemaNode

_HIDDEN = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
_MODULE = "comfy_extras.nodes_model_merging"


def _metadata_enabled() -> bool:
    from opencomfy.nodes.image_saving import save_metadata_enabled

    return save_metadata_enabled()


def _write(filename_prefix: str, write) -> str:
    """Reserve the next numbered ``.safetensors`` for the prefix in the output folder and call
    ``write(path, title)``; a failed write leaves no file behind. Returns the path."""
    from opencomfy.diffusion.checkpoint_save import numbered_path

    path, stem, counter = numbered_path(filename_prefix, folder_paths.get_output_directory())
    try:
        write(path, f"{stem} {counter}")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def save_model_file(filename_prefix: str, *, model, clip=None, vae=None, clip_vision=None,
                    prompt=None, extra_pnginfo=None) -> str:
    """One checkpoint file with ComfyUI's metadata; returns its path."""
    from opencomfy.diffusion.checkpoint_save import checkpoint_metadata, save_checkpoint

    if model is None:
        raise ValueError("saving a checkpoint needs a MODEL")

    def write(path, title):
        metadata, extra = checkpoint_metadata(model, title=title, prompt=prompt, extra_pnginfo=extra_pnginfo,
                                              with_prompt=_metadata_enabled())
        save_checkpoint(path, model=model, clip=clip, vae=vae, clip_vision=clip_vision,
                        metadata=metadata, extra_keys=extra)
    return _write(filename_prefix, write)


class CheckpointSave:
    """MODEL + CLIP + VAE -> one single-file checkpoint (with their patches applied)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "clip": ("CLIP",), "vae": ("VAE",),
                             "filename_prefix": ("STRING", {"default": "checkpoints/ComfyUI"})},
                "hidden": dict(_HIDDEN)}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "advanced/model_merging"

    def save(self, model, clip, vae, filename_prefix, prompt=None, extra_pnginfo=None):
        save_model_file(filename_prefix, model=model, clip=clip, vae=vae, prompt=prompt,
                        extra_pnginfo=extra_pnginfo)
        return {}


class ModelSave:
    """MODEL alone -> a diffusion-model file (``model.diffusion_model.*``; UNETLoader reads it)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",),
                             "filename_prefix": ("STRING", {"default": "diffusion_models/ComfyUI"})},
                "hidden": dict(_HIDDEN)}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "advanced/model_merging"

    def save(self, model, filename_prefix, prompt=None, extra_pnginfo=None):
        save_model_file(filename_prefix, model=model, prompt=prompt, extra_pnginfo=extra_pnginfo)
        return {}


class ImageOnlyCheckpointSave(CheckpointSave):
    """MODEL + CLIP_VISION + VAE -> one checkpoint (image-conditioned models)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "clip_vision": ("CLIP_VISION",), "vae": ("VAE",),
                             "filename_prefix": ("STRING", {"default": "checkpoints/ComfyUI"})},
                "hidden": dict(_HIDDEN)}

    def save(self, model, clip_vision, vae, filename_prefix, prompt=None, extra_pnginfo=None):
        save_model_file(filename_prefix, model=model, clip_vision=clip_vision, vae=vae, prompt=prompt,
                        extra_pnginfo=extra_pnginfo)
        return {}


class CLIPSave:
    """CLIP -> one file per text tower (``<prefix>_clip_l_00001_.safetensors``...), in
    transformers' key names, as CLIPLoader / DualCLIPLoader read them."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"clip": ("CLIP",), "filename_prefix": ("STRING", {"default": "clip/ComfyUI"})},
                "hidden": dict(_HIDDEN)}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "advanced/model_merging"

    def save(self, clip, filename_prefix, prompt=None, extra_pnginfo=None):
        from opencomfy.diffusion.checkpoint_save import clip_towers, prompt_metadata, save_tensors

        metadata = {}
        if _metadata_enabled():
            metadata = {"format": "pt", **prompt_metadata(prompt, extra_pnginfo)}
        for tower, tensors in clip_towers(clip).items():
            _write(f"{filename_prefix}_{tower}",
                   lambda path, _title, tensors=tensors: save_tensors(path, tensors, metadata))
        return {}


class VAESave:
    """VAE -> a standalone VAE file in the LDM layout (VAELoader reads it)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE",), "filename_prefix": ("STRING", {"default": "vae/ComfyUI_vae"})},
                "hidden": dict(_HIDDEN)}

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "advanced/model_merging"

    def save(self, vae, filename_prefix, prompt=None, extra_pnginfo=None):
        from opencomfy.diffusion.checkpoint_save import prompt_metadata, save_tensors, vae_state_dict

        tensors = vae_state_dict(vae, prefix="")
        metadata = prompt_metadata(prompt, extra_pnginfo) if _metadata_enabled() else {}
        _write(filename_prefix, lambda path, _title: save_tensors(path, tensors, metadata))
        return {}


class LoraSave(V3SchemaNode):
    """Extract a LoRA from a model (and/or CLIP) difference and save it to ``loras``."""

    NODE_ID = "LoraSave"
    DISPLAY_NAME = "Extract and Save Lora"
    CATEGORY = "_for_testing"
    RELATIVE_PYTHON_MODULE = "comfy_extras.nodes_lora_extract"
    OUTPUT_NODE = True
    RETURN_TYPES = ()

    @classmethod
    def INPUT_TYPES(cls):
        from opencomfy.diffusion.lora_extract import LORA_TYPES

        return {"required": {
            "filename_prefix": ("STRING", {"default": "loras/ComfyUI_extracted_lora", "multiline": False}),
            "rank": ("INT", {"default": 8, "min": 1, "max": 4096, "step": 1}),
            "lora_type": ("COMBO", {"multiselect": False, "options": list(LORA_TYPES)}),
            "bias_diff": ("BOOLEAN", {"default": True}),
        }, "optional": {"model_diff": ("MODEL", {}), "text_encoder_diff": ("CLIP", {})},
            "hidden": dict(_HIDDEN)}

    @classmethod
    def GET_NODE_INFO_V1(cls):
        info = super().GET_NODE_INFO_V1()
        info["input"]["hidden"] = {name: [kind] for name, kind in _HIDDEN.items()}
        info["experimental"] = True
        return info

    def execute(self, filename_prefix, rank, lora_type, bias_diff, model_diff=None, text_encoder_diff=None,
                prompt=None, extra_pnginfo=None):
        from opencomfy.diffusion.checkpoint_save import save_tensors
        from opencomfy.diffusion.lora_extract import extract_from

        if model_diff is None and text_encoder_diff is None:
            return {}
        tensors = extract_from(model=model_diff, clip=text_encoder_diff, rank=int(rank),
                               lora_type=lora_type, bias_diff=bool(bias_diff))
        if not tensors:
            raise ValueError("no LoRA weights could be extracted (the differences are all zero or empty)")
        _write(filename_prefix, lambda path, _title: save_tensors(path, tensors))
        return {}


NODES = [
    ("CheckpointSave", CheckpointSave, "Save Checkpoint", _MODULE),
    ("CLIPSave", CLIPSave, "CLIPSave", _MODULE),
    ("VAESave", VAESave, "VAESave", _MODULE),
    ("ModelSave", ModelSave, "ModelSave", _MODULE),
    ("ImageOnlyCheckpointSave", ImageOnlyCheckpointSave, "ImageOnlyCheckpointSave",
     "comfy_extras.nodes_video_model"),
    ("LoraSave", LoraSave, "Extract and Save Lora", "comfy_extras.nodes_lora_extract"),
]


if not available():     # the model nodes need the optional diffusion extra
    NODES = []
