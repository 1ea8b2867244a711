"""PhotoMaker nodes (ComfyUI's ``comfy_extras.nodes_photomaker``, experimental V3 nodes).

PhotoMakerLoader reads a ``models/photomaker`` file; PhotoMakerEncode encodes a prompt whose
class word is followed by ``photomaker`` and fuses the photos' identity into that class word
(see :mod:`opencomfy.diffusion.photomaker`). Part of the optional ``diffusion`` extra: without
it ``NODES`` is empty.
"""

from __future__ import annotations

from opencomfy.compat import folder_paths
from opencomfy.diffusion import available
from opencomfy.nodes.v3_schema import V3SchemaNode, node_entries

_MODULE = "comfy_extras.nodes_photomaker"


class _Experimental(V3SchemaNode):
    CATEGORY = "_for_testing/photomaker"
    RELATIVE_PYTHON_MODULE = _MODULE

    @classmethod
    def GET_NODE_INFO_V1(cls):
        info = super().GET_NODE_INFO_V1()
        info["experimental"] = True
        return info


class PhotoMakerLoader(_Experimental):
    """A ``models/photomaker`` file -> PHOTOMAKER (the ID encoder; its LoRA is loaded apart)."""

    NODE_ID = "PhotoMakerLoader"
    RETURN_TYPES = ("PHOTOMAKER",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"photomaker_model_name": (
            "COMBO", {"multiselect": False, "options": folder_paths.get_filename_list("photomaker")})}}

    def execute(self, photomaker_model_name):
        from opencomfy.diffusion import cache
        from opencomfy.diffusion.photomaker import load_photomaker_file

        path = folder_paths.get_full_path_or_raise("photomaker", photomaker_model_name)
        return (cache.get_or_load(cache.file_key(path, "photomaker"), lambda: load_photomaker_file(path)),)


class PhotoMakerEncode(_Experimental):
    """Encode a prompt, fusing the photos' identity into the class word before ``photomaker``."""

    NODE_ID = "PhotoMakerEncode"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "photomaker": ("PHOTOMAKER", {}),
            "image": ("IMAGE", {}),
            "clip": ("CLIP", {}),
            "text": ("STRING", {"default": "photograph of photomaker", "dynamicPrompts": True,
                                "multiline": True}),
        }}

    def execute(self, photomaker, image, clip, text):
        from opencomfy.diffusion.photomaker import encode

        return (encode(photomaker, image, clip, text),)


NODES: list = node_entries([PhotoMakerLoader, PhotoMakerEncode], _MODULE) if available() else []
