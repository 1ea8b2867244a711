"""SaveLatent and LoadLatent: ComfyUI's ``.latent`` files.

A ``.latent`` file is a safetensors file holding ``latent_tensor`` and an empty
``latent_format_version_0`` marker; files without the marker predate it and store latents
scaled by 0.18215, so loading them divides that factor out. The prompt and workflow travel in
the safetensors metadata (JSON strings), as ComfyUI writes them.
"""

from __future__ import annotations

import hashlib
import json
import os

import torch

from opencomfy.compat import folder_paths
from opencomfy.compat.safetensors_file import load_file, save_file
from opencomfy.nodes.image_saving import save_metadata_enabled

LATENT_EXTENSION = ".latent"
LEGACY_SCALE = 1.0 / 0.18215


def latent_metadata(prompt, extra_pnginfo) -> dict | None:
    """``{"prompt": json, <extra key>: json ...}``, or None when metadata is switched off."""
    if not save_metadata_enabled():
        return None
    metadata = {"prompt": json.dumps(prompt) if prompt is not None else ""}
    for key, value in (extra_pnginfo or {}).items():
        metadata[key] = json.dumps(value)
    return metadata


def _write_numbered_latent(target, tensors: dict, metadata: dict | None) -> str:
    """Write ``<stem>_<counter:05>_.latent`` without overwriting; return the file name."""
    folder = target.full_output_folder
    os.makedirs(folder, exist_ok=True)
    while True:
        counter = folder_paths.claim_save_counter(folder, target.filename)
        name = f"{target.filename}_{counter:05}_{LATENT_EXTENSION}"
        path = os.path.join(folder, name)
        try:
            open(path, "xb").close()  # claim the name; someone else's file is skipped
        except FileExistsError:
            continue
        try:
            save_file(tensors, path, metadata=metadata)
        except BaseException:
            os.unlink(path)
            raise
        folder_paths.note_saved(folder, target.filename)
        return name


class SaveLatent:
    """Save the latent to the output folder; the UI gets ``{"latents": [file entries]}``."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "samples": ("LATENT",),
                "filename_prefix": ("STRING", {"default": "latents/ComfyUI"}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    CATEGORY = "_for_testing"

    def save(self, samples, filename_prefix="ComfyUI", prompt=None, extra_pnginfo=None):
        target = folder_paths.resolve_save_target(filename_prefix,
                                                  folder_paths.get_output_directory())
        tensors = {
            "latent_tensor": samples["samples"].contiguous(),
            "latent_format_version_0": torch.tensor([]),
        }
        name = _write_numbered_latent(target, tensors, latent_metadata(prompt, extra_pnginfo))
        return {"ui": {"latents": [
            {"filename": name, "subfolder": target.subfolder, "type": "output"}]}}


class LoadLatent:
    """Load a ``.latent`` file from the input folder (the combo lists them)."""

    @classmethod
    def INPUT_TYPES(cls):
        input_dir = folder_paths.get_input_directory()
        try:
            names = os.listdir(input_dir)
        except FileNotFoundError:
            names = []
        files = [name for name in names if name.endswith(LATENT_EXTENSION)
                 and os.path.isfile(os.path.join(input_dir, name))]
        return {"required": {"latent": (sorted(files),)}}

    CATEGORY = "_for_testing"
    RETURN_TYPES = ("LATENT",)
    FUNCTION = "load"

    def load(self, latent):
        tensors, _metadata = load_file(folder_paths.get_annotated_filepath(latent), device="cpu")
        scale = 1.0 if "latent_format_version_0" in tensors else LEGACY_SCALE
        return ({"samples": tensors["latent_tensor"].float() * scale},)

    @classmethod
    def IS_CHANGED(cls, latent):
        with open(folder_paths.get_annotated_filepath(latent), "rb") as handle:
            return hashlib.sha256(handle.read()).digest().hex()

    @classmethod
    def VALIDATE_INPUTS(cls, latent):
        if not folder_paths.exists_annotated_filepath(latent):
            return "Invalid latent file: {}".format(latent)
        return True


NODES = [
    ("SaveLatent", SaveLatent, "SaveLatent", "nodes"),
    ("LoadLatent", LoadLatent, "LoadLatent", "nodes"),
]
