"""Upscale-model nodes (ComfyUI's ``comfy_extras.nodes_upscale_model``): load an ESRGAN-style
model from ``models/upscale_models`` and run it over an image in tiles.

The models run through spandrel (part of the optional ``diffusion`` extra); without the extra
``NODES`` is empty. Heavy imports happen when a node runs.
"""

from __future__ import annotations

from opencomfy.compat import folder_paths
from opencomfy.diffusion import available
from opencomfy.nodes.v3_schema import V3SchemaNode, node_entries

PYTHON_MODULE = "comfy_extras.nodes_upscale_model"


class UpscaleModelLoader(V3SchemaNode):
    """A file from ``upscale_models`` -> UPSCALE_MODEL (a spandrel image model descriptor)."""

    NODE_ID = "UpscaleModelLoader"
    DISPLAY_NAME = "Load Upscale Model"
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE
    CATEGORY = "loaders"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": ("COMBO", {"multiselect": False,
                                     "options": folder_paths.get_filename_list("upscale_models")}),
        }}

    RETURN_TYPES = ("UPSCALE_MODEL",)

    def execute(self, model_name):
        from opencomfy.diffusion import cache
        from opencomfy.diffusion.upscale import load_upscale_model

        path = folder_paths.get_full_path_or_raise("upscale_models", model_name)
        return (cache.get_or_load(cache.file_key(path, "upscale_model"), lambda: load_upscale_model(path)),)

    load_model = execute   # the method name of ComfyUI's V1 class, which custom nodes call


class ImageUpscaleWithModel(V3SchemaNode):
    """Upscale an IMAGE with an UPSCALE_MODEL, tile by tile (tiles shrink when memory runs out)."""

    NODE_ID = "ImageUpscaleWithModel"
    DISPLAY_NAME = "Upscale Image (using Model)"
    RELATIVE_PYTHON_MODULE = PYTHON_MODULE
    CATEGORY = "image/upscaling"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "upscale_model": ("UPSCALE_MODEL", {}),
            "image": ("IMAGE", {}),
        }}

    RETURN_TYPES = ("IMAGE",)

    def execute(self, upscale_model, image):
        from opencomfy.diffusion.upscale import upscale_image

        return (upscale_image(upscale_model, image),)

    upscale = execute   # the method name of ComfyUI's V1 class, which custom nodes call


NODES: list = node_entries([UpscaleModelLoader, ImageUpscaleWithModel], PYTHON_MODULE) if available() else []
